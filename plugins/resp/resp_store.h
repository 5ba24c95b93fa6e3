#pragma once
// The key space shared by every loop, two ways behind one interface:
//
//  - StripedStore: the keys hashed over a fixed number of stripes (shards), each a Db behind its
//    own absl::Mutex. Every command runs on its connection's loop thread, holding the stripes of
//    its keys.
//  - ShardedStore: one shard per loop, owned by that loop. A single-key command whose key another
//    loop owns is executed there (EventLoop::queueInLoop) and its reply comes back through the
//    connection's DeferredReply, which keeps pipelined replies in order. Multi-key commands, those
//    over the whole key space and EXEC fall back to locking the shards they touch, on the
//    connection's own thread, after the connection's forwarded commands have all run (so a client
//    sees its own writes in order). Each shard keeps a mutex for that fallback; its owner takes it
//    uncontended for the single-key commands it runs.
//
// Locking rule (both): shards are locked in increasing index order, so two multi-shard commands
// never wait on each other in a cycle. Active expiry: each loop samples, every 100 ms, the keys
// with a TTL of the shards it looks after (ShardedStore: its own; StripedStore: stripe i for
// i % loops == its index), as redis-server's serverCron does.
//
// Thread safety: shardOf(), shardCount() and nowMs() from any thread once a loop has started;
// shard(i) only while holding lock i (lockShards) or running as the shard's owner under it.

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "plexus/event_loop.h"
#include "plexus/plugin.h"
#include "resp_commands.h"

namespace plexus::resp {

// Milliseconds; the default is the wall clock (EXAT/PXAT are Unix times), tests pass their own.
using Clock = std::function<int64_t()>;
Clock systemClock();

class Store : public Keyspace {
 public:
  ~Store() override;

  size_t shardCount() const override { return shards_.size(); }
  size_t shardOf(std::string_view key) const override;
  Db& shard(size_t index) override { return shards_[index]->db; }
  int64_t nowMs() const override { return clock_(); }

  // Locks (unlocks) the given shards, sorted and without repeats.
  void lockShards(const std::vector<size_t>& shards) ABSL_NO_THREAD_SAFETY_ANALYSIS;
  void unlockShards(const std::vector<size_t>& shards) ABSL_NO_THREAD_SAFETY_ANALYSIS;

  // Per-loop hooks (the factory's): the active-expiry timer of the loop.
  virtual void onLoopStart(const LoopInfo& loop);
  virtual void onLoopStop(const LoopInfo& loop);

  // ShardedStore: queues `fn` on the loop that owns `shard` and returns true, unless that is the
  // calling loop `from` (or the owner is not running): then false, and the caller runs it itself.
  virtual bool runOnOwner(size_t shard, size_t from, std::function<void()> fn) { return false; }
  // Whether a command on `shard`, from loop `from`, is to go to another loop (runOnOwner).
  virtual bool isRemote(size_t shard, size_t from) const { return false; }
  virtual const char* name() const = 0;

  // One round of active expiry over the shards loop `loop_index` of `loops` looks after. Returns
  // the keys deleted.
  size_t activeExpireCycle(size_t loop_index, size_t loops);
  // Over the same shards: the keys they hold and the keys they have expired, ever.
  struct Figures {
    uint64_t keys = 0;
    uint64_t expired = 0;
  };
  Figures figures(size_t loop_index, size_t loops);

 protected:
  explicit Store(Clock clock) : clock_(std::move(clock)) {}
  void createShards(size_t n);

  struct Shard {
    absl::Mutex mu;
    Db db;  // guarded by mu (see the locking rule above)
  };
  std::vector<std::unique_ptr<Shard>> shards_;
  Clock clock_;

 private:
  absl::Mutex timers_mu_;
  std::vector<std::pair<EventLoop*, TimerId>> timers_ ABSL_GUARDED_BY(timers_mu_);
};

class StripedStore final : public Store {
 public:
  static constexpr size_t kStripes = 64;
  explicit StripedStore(Clock clock);
  const char* name() const override { return "striped"; }
};

class ShardedStore final : public Store {
 public:
  explicit ShardedStore(Clock clock) : Store(std::move(clock)) {}
  void onLoopStart(const LoopInfo& loop) override;
  void onLoopStop(const LoopInfo& loop) override;
  bool runOnOwner(size_t shard, size_t from, std::function<void()> fn) override;
  bool isRemote(size_t shard, size_t from) const override {
    return shard != from && shards_.size() > 1;
  }
  const char* name() const override { return "sharded"; }

 private:
  absl::once_flag created_;
  // The loop owning each shard; nullptr before its start and after its stop. A reader lock while
  // queueing keeps a stopping loop from going away under queueInLoop().
  absl::Mutex loops_mu_;
  std::vector<EventLoop*> loops_ ABSL_GUARDED_BY(loops_mu_);
};

}  // namespace plexus::resp
