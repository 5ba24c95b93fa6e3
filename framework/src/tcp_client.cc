#include "plexus/tcp_client.h"

#include "absl/synchronization/notification.h"
#include "connector.h"
#include "plexus/log.h"
#include "socket_ops.h"

namespace plexus {

TcpClient::TcpClient(EventLoop* loop, const InetAddress& server, TcpClientOptions options)
    : loop_(loop),
      server_(server),
      options_(std::move(options)),
      connector_(std::make_shared<detail::Connector>(loop, server, options_)) {
  connector_->setConnectedCallback([this](int fd) { newConnection(fd); });
  connector_->setFailedCallback([this](const absl::Status& s) {
    if (connect_error_) {
      connect_error_(s);
    } else {
      LOG_ERROR("%s", s.message());
    }
  });
}

namespace {

// Owns the connection of a TcpClient that is gone: destroys it once it has closed.
class OrphanOwner final : public ConnectionOwner {
 public:
  void connectionClosed(const TcpConnectionPtr& conn) override {
    conn->getLoop()->queueInLoop([conn] { conn->connectDestroyed(); });
  }
};

ConnectionOwner& orphanOwner() {
  static OrphanOwner owner;  // stateless; never destroyed before the connections it owns
  return owner;
}

}  // namespace

TcpClient::~TcpClient() {
  auto teardown = [this] {
    alive_.reset();
    connect_wanted_ = false;
    connector_->stop();
    TcpConnectionPtr conn = connection();
    if (conn) {
      // The connection may outlive us: it must not call back into this client.
      conn->setOwner(&orphanOwner());
      conn->forceClose();
    }
  };
  if (loop_->isInLoopThread()) {
    teardown();
  } else {
    absl::Notification done;
    loop_->runInLoop([&] {
      teardown();
      done.Notify();
    });
    done.WaitForNotification();
  }
}

// The functors below may still be queued when the client is destroyed on its loop thread: each
// checks the token first, on that same thread.
void TcpClient::connect() {
  // The callbacks were set on this thread before connect(); the loop thread takes the snapshot,
  // so the one field it reads (shared_settings_) is only ever written there.
  ConnectionSettingsPtr settings = ConnectionSettingsPtr::make(callbacks_, options_.connection);
  loop_->runInLoop([this, alive = std::weak_ptr<const bool>(alive_), settings] {
    if (alive.expired()) return;
    shared_settings_ = settings;
    connect_wanted_ = true;
    if (connection() == nullptr) connector_->start();  // else connected already
  });
}

void TcpClient::disconnect() {
  loop_->runInLoop([this, alive = std::weak_ptr<const bool>(alive_)] {
    if (alive.expired()) return;
    connect_wanted_ = false;
    if (TcpConnectionPtr conn = connection()) conn->shutdown();
  });
}

void TcpClient::stop() {
  loop_->runInLoop([this, alive = std::weak_ptr<const bool>(alive_)] {
    if (alive.expired()) return;
    connect_wanted_ = false;
    connector_->stop();
  });
}

TcpConnectionPtr TcpClient::connection() const {
  absl::MutexLock lock(&mutex_);
  return connection_;
}

void TcpClient::newConnection(int sockfd) {
  loop_->assertInLoopThread();
  auto conn = std::make_shared<TcpConnection>(loop_, next_id_++, sockfd,
                                              detail::peerAddressOf(sockfd), shared_settings_);
  conn->setOwner(this);
  {
    absl::MutexLock lock(&mutex_);
    connection_ = conn;
  }
  absl::Status s = conn->connectEstablished();
  if (!s.ok()) {
    LOG_ERROR("connection to %s: %s", server_.toIpPort(), s.message());
    absl::MutexLock lock(&mutex_);
    connection_.reset();
  }
}

void TcpClient::connectionClosed(const TcpConnectionPtr& conn) {
  loop_->assertInLoopThread();
  {
    absl::MutexLock lock(&mutex_);
    if (connection_ == conn) connection_.reset();
  }
  loop_->queueInLoop([conn] { conn->connectDestroyed(); });
  if (options_.reconnect && connect_wanted_) {
    LOG_INFO("connection to %s closed: reconnecting", server_.toIpPort());
    connector_->restartAfterBackoff();
  }
}

}  // namespace plexus
