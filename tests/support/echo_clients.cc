#include "support/echo_clients.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>

namespace plexus::testing {
namespace {

struct Client {
  int fd = -1;
  const std::string* payload = nullptr;
  size_t sent = 0;
  std::string received;
  bool write_shut = false;
  bool done = false;
};

}  // namespace

std::vector<EchoClientResult> runEchoClients(const InetAddress& server,
                                             const std::vector<std::string>& payloads,
                                             uint64_t seed, const EchoClientsOptions& options) {
  std::mt19937_64 rng(seed);
  std::vector<Client> clients(payloads.size());
  std::vector<EchoClientResult> results(payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    Client& c = clients[i];
    c.payload = &payloads[i];
    c.fd = ::socket(server.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    // Blocking connect keeps the test simple; then non-blocking I/O.
    if (c.fd < 0 || ::connect(c.fd, server.sockAddr(), server.sockLen()) != 0) {
      results[i].error = std::string("connect: ") + std::strerror(errno);
      if (c.fd >= 0) ::close(c.fd);
      c.fd = -1;
      c.done = true;
      continue;
    }
    ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    results[i].connected = true;
  }
  std::vector<char> buf(1 << 16);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options.timeout_ms);
  std::vector<pollfd> pfds;
  std::vector<size_t> index;
  for (;;) {
    pfds.clear();
    index.clear();
    for (size_t i = 0; i < clients.size(); ++i) {
      Client& c = clients[i];
      if (c.done) continue;
      short ev = POLLIN;
      if (c.sent < c.payload->size()) ev |= POLLOUT;
      pfds.push_back({c.fd, ev, 0});
      index.push_back(i);
    }
    if (pfds.empty()) break;
    if (std::chrono::steady_clock::now() > deadline) {
      for (size_t i : index) results[i].error = "timed out";
      break;
    }
    int n = ::poll(pfds.data(), pfds.size(), 1000);
    if (n < 0 && errno != EINTR) break;
    for (size_t k = 0; k < pfds.size(); ++k) {
      Client& c = clients[index[k]];
      EchoClientResult& r = results[index[k]];
      if (pfds[k].revents & POLLOUT) {
        size_t left = c.payload->size() - c.sent;
        size_t frag = std::uniform_int_distribution<size_t>(1, options.max_fragment)(rng);
        ssize_t w = ::send(c.fd, c.payload->data() + c.sent, std::min(left, frag), MSG_NOSIGNAL);
        if (w > 0) c.sent += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN) {
          r.error = std::string("send: ") + std::strerror(errno);
          c.done = true;
          continue;
        }
        if (options.half_close && c.sent == c.payload->size() && !c.write_shut) {
          ::shutdown(c.fd, SHUT_WR);
          c.write_shut = true;
        }
      }
      if (pfds[k].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t got = ::recv(c.fd, buf.data(), buf.size(), 0);
        if (got > 0) {
          c.received.append(buf.data(), static_cast<size_t>(got));
          // Without half-close, all bytes back means done.
          if (!options.half_close && c.received.size() >= c.payload->size()) c.done = true;
        } else if (got == 0) {
          if (!options.half_close) r.error = "unexpected EOF";
          c.done = true;
        } else if (errno != EAGAIN) {
          r.error = std::string("recv: ") + std::strerror(errno);
          c.done = true;
        }
      }
    }
  }
  for (size_t i = 0; i < clients.size(); ++i) {
    Client& c = clients[i];
    if (c.fd >= 0) ::close(c.fd);
    results[i].complete = c.received.size() == c.payload->size();
    results[i].exact = c.received == *c.payload;
    if (results[i].error.empty() && !results[i].exact) {
      results[i].error = "got " + std::to_string(c.received.size()) + " of " +
                         std::to_string(c.payload->size()) + " bytes" +
                         (results[i].complete ? ", content differs" : "");
    }
  }
  return results;
}

}  // namespace plexus::testing
