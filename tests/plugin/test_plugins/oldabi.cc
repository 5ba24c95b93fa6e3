// A plugin built with libstdc++'s old ABI (-D_GLIBCXX_USE_CXX11_ABI=0, see ../CMakeLists.txt): its
// std::string and std::map<std::string, std::string> are not the server's, so the PluginArgs that
// create() would get cannot be read. The loader must refuse it before calling anything in it.

#include <memory>
#include <stdexcept>

#include "plexus/buffer.h"
#include "plexus/plugin.h"
#include "plexus/plugin_export.h"

#if !defined(_GLIBCXX_USE_CXX11_ABI) || _GLIBCXX_USE_CXX11_ABI != 0
#error "oldabi.cc must be built with -D_GLIBCXX_USE_CXX11_ABI=0"
#endif

namespace {

class OldAbiHandler final : public plexus::ProtocolHandler {
 public:
  void onData(plexus::Session& session, plexus::Buffer& input) override { session.send(input); }
};

class OldAbiFactory final : public plexus::PluginFactory {
 public:
  // Reading `args` here is what goes wrong: its nodes hold new-ABI strings.
  explicit OldAbiFactory(const plexus::PluginArgs& args) {
    for (const auto& [key, value] : args) {
      if (key.size() + value.size() > 0) throw std::invalid_argument("oldabi takes no arguments");
    }
  }
  std::unique_ptr<plexus::ProtocolHandler> newHandler(const plexus::LoopInfo& /*loop*/) override {
    return std::make_unique<OldAbiHandler>();
  }
};

}  // namespace

PLEXUS_PLUGIN("oldabi", "echo built with the old std::string ABI", OldAbiFactory)
