// makeEngine(), engineNames() and the epoll mode names.

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "plexus/engine.h"

namespace plexus {
namespace {

TEST(EngineFactoryTest, KnowsTheThreeEngines) {
  EXPECT_EQ(engineNames(), (std::vector<std::string>{"epoll", "poll", "select", "uring"}));
  for (const std::string& name : engineNames()) {
    auto engine = makeEngine(EngineOptions{name, EpollMode::kOneshot});
    ASSERT_TRUE(engine.ok()) << name << ": " << engine.status();
    const std::string got((*engine)->name());
    EXPECT_EQ(got.rfind(name, 0), 0u) << got;  // "epoll (oneshot)" for epoll
  }
}

TEST(EngineFactoryTest, DefaultIsEpollOneshot) {
  auto engine = makeEngine(EngineOptions{});
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->name(), "epoll (oneshot)");
  EXPECT_FALSE((*engine)->edgeTriggered());
}

TEST(EngineFactoryTest, EpollModeReachesTheEngine) {
  auto edge = makeEngine(EngineOptions{"epoll", EpollMode::kEdge});
  ASSERT_TRUE(edge.ok()) << edge.status();
  EXPECT_EQ((*edge)->name(), "epoll (edge)");
  EXPECT_TRUE((*edge)->edgeTriggered());
  auto level = makeEngine(EngineOptions{"epoll", EpollMode::kLevel});
  ASSERT_TRUE(level.ok()) << level.status();
  EXPECT_EQ((*level)->name(), "epoll (level)");
  EXPECT_FALSE((*level)->edgeTriggered());
}

TEST(EngineFactoryTest, UnknownNameListsTheKnownOnes) {
  for (const char* name : {"xyz", "", "EPOLL", "kqueue"}) {
    auto engine = makeEngine(EngineOptions{name, EpollMode::kOneshot});
    ASSERT_FALSE(engine.ok()) << name;
    EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(engine.status().message(),
              "unknown engine '" + std::string(name) + "' (known: epoll, poll, select, uring)");
  }
}

TEST(EngineFactoryTest, EpollModeNamesRoundTrip) {
  for (EpollMode mode : {EpollMode::kOneshot, EpollMode::kLevel, EpollMode::kEdge}) {
    auto parsed = parseEpollMode(epollModeName(mode));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, mode);
  }
  EXPECT_EQ(epollModeName(EpollMode::kOneshot), "oneshot");
  EXPECT_EQ(epollModeName(EpollMode::kLevel), "level");
  EXPECT_EQ(epollModeName(EpollMode::kEdge), "edge");
}

TEST(EngineFactoryTest, UnknownEpollMode) {
  auto parsed = parseEpollMode("sideways");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), "unknown epoll mode 'sideways' (known: oneshot, level, edge)");
  EXPECT_FALSE(parseEpollMode("").ok());
  EXPECT_FALSE(parseEpollMode("Edge").ok());
}

}  // namespace
}  // namespace plexus
