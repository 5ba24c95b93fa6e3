// A plugin that says it was built by another compiler and version than the server (GCC for Clang or
// Clang for GCC, seven major versions on), with the same standard library in the same mode. The
// loader accepts it: the compiler is reported, not compared (see compatible() in plugin_loader.cc).

#include <boost/dll/alias.hpp>
#include <memory>

#include "plexus/buffer.h"
#include "plexus/plugin.h"

namespace othercompiler {

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

consteval plexus::PluginBuildSignature otherCompiler() {
  plexus::PluginBuildSignature s = plexus::currentBuildSignature();
  s.compiler = s.compiler == plexus::PluginBuildSignature::kGcc ? plexus::PluginBuildSignature::kClang
                                                                : plexus::PluginBuildSignature::kGcc;
  s.compiler_major += 7;
  return s;
}

constinit const plexus::PluginDescriptor descriptor = {
    plexus::kPluginApiVersion, otherCompiler(), "othercompiler", "echo from another compiler",
    &create};

}  // namespace othercompiler

BOOST_DLL_ALIAS(othercompiler::descriptor, plexus_plugin_descriptor)
