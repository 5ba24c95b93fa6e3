// The resp plugin's command counters through the plugin harness: plexus_resp_commands_total by
// command name, unknown commands as command="unknown", in the harness's registry (loop="0").
// (Keys and expired keys are refreshed by the loops' expiry timers: tests/integration checks them
// against a running plexus-server.)

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "plexus/testing/plugin_harness.h"
#include "resp_handler.h"

namespace plexus::resp {
namespace {

TEST(RespMetricsTest, CommandsAreCountedByName) {
  auto factory = std::make_shared<RespFactory>(PluginArgs{});
  plexus::testing::PluginHarness h(factory);
  plexus::testing::EmbeddedConnection& c = h.connect();
  c.feed("SET a 1\r\nGET a\r\nget a\r\n*1\r\n$4\r\nPING\r\nNOSUCH x\r\n");
  EXPECT_EQ(c.takeOutput(), "+OK\r\n$1\r\n1\r\n$1\r\n1\r\n+PONG\r\n"
                            "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n");
  const std::string text = h.metrics().render();
  EXPECT_NE(text.find("# TYPE plexus_resp_commands_total counter\n"), std::string::npos) << text;
  for (const char* line : {"plexus_resp_commands_total{command=\"get\",loop=\"0\"} 2\n",
                           "plexus_resp_commands_total{command=\"ping\",loop=\"0\"} 1\n",
                           "plexus_resp_commands_total{command=\"set\",loop=\"0\"} 1\n",
                           "plexus_resp_commands_total{command=\"unknown\",loop=\"0\"} 1\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << text;
  }
}

}  // namespace
}  // namespace plexus::resp
