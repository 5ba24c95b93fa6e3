// testproto: a plugin for the tests of the loader and the host.
//
// Arguments: greeting=TEXT (sent to each new connection), reject=WHY (create() throws WHY); any
// other key is refused. Data: echoed back, except that a chunk holding '!' makes onData throw.

#include <memory>
#include <stdexcept>
#include <string>

#include "plexus/buffer.h"
#include "plexus/plugin.h"
#include "plexus/plugin_export.h"

namespace {

class TestProtoHandler final : public plexus::ProtocolHandler {
 public:
  explicit TestProtoHandler(const std::string& greeting) : greeting_(greeting) {}

  void onConnect(plexus::Session& session) override {
    if (!greeting_.empty()) session.send(greeting_);
  }
  void onData(plexus::Session& session, plexus::Buffer& input) override {
    if (input.view().find('!') != std::string_view::npos) {
      throw std::runtime_error("testproto handler exploded");
    }
    session.send(input);
  }

 private:
  const std::string& greeting_;  // owned by the factory, which outlives its handlers
};

class TestProtoFactory final : public plexus::PluginFactory {
 public:
  explicit TestProtoFactory(const plexus::PluginArgs& args) {
    for (const auto& [key, value] : args) {
      if (key == "greeting") {
        greeting_ = value;
      } else if (key == "reject") {
        throw std::invalid_argument(value);
      } else {
        throw std::invalid_argument("unknown argument '" + key + "'");
      }
    }
  }
  std::unique_ptr<plexus::ProtocolHandler> newHandler(const plexus::LoopInfo& /*loop*/) override {
    return std::make_unique<TestProtoHandler>(greeting_);
  }

 private:
  std::string greeting_;
};

}  // namespace

PLEXUS_PLUGIN("testproto", "echo that greets and throws on '!'", TestProtoFactory)
