// asio_echo: an echo server on Boost.Asio (header-only), in the shape of Asio's own
// async_tcp_echo_server example: each session reads some, writes it all back, reads again.
//
//   asio_echo --port P --threads N
//
// N = 1: one io_context run on the main thread. N > 1: Asio's io_context-per-CPU idiom (the
// io_context_pool of the "HTTP server 2" example): N io_contexts, one thread each; the acceptor
// lives on the first and hands each new socket to the next io_context round-robin (the first
// one included), so a session's handlers always run on one thread and need no strand. This is
// Plexus's own shape too, except that Plexus accepts on a thread of its own.
// Reads go into a 64 KiB buffer per session; TCP_NODELAY is set on each accepted socket.
// SIGTERM/SIGINT: a signal_set stops every io_context; exit status 0.

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange in C++20
#include <vector>

#include <boost/asio.hpp>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr size_t kReadSize = 64 * 1024;

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket socket) : socket_(std::move(socket)) {}

  void start() { read(); }

 private:
  void read() {
    socket_.async_read_some(asio::buffer(data_),
                            [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                              if (!ec) self->write(n);
                            });
  }

  void write(size_t n) {
    asio::async_write(socket_, asio::buffer(data_, n),
                      [self = shared_from_this()](boost::system::error_code ec, size_t) {
                        if (!ec) self->read();
                      });
  }

  tcp::socket socket_;
  std::array<char, kReadSize> data_;
};

class Server {
 public:
  Server(std::vector<std::unique_ptr<asio::io_context>>& contexts, unsigned short port)
      : contexts_(contexts), acceptor_(*contexts[0], tcp::endpoint(tcp::v4(), port)) {
    accept();
  }

 private:
  void accept() {
    asio::io_context& target = *contexts_[next_++ % contexts_.size()];
    acceptor_.async_accept(target, [this](boost::system::error_code ec, tcp::socket socket) {
      if (!ec) {
        socket.set_option(tcp::no_delay(true), ec);
        std::make_shared<Session>(std::move(socket))->start();
      }
      accept();
    });
  }

  std::vector<std::unique_ptr<asio::io_context>>& contexts_;
  tcp::acceptor acceptor_;  // opened with SO_REUSEADDR, as Asio's acceptor does by default
  size_t next_ = 0;
};

[[noreturn]] void usage(const char* prog) {
  std::fprintf(stderr, "usage: %s --port P [--threads N]\n", prog);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  int threads = 1;
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) usage(argv[0]);
    char* end = nullptr;
    long value = std::strtol(argv[i + 1], &end, 10);
    if (*end != '\0') usage(argv[0]);
    if (std::strcmp(argv[i], "--port") == 0 && value > 0 && value < 65536) {
      port = static_cast<int>(value);
    } else if (std::strcmp(argv[i], "--threads") == 0 && value > 0 && value <= 1024) {
      threads = static_cast<int>(value);
    } else {
      usage(argv[0]);
    }
  }
  if (port == 0) usage(argv[0]);

  std::vector<std::unique_ptr<asio::io_context>> contexts;
  for (int i = 0; i < threads; ++i) {
    contexts.push_back(std::make_unique<asio::io_context>(1));  // 1: one thread runs it
  }
  try {
    // Watched before anything listens: the runner may signal as soon as a connect succeeds.
    asio::signal_set signals(*contexts[0], SIGINT, SIGTERM);
    signals.async_wait([&contexts](boost::system::error_code, int) {
      for (auto& context : contexts) context->stop();
    });
    Server server(contexts, static_cast<unsigned short>(port));

    std::vector<std::thread> workers;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    for (int i = 1; i < threads; ++i) {
      guards.push_back(asio::make_work_guard(*contexts[i]));
      workers.emplace_back([&context = *contexts[i]] { context.run(); });
    }
    contexts[0]->run();
    for (auto& worker : workers) worker.join();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "asio_echo: %s\n", e.what());
    return 1;
  }
  return 0;
}
