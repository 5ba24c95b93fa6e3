// A plugin built in libstdc++'s debug mode (-D_GLIBCXX_DEBUG, see ../CMakeLists.txt): its std::map
// is the checked one, with another layout than the server's PluginArgs. The loader must refuse it.

#include <memory>

#include "plexus/buffer.h"
#include "plexus/plugin.h"
#include "plexus/plugin_export.h"

#ifndef _GLIBCXX_DEBUG
#error "debugmode.cc must be built with -D_GLIBCXX_DEBUG"
#endif

namespace {

class DebugModeHandler final : public plexus::ProtocolHandler {
 public:
  void onData(plexus::Session& session, plexus::Buffer& input) override { session.send(input); }
};

class DebugModeFactory final : public plexus::PluginFactory {
 public:
  explicit DebugModeFactory(const plexus::PluginArgs& args) { (void)args.size(); }
  std::unique_ptr<plexus::ProtocolHandler> newHandler(const plexus::LoopInfo& /*loop*/) override {
    return std::make_unique<DebugModeHandler>();
  }
};

}  // namespace

PLEXUS_PLUGIN("debugmode", "echo built in libstdc++ debug mode", DebugModeFactory)
