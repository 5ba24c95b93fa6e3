// reloadable: an echo built twice from this file, as reloadable_v1.so and reloadable_v2.so
// (PLEXUS_RELOADABLE_VERSION 1 or 2), with the same plugin name, for the live reload tests.
//
// Each connection is greeted with one line, "reloadable vVERSION tag=TAG loads=N\n", then its bytes
// are echoed back. TAG is the `tag` argument (empty by default); N counts the factories made by
// this copy of the library (1 for each fresh load: a library loaded again is its own copy, with
// its own statics). Arguments: tag=TEXT, reject=WHY (create() throws WHY); any other key is refused.

#include <memory>
#include <stdexcept>
#include <string>

#include "plexus/buffer.h"
#include "plexus/plugin.h"
#include "plexus/plugin_export.h"

#ifndef PLEXUS_RELOADABLE_VERSION
#error "build with -DPLEXUS_RELOADABLE_VERSION=1 or 2"
#endif

namespace {

int factories_made = 0;  // per loaded copy of the library (create() runs on the loading thread)

class ReloadableHandler final : public plexus::ProtocolHandler {
 public:
  explicit ReloadableHandler(const std::string& greeting) : greeting_(greeting) {}
  void onConnect(plexus::Session& session) override { session.send(greeting_); }
  void onData(plexus::Session& session, plexus::Buffer& input) override { session.send(input); }

 private:
  const std::string& greeting_;  // owned by the factory, which outlives its handlers
};

class ReloadableFactory final : public plexus::PluginFactory {
 public:
  explicit ReloadableFactory(const plexus::PluginArgs& args) {
    std::string tag;
    for (const auto& [key, value] : args) {
      if (key == "tag") {
        tag = value;
      } else if (key == "reject") {
        throw std::invalid_argument(value);
      } else {
        throw std::invalid_argument("unknown argument '" + key + "'");
      }
    }
    greeting_ = "reloadable v" + std::to_string(PLEXUS_RELOADABLE_VERSION) + " tag=" + tag +
                " loads=" + std::to_string(++factories_made) + "\n";
  }
  std::unique_ptr<plexus::ProtocolHandler> newHandler(const plexus::LoopInfo& /*loop*/) override {
    return std::make_unique<ReloadableHandler>(greeting_);
  }

 private:
  std::string greeting_;
};

}  // namespace

PLEXUS_PLUGIN("reloadable", "an echo that greets with its version, for the reload tests",
              ReloadableFactory)
