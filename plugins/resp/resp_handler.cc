#include "resp_handler.h"

#include <atomic>
#include <optional>
#include <stdexcept>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "plexus/buffer.h"
#include "resp_reply.h"

namespace plexus::resp {
namespace {

// Output held back before a connection stops reading (pipelined GETs of big values).
constexpr size_t kMaxPendingOutput = 4 * 1024 * 1024;
// Replies gathered in one onData batch before they are handed to the connection.
constexpr size_t kFlushThreshold = 256 * 1024;

bool parseSize(std::string_view s, uint64_t* out) {
  uint64_t mult = 1;
  if (!s.empty()) {
    switch (s.back()) {
      case 'k':
      case 'K':
        mult = 1024;
        break;
      case 'm':
      case 'M':
        mult = 1024 * 1024;
        break;
      case 'g':
      case 'G':
        mult = 1024ull * 1024 * 1024;
        break;
      default:
        break;
    }
    if (mult != 1) s.remove_suffix(1);
  }
  uint64_t n;
  if (s.empty() || !absl::SimpleAtoi(av(s), &n) || n == 0 || n > (UINT64_MAX / mult)) return false;
  *out = n * mult;
  return true;
}

// What a connection shares with the commands it forwarded to other loops (ShardedStore).
struct Flights {
  std::atomic<int> inflight{0};
  // Set while the connection waits (reading paused) for inflight to reach 0.
  std::atomic<bool> waiting{false};
  EventLoop* origin = nullptr;
  Session* session = nullptr;  // origin loop thread only; nullptr once closed
};

// Commands on their way to the loop that owns their shard, with the place of their replies (a
// type of its own, not nested in RespHandler: std::optional<Hop> as a member of the class that
// declares it would need Hop's default member initializers before that class is complete).
struct Hop {
  size_t shard = 0;
  std::vector<std::string> args;  // every command's arguments, back to back
  std::vector<uint32_t> argc;     // how many each command has
  std::vector<const CommandSpec*> specs;
  DeferredReply place;
};

class RespHandler final : public ProtocolHandler {
 public:
  RespHandler(RespFactory& factory, const LoopInfo& loop, uint64_t id)
      : store_(factory.store()),
        parser_(factory.options().limits),
        loop_index_(loop.index),
        commands_(factory.commandCounters(loop)),
        flights_(std::make_shared<Flights>()) {
    client_.id = id;
    flights_->origin = loop.loop;
  }

  void onConnect(Session& session) override { flights_->session = &session; }
  void onClose(Session&) override { flights_->session = nullptr; }

  void onDrained(Session& session) override {
    if (paused_for_output_ && session.pendingOutputBytes() <= kMaxPendingOutput / 2) {
      paused_for_output_ = false;
      if (!flights_->waiting.load()) session.resumeReading();
    }
  }

  void onData(Session& session, Buffer& input) override {
    while (!session.closing()) {
      const RespParser::Status st = parser_.parse(input.view());
      if (st == RespParser::Status::kNeedMore) {
        input.retrieve(parser_.skippedBytes());
        break;
      }
      if (st == RespParser::Status::kError) {
        out_.append(parser_.error());
        flush(session);
        session.close();
        return;
      }
      if (!dispatch(session, parser_.args())) {
        // waits for forwarded commands; the command stays in `input` and is parsed again
        break;
      }
      input.retrieve(parser_.consumed());
      if (client_.close_after_reply) {
        flush(session);
        session.close();
        return;
      }
      if (out_.size() >= kFlushThreshold) flush(session);
      if (session.pendingOutputBytes() > kMaxPendingOutput) {
        paused_for_output_ = true;
        session.pauseReading();
        break;
      }
    }
    flush(session);
  }

 private:
  void flush(Session& session) {
    postHop();  // (its place comes before out_'s replies)
    if (out_.empty()) return;
    session.send(out_);
    out_.clear();
    if (out_.capacity() > kFlushThreshold * 4) out_.shrink_to_fit();
  }

  // False: not run yet (it must wait for forwarded commands); reading is paused meanwhile.
  bool dispatch(Session& session, Args args) {
    const CommandSpec* spec = lookupCommand(args[0]);
    if (commands_ != nullptr) commands_->count(spec);
    if (hop_ && !joinsHop(spec, args)) postHop();
    if (client_.in_multi && (spec == nullptr || spec->keys != KeyMode::kControl)) {
      if (rejectCommand(spec, args, out_)) {
        client_.multi_dirty = true;
        return true;
      }
      client_.queued.emplace_back(args.begin(), args.end());
      out_.append("+QUEUED\r\n");
      return true;
    }
    if (rejectCommand(spec, args, out_)) return true;
    switch (spec->keys) {
      case KeyMode::kControl:
        return control(session, *spec);
      case KeyMode::kNone: {
        Ctx ctx{store_, args, out_, client_};
        runCommand(*spec, ctx);
        return true;
      }
      case KeyMode::kOne: {
        const size_t shard = store_.shardOf(args[1]);
        if (forward(session, *spec, args, shard)) return true;
        shards_.assign(1, shard);
        break;
      }
      case KeyMode::kMulti:
      case KeyMode::kAll:
        if (mustWait(session)) return false;
        shards_.clear();
        shardsOf(*spec, args, store_, &shards_);
        break;
    }
    store_.lockShards(shards_);
    Ctx ctx{store_, args, out_, client_};
    runCommand(*spec, ctx);
    store_.unlockShards(shards_);
    return true;
  }

  bool control(Session& session, const CommandSpec& spec) {
    const std::string_view name = spec.name;
    if (name == "quit") {
      reply::ok(out_);
      client_.close_after_reply = true;
    } else if (name == "multi") {
      if (client_.in_multi) {
        reply::error(out_, "ERR MULTI calls can not be nested");
      } else {
        client_.in_multi = true;
        reply::ok(out_);
      }
    } else if (name == "discard") {
      if (!client_.in_multi) {
        reply::error(out_, "ERR DISCARD without MULTI");
      } else {
        endMulti();
        reply::ok(out_);
      }
    } else {  // exec
      if (!client_.in_multi) {
        reply::error(out_, "ERR EXEC without MULTI");
      } else if (client_.multi_dirty) {
        endMulti();
        reply::error(out_, "EXECABORT Transaction discarded because of previous errors.");
      } else {
        if (mustWait(session)) return false;
        exec();
      }
    }
    return true;
  }

  // EXEC: every queued command under the locks of all the shards they touch, so no other client
  // sees the transaction half done.
  void exec() {
    std::vector<std::vector<std::string_view>> all;
    all.reserve(client_.queued.size());
    shards_.clear();
    for (const auto& cmd : client_.queued) {
      all.emplace_back(cmd.begin(), cmd.end());
      shardsOf(*lookupCommand(all.back()[0]), all.back(), store_, &shards_);
    }
    std::sort(shards_.begin(), shards_.end());
    shards_.erase(std::unique(shards_.begin(), shards_.end()), shards_.end());
    reply::array(out_, all.size());
    store_.lockShards(shards_);
    for (const auto& args : all) {
      Ctx ctx{store_, args, out_, client_};
      runCommand(*lookupCommand(args[0]), ctx);
    }
    store_.unlockShards(shards_);
    endMulti();
  }

  void endMulti() {
    client_.in_multi = false;
    client_.multi_dirty = false;
    client_.queued.clear();
  }

  // ShardedStore: runs a single-key command on the loop owning its key. Consecutive commands for
  // the same owner make one hop: one closure queued there, one DeferredReply holding their replies'
  // place. Any other command closes the hop first (postHop), so replies keep request order. False
  // when the key is this loop's (or nothing forwards).
  bool forward(Session& session, const CommandSpec& spec, Args args, size_t shard) {
    if (flights_->origin == nullptr || !store_.isRemote(shard, loop_index_)) return false;
    if (!hop_) {
      flush(session);  // the replies before this one go first
      hop_.emplace();
      hop_->shard = shard;
      hop_->place = session.deferReply();
    }
    hop_->specs.push_back(&spec);
    hop_->argc.push_back(static_cast<uint32_t>(args.size()));
    hop_->args.insert(hop_->args.end(), args.begin(), args.end());
    return true;
  }

  bool joinsHop(const CommandSpec* spec, Args args) const {
    if (spec == nullptr || client_.in_multi || spec->keys != KeyMode::kOne) return false;
    const int argc = static_cast<int>(args.size());
    if (spec->arity > 0 ? argc != spec->arity : argc < -spec->arity) return false;
    return store_.shardOf(args[1]) == hop_->shard;
  }

  // Sends the open hop to its owner loop (or runs it here when the owner is not running).
  void postHop() {
    if (!hop_) return;
    auto hop = std::make_shared<Hop>(std::move(*hop_));
    hop_.reset();
    auto run = [store = &store_, hop] {
      std::string out;
      ClientState none;
      std::vector<std::string_view> views;
      const std::vector<size_t> one{hop->shard};
      size_t next = 0;
      store->lockShards(one);
      for (size_t i = 0; i < hop->specs.size(); ++i) {
        views.assign(hop->args.begin() + next, hop->args.begin() + next + hop->argc[i]);
        next += hop->argc[i];
        Ctx ctx{*store, views, out, none};
        runCommand(*hop->specs[i], ctx);
      }
      store->unlockShards(one);
      hop->place.send(std::move(out));
    };
    flights_->inflight.fetch_add(1);
    auto fn = [run, flights = flights_] {
      run();
      if (flights->inflight.fetch_sub(1) == 1 && flights->waiting.load()) {
        flights->origin->queueInLoop([flights] {
          if (flights->session != nullptr && flights->waiting.exchange(false)) {
            flights->session->resumeReading();
          }
        });
      }
    };
    if (!store_.runOnOwner(hop->shard, loop_index_, std::move(fn))) {
      // The owner is not running (starting or stopping): run it here, under the shard's lock.
      flights_->inflight.fetch_sub(1);
      run();
    }
  }

  // True (reading paused) when commands forwarded earlier have not all run yet: a command that
  // locks shards here must not overtake them.
  bool mustWait(Session& session) {
    postHop();
    if (flights_->inflight.load() == 0) return false;
    flights_->waiting.store(true);
    if (flights_->inflight.load() == 0) {  // the last one finished meanwhile
      flights_->waiting.store(false);
      return false;
    }
    session.pauseReading();
    return true;
  }

  Store& store_;
  RespParser parser_;
  size_t loop_index_;
  RespFactory::CommandCounters* const commands_;  // this loop's, or null
  ClientState client_;
  std::string out_;
  std::vector<size_t> shards_;
  bool paused_for_output_ = false;
  std::shared_ptr<Flights> flights_;
  // Commands gathered for one hop to another loop (ShardedStore).
  std::optional<Hop> hop_;
};

}  // namespace

RespOptions parseOptions(const PluginArgs& args) {
  RespOptions o;
  for (const auto& [key, value] : args) {
    uint64_t n = 0;
    if (key == "store") {
      if (value == "striped")
        o.sharded = false;
      else if (value == "sharded")
        o.sharded = true;
      else
        throw std::invalid_argument("resp: store must be 'striped' or 'sharded', got '" + value +
                                    "'");
    } else if (key == "max-inline" || key == "max-bulk" || key == "max-multibulk") {
      if (!parseSize(value, &n)) {
        throw std::invalid_argument(
            "resp: " + key + " must be a positive size (K, M, G suffixes), got '" + value + "'");
      }
      if (key == "max-inline")
        o.limits.max_inline = n;
      else if (key == "max-bulk")
        o.limits.max_bulk = n;
      else
        o.limits.max_multibulk = n;
    } else {
      throw std::invalid_argument("resp: unknown argument '" + key +
                                  "' (known: store, max-inline, max-bulk, max-multibulk)");
    }
  }
  return o;
}

RespFactory::RespFactory(const PluginArgs& args, Clock clock) : options_(parseOptions(args)) {
  if (options_.sharded)
    store_ = std::make_unique<ShardedStore>(std::move(clock));
  else
    store_ = std::make_unique<StripedStore>(std::move(clock));
}

void RespFactory::CommandCounters::count(const CommandSpec* spec) {
  MetricCounter*& c = by_command_[spec];
  if (c == nullptr) {
    c = scope_->counter("plexus_resp_commands_total", "RESP commands received, by name.",
                        {{"command", spec != nullptr ? spec->name : "unknown"}});
  }
  c->add();
}

RespFactory::CommandCounters* RespFactory::commandCounters(const LoopInfo& loop) {
  if (loop.metrics == nullptr) return nullptr;
  absl::MutexLock lock(&counters_mu_);
  std::unique_ptr<CommandCounters>& c = counters_[loop.index];
  if (!c) c = std::make_unique<CommandCounters>(loop.metrics);
  return c.get();
}

std::unique_ptr<ProtocolHandler> RespFactory::newHandler(const LoopInfo& loop) {
  return std::make_unique<RespHandler>(*this, loop, next_client_id_.fetch_add(1));
}

}  // namespace plexus::resp
