// The http plugin's own series through the plugin harness: plexus_http_requests_total by status,
// one count per answered request (pipelined or not), in the harness's registry (loop="0").

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "plexus/testing/plugin_harness.h"

namespace plexus::testing {
namespace {

const std::string kPlugin = std::string(PLEXUS_PLUGIN_DIR) + "/http.so";

TEST(HttpMetricsTest, RequestsAreCountedByStatus) {
  auto h = PluginHarness::load(kPlugin, {{"return:/hello", "200 Hello, World!"}});
  ASSERT_TRUE(h.ok()) << h.status();
  EmbeddedConnection& c = (*h)->connect();
  c.feed("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
         "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
         "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_NE(c.takeOutput().find("404"), std::string::npos);
  EmbeddedConnection& bad = (*h)->connect();
  bad.feed("NOT HTTP\r\n\r\n");
  EXPECT_NE(bad.takeOutput().find("HTTP/1.1 400"), std::string::npos);
  const std::string text = (*h)->metrics().render();
  EXPECT_NE(text.find("# TYPE plexus_http_requests_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("plexus_http_requests_total{loop=\"0\",status=\"200\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("plexus_http_requests_total{loop=\"0\",status=\"404\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("plexus_http_requests_total{loop=\"0\",status=\"400\"} 1\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace plexus::testing
