// upper: sends back every byte it receives, with the ASCII letters in upper case ("Hi!\n" gives
// "HI!\n"; every other byte unchanged). A plugin built outside the Plexus tree, against an
// installed Plexus: see CMakeLists.txt.

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>

#include "plexus/buffer.h"
#include "plexus/plugin.h"
#include "plexus/plugin_export.h"

namespace {

class UpperHandler final : public plexus::ProtocolHandler {
 public:
  void onData(plexus::Session& session, plexus::Buffer& input) override {
    out_.assign(input.view());
    input.retrieveAll();
    std::ranges::transform(out_, out_.begin(), [](char c) {
      return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
    });
    session.send(out_);
  }

 private:
  std::string out_;  // kept between calls: its capacity is reused
};

class UpperFactory final : public plexus::PluginFactory {
 public:
  explicit UpperFactory(const plexus::PluginArgs& args) {
    if (!args.empty()) {
      throw std::invalid_argument("upper takes no arguments, got '" + args.begin()->first + "'");
    }
  }
  std::unique_ptr<plexus::ProtocolHandler> newHandler(const plexus::LoopInfo& /*loop*/) override {
    return std::make_unique<UpperHandler>();
  }
};

}  // namespace

PLEXUS_PLUGIN("upper", "echo with ASCII letters in upper case", UpperFactory)
