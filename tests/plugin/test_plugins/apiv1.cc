// A plugin as Plexus 0.1.0 built them: plugin API version 1, whose descriptor had no build
// signature (api_version, name, description, create). The loader must refuse it by its version
// alone, without reading the rest as a newer descriptor.

#include <boost/dll/alias.hpp>
#include <cstdint>
#include <memory>

#include "plexus/buffer.h"
#include "plexus/plugin.h"

namespace apiv1 {

struct DescriptorV1 {
  uint32_t api_version;
  const char* name;
  const char* description;
  std::unique_ptr<plexus::PluginFactory> (*create)(const plexus::PluginArgs& args);
};

class Handler final : public plexus::ProtocolHandler {
 public:
  void onData(plexus::Session& session, plexus::Buffer& input) override { session.send(input); }
};

class Factory final : public plexus::PluginFactory {
 public:
  std::unique_ptr<plexus::ProtocolHandler> newHandler(const plexus::LoopInfo& /*loop*/) override {
    return std::make_unique<Handler>();
  }
};

std::unique_ptr<plexus::PluginFactory> create(const plexus::PluginArgs&) {
  return std::make_unique<Factory>();
}

const DescriptorV1 descriptor = {1, "apiv1", "a plugin API version 1 echo", &create};

}  // namespace apiv1

BOOST_DLL_ALIAS(apiv1::descriptor, plexus_plugin_descriptor)
