// upper's unit test: the plugin driven in memory by plexus::testing::PluginHarness, with no server
// and no socket (README, "Testing a plugin"). UPPER_PLUGIN is the path of the built upper.so.

#include <gtest/gtest.h>

#include "plexus/testing/plugin_harness.h"

TEST(UpperTest, UppercasesLettersHoweverTheInputIsSplit) {
  auto harness = plexus::testing::PluginHarness::load(UPPER_PLUGIN);
  ASSERT_TRUE(harness.ok()) << harness.status();
  plexus::testing::EmbeddedConnection& c = (*harness)->connect();

  c.feed("Hello, World!\n");
  EXPECT_EQ(c.takeOutput(), "HELLO, WORLD!\n");
  c.feedSplit("split anywhere: abc 123\n", /*seed=*/3);  // many onData() calls, same bytes
  EXPECT_EQ(c.takeOutput(), "SPLIT ANYWHERE: ABC 123\n");

  c.peerClose();  // EOF: nothing queued, so the connection closes
  EXPECT_TRUE(c.closed());
}
