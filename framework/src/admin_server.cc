#include "plexus/admin_server.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "plexus/buffer.h"
#include "plexus/event_loop_thread.h"
#include "plexus/log.h"
#include "plexus/metrics.h"
#include "plexus/tcp_server.h"

namespace plexus {

namespace {

constexpr std::string_view kMetricsType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kTextType = "text/plain; charset=utf-8";

const char* reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
  }
  return "Error";
}

bool isToken(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                  std::string_view::npos;
  });
}

// (This Abseil's string_view is not std::string_view: small helpers instead of absl/strings.)
std::vector<std::string_view> split(std::string_view s, std::string_view sep) {
  std::vector<std::string_view> out;
  for (;;) {
    const size_t at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + sep.size());
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A request head, parsed: what the answer depends on.
struct Request {
  std::string_view method;
  std::string_view path;  // the target without its query
  bool http10 = false;
  bool close = false;       // answer, then close
  uint64_t body_bytes = 0;  // Content-Length
};

// Parses "METHOD TARGET HTTP/1.x\r\n(Name: value\r\n)*" (the head without its final CRLF).
// Returns 0, or the status of the error to answer.
int parseHead(std::string_view head, Request* r) {
  const size_t eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  const std::vector<std::string_view> parts = split(line, " ");
  if (parts.size() != 3 || !isToken(parts[0]) || parts[1].empty() || parts[1][0] != '/') {
    return 400;
  }
  if (parts[2] == "HTTP/1.1") {
    r->http10 = false;
  } else if (parts[2] == "HTTP/1.0") {
    r->http10 = true;
  } else {
    return 400;
  }
  r->method = parts[0];
  r->path = parts[1].substr(0, parts[1].find('?'));
  bool keep_alive = false;
  bool has_length = false;
  if (eol != std::string_view::npos) {
    for (std::string_view h : split(head.substr(eol + 2), "\r\n")) {
      const size_t colon = h.find(':');
      if (colon == std::string_view::npos || !isToken(h.substr(0, colon))) return 400;
      const std::string name = lower(h.substr(0, colon));
      const std::string value = lower(trim(h.substr(colon + 1)));
      if (name == "connection") {
        for (std::string_view opt : split(value, ",")) {
          opt = trim(opt);
          if (opt == "close") r->close = true;
          if (opt == "keep-alive") keep_alive = true;
        }
      } else if (name == "content-length") {
        uint64_t n = 0;
        if (has_length || value.empty() || value.size() > 18 ||
            !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          return 400;
        }
        for (char c : value) n = n * 10 + static_cast<uint64_t>(c - '0');
        has_length = true;
        r->body_bytes = n;
      } else if (name == "transfer-encoding") {
        return 400;  // no request here has a body worth streaming
      }
    }
  }
  if (r->http10 && !keep_alive) r->close = true;
  return 0;
}

}  // namespace

struct AdminServer::Impl {
  Impl(AdminServer* o) : owner(o), thread(EngineOptions{}, nullptr, "plexus-admin") {}

  void onMessage(const TcpConnectionPtr& conn, Buffer* in) {
    const size_t max = owner->options_.max_request_bytes;
    while (conn->connected()) {
      const std::string_view data = in->view();
      const size_t end = data.find("\r\n\r\n");
      if (end == std::string_view::npos) {
        if (data.size() > max) answerError(conn, 431, in);
        return;
      }
      if (end + 4 > max) return answerError(conn, 431, in);
      Request r;
      if (const int status = parseHead(data.substr(0, end), &r); status != 0) {
        return answerError(conn, status, in);
      }
      if (r.body_bytes > max) return answerError(conn, 413, in);
      const size_t whole = end + 4 + static_cast<size_t>(r.body_bytes);
      if (data.size() < whole) return;  // the body is still coming
      const bool head_only = r.method == "HEAD";
      int status = 200;
      std::string body;
      std::string_view type = kTextType;
      std::string extra;
      if (r.method != "GET" && !head_only) {
        status = 405;
        body = "method not allowed\n";
        extra = "Allow: GET, HEAD\r\n";
      } else if (r.path == "/metrics") {
        body = owner->registry_->render();
        type = kMetricsType;
      } else if (r.path == "/healthz") {
        if (owner->serving()) {
          body = "ok\n";
        } else {
          status = 503;
          body = "stopping\n";
        }
      } else {
        status = 404;
        body = "not found\n";
      }
      const bool close = r.close;
      in->retrieve(whole);
      answer(conn, status, type, extra, body, head_only, close);
      if (close) return;
    }
  }

  // Answers an error the request cannot be read past: the connection closes after it.
  void answerError(const TcpConnectionPtr& conn, int status, Buffer* in) {
    in->retrieveAll();
    answer(conn, status, kTextType, "", absl::StrFormat("%d %s\n", status, reasonPhrase(status)),
           false, true);
  }

  static void answer(const TcpConnectionPtr& conn, int status, std::string_view type,
                     std::string_view extra, const std::string& body, bool head_only, bool close) {
    std::string out = absl::StrFormat(
        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %u\r\n%s%s\r\n", status,
        reasonPhrase(status), type, body.size(), extra, close ? "Connection: close\r\n" : "");
    if (!head_only) out += body;
    conn->send(out);
    if (close) conn->closeAfterFlush();
  }

  AdminServer* const owner;
  EventLoopThread thread;
  EventLoop* loop = nullptr;
  std::unique_ptr<TcpServer> server;  // on `loop`'s thread only
};

AdminServer::AdminServer(MetricsRegistry* registry, AdminServerOptions options)
    : registry_(registry), options_(std::move(options)), bound_(options_.listen_address) {}

AdminServer::~AdminServer() { stop(); }

absl::Status AdminServer::start() {
  if (impl_) return absl::OkStatus();
  auto impl = std::make_unique<Impl>(this);
  absl::StatusOr<EventLoop*> loop = impl->thread.start();
  if (!loop.ok()) return loop.status();
  impl->loop = *loop;
  absl::Status status;
  absl::Notification started;
  Impl* self = impl.get();
  self->loop->runInLoop([&] {
    TcpServerOptions opts;
    opts.listen_address = options_.listen_address;
    opts.threads = 0;
    opts.max_connections = options_.max_connections;
    opts.connection.idle_timeout = options_.idle_timeout;
    self->server = std::make_unique<TcpServer>(self->loop, opts);
    self->server->setMessageCallback(
        [self](const TcpConnectionPtr& conn, Buffer* in) { self->onMessage(conn, in); });
    status = self->server->start();
    if (status.ok()) {
      bound_ = self->server->listenAddress();
    } else {
      self->server.reset();
    }
    started.Notify();
  });
  started.WaitForNotification();
  if (!status.ok()) {
    impl->thread.stop();
    return absl::Status(status.code(),
                        absl::StrFormat("admin listener: %s", status.message()));
  }
  impl_ = std::move(impl);
  return absl::OkStatus();
}

void AdminServer::stop() {
  if (!impl_) return;
  Impl* self = impl_.get();
  absl::Notification closed;
  // The server goes on its own loop's thread (it closes its connections there).
  self->loop->runInLoop([&] {
    self->server.reset();
    closed.Notify();
  });
  closed.WaitForNotification();
  self->thread.stop();
  impl_.reset();
}

}  // namespace plexus
