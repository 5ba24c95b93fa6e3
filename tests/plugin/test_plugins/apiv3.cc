// A plugin as Plexus built them for plugin API version 3: the descriptor says 3, and its code reads
// LoopInfo only up to `count` (version 4 added `metrics` after it). Version 4 is additive: the
// loader must take it, and it must serve.

#include <boost/dll/alias.hpp>

#include <memory>

#include "plexus/buffer.h"
#include "plexus/plugin.h"

namespace apiv3 {

class Echo final : public plexus::ProtocolHandler {
 public:
  void onData(plexus::Session& session, plexus::Buffer& input) override { session.send(input); }
};

class Factory final : public plexus::PluginFactory {
 public:
  std::unique_ptr<plexus::ProtocolHandler> newHandler(const plexus::LoopInfo& loop) override {
    (void)loop.index;  // what a version 3 plugin may read: loop, index, count
    return std::make_unique<Echo>();
  }
};

std::unique_ptr<plexus::PluginFactory> create(const plexus::PluginArgs& /*args*/) {
  return std::make_unique<Factory>();
}

const plexus::PluginDescriptor descriptor = {3, plexus::currentBuildSignature(), "apiv3",
                                             "a plugin API version 3 echo", &create};

}  // namespace apiv3

BOOST_DLL_ALIAS(apiv3::descriptor, plexus_plugin_descriptor)
