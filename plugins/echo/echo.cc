// echo: sends back every byte it receives, unchanged (binary-safe, any size).

#include <memory>
#include <stdexcept>

#include "plexus/buffer.h"
#include "plexus/plugin.h"
#include "plexus/plugin_export.h"

namespace {

class EchoHandler final : public plexus::ProtocolHandler {
 public:
  // Hands the whole input buffer to the connection; it takes the bytes over without a copy when
  // nothing is queued, and leaves `input` empty either way.
  void onData(plexus::Session& session, plexus::Buffer& input) override { session.send(input); }
};

class EchoFactory final : public plexus::PluginFactory {
 public:
  explicit EchoFactory(const plexus::PluginArgs& args) {
    if (!args.empty()) {
      throw std::invalid_argument("echo takes no arguments, got '" + args.begin()->first + "'");
    }
  }
  std::unique_ptr<plexus::ProtocolHandler> newHandler(const plexus::LoopInfo& /*loop*/) override {
    return std::make_unique<EchoHandler>();
  }
};

}  // namespace

PLEXUS_PLUGIN("echo", "byte-exact echo of everything received", EchoFactory)
