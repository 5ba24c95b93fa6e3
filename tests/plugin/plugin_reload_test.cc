// Replacing a served plugin's factory while the server runs (ServedPlugin::replaceFactory), over a
// real TcpServer on loopback: the per-loop lifecycle of both factories, and loading one plugin path
// again (each load its own library, unloaded when its last reference goes).

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "plexus/buffer.h"
#include "plexus/event_loop.h"
#include "plexus/plugin_host.h"
#include "plexus/plugin_loader.h"
#include "support/server_harness.h"
#include "support/test_util.h"

namespace plexus {
namespace {

using testing::connectBlocking;
using testing::readExactly;
using testing::ServerHarness;
using testing::waitUntil;
using testing::writeAll;

// What the factories did, in order: "A start 0", "A handler 1", "A stop 0", "A destroyed".
class Events {
 public:
  void add(std::string e) {
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(e));
  }
  bool has(const std::string& e) {
    absl::MutexLock lock(&mu_);
    return std::find(events_.begin(), events_.end(), e) != events_.end();
  }
  // Index of `e`, or -1.
  int at(const std::string& e) {
    absl::MutexLock lock(&mu_);
    auto it = std::find(events_.begin(), events_.end(), e);
    return it == events_.end() ? -1 : static_cast<int>(it - events_.begin());
  }
  std::vector<std::string> all() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  std::atomic<int> wrong_thread{0};

 private:
  absl::Mutex mu_;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
};

class NamedHandler final : public ProtocolHandler {
 public:
  explicit NamedHandler(std::string name) : name_(std::move(name)) {}
  void onConnect(Session& session) override { session.send(name_ + "\n"); }
  void onData(Session& session, Buffer& input) override { session.send(input); }

 private:
  std::string name_;
};

// Greets each connection with its name; records its per-loop events and checks their threads.
class RecordingFactory final : public PluginFactory {
 public:
  RecordingFactory(std::string name, Events* events) : name_(std::move(name)), events_(events) {}
  ~RecordingFactory() override { events_->add(name_ + " destroyed"); }
  void onLoopStart(const LoopInfo& loop) override { record("start", loop); }
  void onLoopStop(const LoopInfo& loop) override { record("stop", loop); }
  std::unique_ptr<ProtocolHandler> newHandler(const LoopInfo& loop) override {
    record("handler", loop);
    return std::make_unique<NamedHandler>(name_);
  }

 private:
  void record(const char* what, const LoopInfo& loop) {
    if (EventLoop::current() != loop.loop) ++events_->wrong_thread;
    events_->add(name_ + " " + what + " " + std::to_string(loop.index));
  }
  const std::string name_;
  Events* const events_;
};

std::string greetingOf(int fd) {
  std::string line;
  char c;
  while (::recv(fd, &c, 1, 0) == 1) {
    line.push_back(c);
    if (c == '\n') break;
  }
  return line;
}

TcpServerOptions twoLoops() {
  TcpServerOptions options;
  options.listen_address = InetAddress(0, /*loopback_only=*/true);
  options.threads = 2;
  return options;
}

TEST(PluginReloadTest, NewConnectionsGetTheNewFactoryAndTheOldStopsPerLoopWhenItsLastHandlerGoes) {
  Events events;
  ServedPlugin served;
  auto a = std::make_shared<RecordingFactory>("A", &events);
  std::weak_ptr<RecordingFactory> weak_a = a;
  auto harness = std::make_unique<ServerHarness>(
      twoLoops(), [&](TcpServer& server) { served = servePlugin(server, std::move(a)); });
  ASSERT_TRUE(harness->status().ok()) << harness->status();
  ASSERT_TRUE(waitUntil([&] { return events.has("A start 0") && events.has("A start 1"); }));

  // Round-robin: the first connection goes to loop 0.
  int old_fd = connectBlocking(harness->address());
  ASSERT_GE(old_fd, 0);
  ASSERT_EQ(greetingOf(old_fd), "A\n");
  ASSERT_TRUE(events.has("A handler 0"));

  EXPECT_EQ(served.generation(), 0u);
  harness->runSync([&] { served.replaceFactory(std::make_shared<RecordingFactory>("B", &events)); });
  EXPECT_EQ(served.generation(), 1u);
  // B starts on both loops; A stops at once on loop 1 (no handler of it there), not on loop 0.
  ASSERT_TRUE(waitUntil([&] {
    return events.has("B start 0") && events.has("B start 1") && events.has("A stop 1");
  }));
  EXPECT_FALSE(events.has("A stop 0"));
  EXPECT_FALSE(weak_a.expired());

  // New connections, on either loop, get B, made after B started there.
  for (int i = 0; i < 2; ++i) {
    int fd = connectBlocking(harness->address());
    ASSERT_GE(fd, 0);
    EXPECT_EQ(greetingOf(fd), "B\n");
    ::close(fd);
  }
  EXPECT_LT(events.at("B start 1"), events.at("B handler 1"));
  EXPECT_LT(events.at("B start 0"), events.at("B handler 0"));

  // The old connection is still A's, byte for byte.
  ASSERT_TRUE(writeAll(old_fd, "still A"));
  EXPECT_EQ(readExactly(old_fd, 7), "still A");
  EXPECT_FALSE(events.has("A stop 0"));
  // Its close ends A on loop 0, and then A itself.
  ::close(old_fd);
  ASSERT_TRUE(waitUntil([&] { return events.has("A stop 0") && weak_a.expired(); }))
      << ::testing::PrintToString(events.all());
  EXPECT_LT(events.at("A stop 0"), events.at("A destroyed"));
  EXPECT_FALSE(events.has("B stop 0"));

  harness->stop(std::chrono::seconds(1));
  EXPECT_TRUE(events.has("B stop 0"));
  EXPECT_TRUE(events.has("B stop 1"));
  harness.reset();
  served = ServedPlugin();
  EXPECT_TRUE(events.has("B destroyed"));
  EXPECT_EQ(events.wrong_thread.load(), 0);
  // Each started and stopped once per loop.
  for (const char* e : {"A start 0", "A start 1", "A stop 0", "A stop 1", "B start 0", "B start 1",
                        "B stop 0", "B stop 1"}) {
    const std::vector<std::string> all = events.all();
    EXPECT_EQ(std::count(all.begin(), all.end(), e), 1) << e;
  }
}

// Several replacements while one connection holds the first: each factory between them stops on
// every loop at once and is released; the first waits for its connection.
TEST(PluginReloadTest, FactoriesWithoutHandlersAreReleasedAtOnce) {
  Events events;
  ServedPlugin served;
  auto harness = std::make_unique<ServerHarness>(twoLoops(), [&](TcpServer& server) {
    served = servePlugin(server, std::make_shared<RecordingFactory>("F0", &events));
  });
  ASSERT_TRUE(harness->status().ok());
  int held = connectBlocking(harness->address());
  ASSERT_EQ(greetingOf(held), "F0\n");
  for (int i = 1; i <= 20; ++i) {
    served.replaceFactory(std::make_shared<RecordingFactory>("F" + std::to_string(i), &events));
  }
  // Each loop switches on its own thread, maybe straight past some of them.
  ASSERT_TRUE(waitUntil([&] {
    for (int i = 1; i < 20; ++i) {
      if (!events.has("F" + std::to_string(i) + " destroyed")) return false;
    }
    return true;
  })) << ::testing::PrintToString(events.all());
  EXPECT_FALSE(events.has("F0 destroyed"));
  EXPECT_FALSE(events.has("F20 destroyed"));
  int fd = connectBlocking(harness->address());
  EXPECT_EQ(greetingOf(fd), "F20\n");
  ::close(fd);
  ::close(held);
  EXPECT_TRUE(waitUntil([&] { return events.has("F0 destroyed"); }));
  harness.reset();
  EXPECT_EQ(events.wrong_thread.load(), 0);
}

const std::string kV1 = std::string(PLEXUS_TEST_PLUGIN_DIR) + "/reloadable_v1.so";

size_t openFds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// What a connection to a server on `factory` is greeted with.
std::string greetingFrom(std::shared_ptr<PluginFactory> factory) {
  TcpServerOptions options = twoLoops();
  options.threads = 0;
  ServerHarness harness(options, [&](TcpServer& s) { servePlugin(s, std::move(factory)); });
  int fd = connectBlocking(harness.address());
  std::string g = greetingOf(fd);
  ::close(fd);
  return g;
}

// The same path loaded again while loaded is a library of its own (its statics start afresh), and
// is unloaded, its fd closed, when its last reference goes.
TEST(PluginReloadTest, LoadingALoadedPathAgainGivesALibraryOfItsOwn) {
  if (::access(kV1.c_str(), R_OK) != 0) GTEST_SKIP() << "not built: " << kV1;
  auto first = loadPlugin(kV1, {});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(greetingFrom((*first)->factory()), "reloadable v1 tag= loads=1\n");
  const size_t fds = openFds();
  for (int i = 0; i < 50; ++i) {
    auto again = loadPlugin(kV1, {}, {{"tag", "again"}});
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ((*again)->path(), kV1);
    EXPECT_EQ(greetingFrom((*again)->factory()), "reloadable v1 tag=again loads=1\n");
  }
  EXPECT_EQ(openFds(), fds);
  // Errors name the user's path, also when loading from a copy.
  auto rejected = loadPlugin(kV1, {}, {{"reject", "no"}});
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.status().message(), "plugin 'reloadable' rejected its arguments: no");
  EXPECT_EQ(openFds(), fds);
}

// Whether `path` is mapped in this process (/proc/self/maps names the files mapped).
bool mapped(const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.find(path) != std::string::npos) return true;
  }
  return false;
}

// The plugins Plexus ships unload when their last use goes, as a reload needs: none has an
// STB_GNU_UNIQUE symbol, which glibc never unloads (one in a static library a plugin links, say).
TEST(PluginReloadTest, TheShippedPluginsUnloadWhenTheirLastUseGoes) {
  for (const std::string name : {"echo", "http", "resp"}) {
    const std::string path = std::string(PLEXUS_PLUGIN_DIR) + "/" + name + ".so";
    if (::access(path.c_str(), R_OK) != 0) GTEST_SKIP() << "not built: " << path;
    ASSERT_FALSE(mapped(path)) << path;
    {
      auto plugin = loadPlugin(path, {});
      ASSERT_TRUE(plugin.ok()) << plugin.status();
      EXPECT_TRUE(mapped(path)) << path;
    }
    EXPECT_FALSE(mapped(path)) << name << ".so stays mapped after its last use";
  }
}

}  // namespace
}  // namespace plexus
