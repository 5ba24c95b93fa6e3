#pragma once
// The command table and the commands themselves, written against a Keyspace: the shards a command
// may touch, already locked (or owned) by whoever runs it. Replies are appended to one output
// string, byte for byte as redis-server 7.0 writes them.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "resp_db.h"

namespace plexus::resp {

// The shards of a store as a command sees them. The caller holds what the command needs: the
// shard of each of its keys, or every shard for a command over the whole key space.
class Keyspace {
 public:
  virtual ~Keyspace() = default;
  virtual size_t shardCount() const = 0;
  virtual size_t shardOf(std::string_view key) const = 0;
  virtual Db& shard(size_t index) = 0;
  virtual int64_t nowMs() const = 0;
  Db& dbFor(std::string_view key) { return shard(shardOf(key)); }
};

// Per-connection state the commands read and change.
struct ClientState {
  uint64_t id = 0;
  std::string name;
  bool in_multi = false;
  bool multi_dirty = false;  // a command queued in MULTI was refused: EXEC aborts
  std::vector<std::vector<std::string>> queued;
  bool close_after_reply = false;  // QUIT
};

using Args = std::span<const std::string_view>;

// Which shards a command needs.
enum class KeyMode : uint8_t {
  kNone,     // no keys (PING, ECHO, CLIENT, ...)
  kOne,      // one key, args[1]
  kMulti,    // args[first..] every `step`th (DEL, EXISTS, MGET: 1; MSET: 2)
  kAll,      // the whole key space (KEYS, SCAN, DBSIZE, FLUSHALL)
  kControl,  // MULTI, EXEC, DISCARD, QUIT: handled by the connection, never queued
};

struct Ctx;
struct CommandSpec {
  const char* name;  // lower case, as error replies name it
  int arity;         // > 0: exactly; < 0: at least -arity (the name counts)
  KeyMode keys;
  int step;  // kMulti
  void (*run)(Ctx&);
};

struct Ctx {
  Keyspace& ks;
  Args args;
  std::string& out;
  ClientState& client;
};

// The command named args[0] (any case), or nullptr.
const CommandSpec* lookupCommand(std::string_view name);

// Appends the refusal of a command that cannot run: unknown, or the wrong number of arguments.
// Returns false (and appends nothing) when `spec` accepts `args`.
bool rejectCommand(const CommandSpec* spec, Args args, std::string& out);

// The shards a command of `spec` needs, sorted, without repeats (kAll: every shard).
void shardsOf(const CommandSpec& spec, Args args, const Keyspace& ks, std::vector<size_t>* out);

// Runs a command whose shards are held. MULTI/EXEC/DISCARD/QUIT are the caller's.
void runCommand(const CommandSpec& spec, Ctx& ctx);

}  // namespace plexus::resp
