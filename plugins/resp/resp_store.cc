#include "resp_store.h"

#include <chrono>

#include "absl/base/call_once.h"
#include "absl/hash/hash.h"
#include "absl/time/clock.h"
#include "plexus/metrics.h"

namespace plexus::resp {
namespace {
constexpr auto kExpireInterval = std::chrono::milliseconds(100);
}

Clock systemClock() {
  return [] { return absl::GetCurrentTimeNanos() / 1000000; };
}

Store::~Store() = default;

size_t Store::shardOf(std::string_view key) const {
  if (shards_.size() == 1) return 0;
  // The high bits: the hash tables inside a shard use the low ones.
  return (absl::Hash<std::string_view>()(key) >> 40) % shards_.size();
}

void Store::createShards(size_t n) {
  shards_.reserve(n);
  for (size_t i = 0; i < n; ++i) shards_.push_back(std::make_unique<Shard>());
}

void Store::lockShards(const std::vector<size_t>& shards) {
  for (size_t i : shards) shards_[i]->mu.Lock();
}

void Store::unlockShards(const std::vector<size_t>& shards) {
  for (auto it = shards.rbegin(); it != shards.rend(); ++it) shards_[*it]->mu.Unlock();
}

size_t Store::activeExpireCycle(size_t loop_index, size_t loops) {
  size_t deleted = 0;
  const int64_t now = nowMs();
  for (size_t i = loop_index; i < shards_.size(); i += loops) {
    Shard& s = *shards_[i];
    absl::MutexLock lock(&s.mu);
    deleted += s.db.activeExpire(now);
  }
  return deleted;
}

Store::Figures Store::figures(size_t loop_index, size_t loops) {
  Figures f;
  if (loops == 0) return f;
  for (size_t i = loop_index; i < shards_.size(); i += loops) {
    Shard& s = *shards_[i];
    absl::MutexLock lock(&s.mu);
    f.keys += s.db.size();
    f.expired += s.db.expiredTotal();
  }
  return f;
}

void Store::onLoopStart(const LoopInfo& loop) {
  if (loop.loop == nullptr) return;  // (an in-memory harness: no loop to time)
  const size_t index = loop.index, count = loop.count;
  // The loop's share of the key space (the shards its expiry looks after), refreshed with each
  // expiry round: the sums over loops are the whole store's.
  MetricGauge* keys = nullptr;
  MetricCounter* expired = nullptr;
  if (loop.metrics != nullptr) {
    keys = loop.metrics->gauge("plexus_resp_keys",
                               "Keys in the store (the shards this loop expires; refreshed every "
                               "100 ms).");
    expired = loop.metrics->counter(
        "plexus_resp_expired_keys_total",
        "Keys deleted because their TTL passed, lazily or by active expiry (refreshed every "
        "100 ms).");
  }
  auto seen = std::make_shared<uint64_t>(0);  // expired keys already counted (loop thread only)
  const TimerId id = loop.loop->runEvery(kExpireInterval, [this, index, count, keys, expired,
                                                           seen] {
    activeExpireCycle(index, count);
    if (keys == nullptr) return;
    const Figures f = figures(index, count);
    keys->set(static_cast<int64_t>(f.keys));
    if (f.expired > *seen) expired->add(f.expired - *seen);
    *seen = f.expired;
  });
  absl::MutexLock lock(&timers_mu_);
  timers_.emplace_back(loop.loop, id);
}

void Store::onLoopStop(const LoopInfo& loop) {
  if (loop.loop == nullptr) return;
  absl::MutexLock lock(&timers_mu_);
  for (auto it = timers_.begin(); it != timers_.end(); ++it) {
    if (it->first == loop.loop) {
      loop.loop->cancel(it->second);
      timers_.erase(it);
      break;
    }
  }
}

StripedStore::StripedStore(Clock clock) : Store(std::move(clock)) { createShards(kStripes); }

void ShardedStore::onLoopStart(const LoopInfo& loop) {
  absl::call_once(created_, [&] {
    createShards(loop.count);
    absl::MutexLock lock(&loops_mu_);
    loops_.assign(loop.count, nullptr);
  });
  {
    absl::MutexLock lock(&loops_mu_);
    if (loop.index < loops_.size()) loops_[loop.index] = loop.loop;
  }
  Store::onLoopStart(loop);
}

void ShardedStore::onLoopStop(const LoopInfo& loop) {
  Store::onLoopStop(loop);
  absl::MutexLock lock(&loops_mu_);
  if (loop.index < loops_.size()) loops_[loop.index] = nullptr;
}

bool ShardedStore::runOnOwner(size_t shard, size_t from, std::function<void()> fn) {
  if (shard == from) return false;
  absl::ReaderMutexLock lock(&loops_mu_);
  EventLoop* owner = shard < loops_.size() ? loops_[shard] : nullptr;
  if (owner == nullptr) return false;
  owner->queueInLoop(std::move(fn));
  return true;
}

}  // namespace plexus::resp
