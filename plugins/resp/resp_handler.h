#pragma once
// The resp plugin's factory and per-connection handler (resp_plugin.cc exports the factory).
//
// Plugin arguments: store=striped|sharded (default striped), max-inline=SIZE (64K),
// max-bulk=SIZE (512M), max-multibulk=N (1048576). SIZE takes K, M, G suffixes. Anything else is
// refused with std::invalid_argument.

#include <memory>
#include <string>

#include "plexus/plugin.h"
#include "resp_parser.h"
#include "resp_store.h"

namespace plexus::resp {

struct RespOptions {
  ParserLimits limits;
  bool sharded = false;
};

// Parses --plugin-arg pairs; throws std::invalid_argument naming a bad one.
RespOptions parseOptions(const PluginArgs& args);

class RespFactory final : public PluginFactory {
 public:
  explicit RespFactory(const PluginArgs& args) : RespFactory(args, systemClock()) {}
  RespFactory(const PluginArgs& args, Clock clock);

  void onLoopStart(const LoopInfo& loop) override { store_->onLoopStart(loop); }
  void onLoopStop(const LoopInfo& loop) override { store_->onLoopStop(loop); }
  std::unique_ptr<ProtocolHandler> newHandler(const LoopInfo& loop) override;

  Store& store() { return *store_; }
  const RespOptions& options() const { return options_; }

 private:
  RespOptions options_;
  std::unique_ptr<Store> store_;
  std::atomic<uint64_t> next_client_id_{1};
};

}  // namespace plexus::resp
