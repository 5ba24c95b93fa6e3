#pragma once
// The resp plugin's factory and per-connection handler (resp_plugin.cc exports the factory).
//
// Plugin arguments: store=striped|sharded (default striped), max-inline=SIZE (64K),
// max-bulk=SIZE (512M), max-multibulk=N (1048576). SIZE takes K, M, G suffixes. Anything else is
// refused with std::invalid_argument.

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "plexus/metrics.h"

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

  // One loop's plexus_resp_commands_total{command}: each command's series looked up the first
  // time the loop sees it, then a plain counter. Loop thread only.
  class CommandCounters {
   public:
    explicit CommandCounters(MetricsScope* scope) : scope_(scope) {}
    void count(const CommandSpec* spec);

   private:
    MetricsScope* const scope_;
    absl::flat_hash_map<const CommandSpec*, MetricCounter*> by_command_;
  };
  // The counters of `loop` (made on first use; null without LoopInfo::metrics). They live as long
  // as the factory.
  CommandCounters* commandCounters(const LoopInfo& loop);

 private:
  absl::Mutex counters_mu_;
  std::map<size_t, std::unique_ptr<CommandCounters>> counters_ ABSL_GUARDED_BY(counters_mu_);
  RespOptions options_;
  std::unique_ptr<Store> store_;
  std::atomic<uint64_t> next_client_id_{1};
};

}  // namespace plexus::resp
