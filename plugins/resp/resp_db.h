#pragma once
// Db: one key space (or one shard of it): keys to strings, lists and hashes, with expiry times.
//
// Memory. A key and its value live in one 32-byte Entry, the slot of an absl::flat_hash_set:
//   packed      [tag][flags][klen][vlen][key bytes, then value bytes: 28 in all]
//   packed int  [tag][flags][klen][ - ][key bytes: up to 20          ][int64 value]
//   boxed       [tag][flags][ - ][ - ][ - ][Box*]  Box = the key as a std::string + the value
// so a small key with a small string (or an integer) costs its slot and nothing on the heap.
// Expiry times are kept apart (only keys that have one pay for it), with a flag in the entry so
// that a read of a key without a TTL never looks there.
//
// Thread safety: none. A Db belongs to whoever holds its shard's lock, or to its owning loop.

#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"

namespace plexus::resp {

enum class ValueType : uint8_t { kString, kList, kHash };

// Hash and equality of std::string keys that std::string_view can look up (this Abseil's own
// transparent string hash takes absl::string_view, which is not std::string_view).
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return absl::Hash<std::string_view>()(s); }
};
struct StringEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

using List = std::deque<std::string>;
using Hash = absl::flat_hash_map<std::string, std::string, StringHash, StringEq>;

class Entry {
 public:
  enum Rep : uint8_t { kEmpty, kPacked, kPackedInt, kBoxed };

  Entry() { std::memset(bytes_, 0, sizeof(bytes_)); }
  // A string entry (stored as an integer when `value` is one written canonically).
  Entry(std::string_view key, std::string_view value);
  // An entry holding a new empty list or hash.
  Entry(std::string_view key, ValueType type);
  Entry(Entry&& other) noexcept {
    std::memcpy(bytes_, other.bytes_, sizeof(bytes_));
    other.bytes_[0] = kEmpty;
  }
  Entry& operator=(Entry&& other) noexcept;
  Entry(const Entry&) = delete;
  Entry& operator=(const Entry&) = delete;
  ~Entry() { release(); }

  std::string_view key() const;
  ValueType type() const;
  bool hasTtl() const { return bytes_[1] & kHasTtl; }
  void setHasTtl(bool on) { bytes_[1] = on ? (bytes_[1] | kHasTtl) : (bytes_[1] & ~kHasTtl); }

  // Strings. The value as bytes: for an integer, formatted into `scratch` (>= 21 bytes).
  std::string_view stringValue(char* scratch) const;
  bool isInt() const;
  // True and *out when the value is (or parses as) a 64-bit integer as Redis reads one.
  bool intValue(int64_t* out) const;
  void setString(std::string_view value);
  void setInt(int64_t value);
  void append(std::string_view tail);

  // Lists and hashes (boxed). The entry must have that type.
  List& list();
  Hash& hash();

  size_t stringLength() const;

 private:
  static constexpr uint8_t kHasTtl = 1;
  static constexpr size_t kPayload = 28;  // bytes after the 4 header bytes
  static constexpr size_t kMaxIntKey = 20;

  struct Box {
    std::string key;
    std::variant<std::string, std::unique_ptr<List>, std::unique_ptr<Hash>> value;
  };

  Rep rep() const { return static_cast<Rep>(bytes_[0]); }
  Box* box() const {
    Box* b;
    std::memcpy(&b, bytes_ + 8, sizeof(b));
    return b;
  }
  void setBox(Box* b) {
    bytes_[0] = kBoxed;
    std::memcpy(bytes_ + 8, &b, sizeof(b));
  }
  void release();
  // Rewrites the entry for `key` + a string value, keeping the TTL flag.
  void store(std::string_view key, std::string_view value);

  alignas(8) uint8_t bytes_[32];
};
static_assert(sizeof(Entry) == 32);

struct EntryHash {
  using is_transparent = void;
  size_t operator()(std::string_view key) const { return absl::Hash<std::string_view>()(key); }
  size_t operator()(const Entry& e) const { return (*this)(e.key()); }
};
struct EntryEq {
  using is_transparent = void;
  static std::string_view k(std::string_view s) { return s; }
  static std::string_view k(const Entry& e) { return e.key(); }
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    return k(a) == k(b);
  }
};

// Redis's string2ll for a value: no spaces, no '+', no leading zeros, fits in 64 bits.
bool parseInt64(std::string_view s, int64_t* out);

class Db {
 public:
  Db() = default;

  // The entry of a live key (an expired one is deleted first: lazy expiry), or nullptr.
  Entry* find(std::string_view key, int64_t now_ms);
  // Inserts a new entry (the key must not exist: find() returned nullptr).
  Entry* insert(Entry&& e);
  bool erase(std::string_view key);
  size_t size() const { return entries_.size(); }
  void clear();

  // Expiry, in ms on the store's clock. A deadline <= now deletes the key at once.
  void setExpire(Entry* e, int64_t when_ms);
  // -1: no TTL (or no such key; callers check the key first).
  int64_t expireAt(const Entry& e) const;
  bool persist(Entry* e);
  size_t withTtl() const { return expires_.size(); }
  // Keys deleted because their TTL had passed (lazy and active expiry), ever.
  uint64_t expiredTotal() const { return expired_; }

  // Redis's active expiry: samples up to `samples` keys with a TTL, deletes the expired ones,
  // and goes on while more than a quarter of a sample had expired (at most `max_rounds`).
  // Returns how many keys were deleted.
  size_t activeExpire(int64_t now_ms, size_t samples = 20, int max_rounds = 16);

  // Every live key, for KEYS and SCAN (expired ones are skipped, not deleted).
  template <class F>
  void forEach(int64_t now_ms, F&& f) const {
    for (const Entry& e : entries_) {
      if (e.hasTtl() && expireAt(e) <= now_ms) continue;
      f(e);
    }
  }

 private:
  struct Ttl {
    int64_t when_ms;
    size_t index;  // in ttl_keys_
  };
  void dropTtl(std::string_view key);

  absl::flat_hash_set<Entry, EntryHash, EntryEq> entries_;
  absl::flat_hash_map<std::string, Ttl, StringHash, StringEq> expires_;
  std::vector<std::string> ttl_keys_;  // the keys of expires_, for sampling at random
  std::minstd_rand rng_{12345};
  uint64_t expired_ = 0;
};

}  // namespace plexus::resp
