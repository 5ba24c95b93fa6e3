#include "resp_commands.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "resp_reply.h"

namespace plexus::resp {
namespace {

using reply::bulk;
using reply::error;
using reply::integer;
using reply::nullBulk;

constexpr std::string_view kWrongType =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
constexpr std::string_view kNotInt = "ERR value is not an integer or out of range";
constexpr std::string_view kOverflow = "ERR increment or decrement would overflow";
constexpr std::string_view kSyntax = "ERR syntax error";
constexpr size_t kMaxStringSize = 512ull * 1024 * 1024;

bool eqNoCase(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(av(a), av(b));
}

void wrongArity(std::string& out, std::string_view name) {
  error(out, absl::StrCat("ERR wrong number of arguments for '", av(name), "' command"));
}

// Matches one pattern element at p[*pi] (not '*') against c, and moves *pi past it.
bool matchOne(std::string_view p, size_t* pi, char c) {
  size_t i = *pi;
  switch (p[i]) {
    case '?':
      *pi = i + 1;
      return true;
    case '[': {
      ++i;
      const bool negate = i < p.size() && p[i] == '^';
      if (negate) ++i;
      bool match = false;
      while (i < p.size() && p[i] != ']') {
        if (p[i] == '\\' && i + 1 < p.size()) {
          ++i;
          if (p[i] == c) match = true;
        } else if (i + 2 < p.size() && p[i + 1] == '-') {  // (as Redis: "[a-]" is a range to ']')
          unsigned char lo = static_cast<unsigned char>(p[i]);
          unsigned char hi = static_cast<unsigned char>(p[i + 2]);
          if (lo > hi) std::swap(lo, hi);
          const unsigned char u = static_cast<unsigned char>(c);
          if (u >= lo && u <= hi) match = true;
          i += 2;
        } else if (p[i] == c) {
          match = true;
        }
        ++i;
      }
      *pi = i < p.size() ? i + 1 : i;  // past the ']' (an unclosed class ends the pattern)
      return negate ? !match : match;
    }
    case '\\':
      if (i + 1 < p.size()) ++i;
      [[fallthrough]];
    default:
      *pi = i + 1;
      return p[i] == c;
  }
}

// Glob matching as KEYS and SCAN MATCH do it: * ? [abc] [^a-z] [a-z] and \ escapes. Iterative,
// going back to the last '*' on a mismatch, so no pattern takes more than O(pattern * key) steps.
bool globMatch(std::string_view p, std::string_view s) {
  size_t pi = 0, si = 0;
  size_t star_p = std::string_view::npos, star_s = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star_p = ++pi;
      star_s = si;
      continue;
    }
    size_t next = pi;
    if (pi < p.size() && matchOne(p, &next, s[si])) {
      pi = next;
      ++si;
      continue;
    }
    if (star_p == std::string_view::npos) return false;
    pi = star_p;  // let the last '*' take one more byte
    si = ++star_s;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

// --- connection commands ---

void cmdPing(Ctx& c) {
  if (c.args.size() > 2) return wrongArity(c.out, "ping");
  if (c.args.size() == 2) return bulk(c.out, c.args[1]);
  c.out.append("+PONG\r\n");
}

void cmdEcho(Ctx& c) { bulk(c.out, c.args[1]); }

void cmdSelect(Ctx& c) {
  int64_t index;
  if (!parseInt64(c.args[1], &index)) return error(c.out, kNotInt);
  if (index != 0) return error(c.out, "ERR DB index is out of range");
  reply::ok(c.out);
}

bool validClientName(std::string_view name) {
  for (char ch : name) {
    if (ch < '!' || ch > '~') return false;
  }
  return true;
}

void cmdHello(Ctx& c) {
  int64_t version = 0;
  if (c.args.size() >= 2 && !parseInt64(c.args[1], &version)) {
    return error(c.out, "ERR Protocol version is not an integer or out of range");
  }
  std::string_view setname;
  bool has_setname = false;
  for (size_t j = 2; j < c.args.size(); ++j) {
    const size_t more = c.args.size() - j - 1;
    if (eqNoCase(c.args[j], "AUTH") && more >= 2) {
      j += 2;  // no authentication here: any user and password are accepted
    } else if (eqNoCase(c.args[j], "SETNAME") && more >= 1) {
      setname = c.args[++j];
      has_setname = true;
    } else {
      return error(c.out, absl::StrCat("ERR Syntax error in HELLO option '", av(c.args[j]), "'"));
    }
  }
  // Only RESP2 is spoken: HELLO 3 is refused as redis-server refuses a version it lacks, so a
  // client falls back to RESP2.
  if (c.args.size() >= 2 && version != 2) {
    return error(c.out, "NOPROTO unsupported protocol version");
  }
  if (has_setname) {
    if (!validClientName(setname)) {
      return error(c.out,
                   "ERR Client names cannot contain spaces, newlines or special characters.");
    }
    c.client.name = std::string(setname);
  }
  reply::array(c.out, 14);
  bulk(c.out, "server");
  bulk(c.out, "redis");
  bulk(c.out, "version");
  bulk(c.out, "7.0.0");
  bulk(c.out, "proto");
  integer(c.out, 2);
  bulk(c.out, "id");
  integer(c.out, static_cast<int64_t>(c.client.id));
  bulk(c.out, "mode");
  bulk(c.out, "standalone");
  bulk(c.out, "role");
  bulk(c.out, "master");
  bulk(c.out, "modules");
  reply::array(c.out, 0);
}

void cmdCommand(Ctx& c) {
  if (c.args.size() == 1) return reply::array(c.out, 0);
  const std::string_view sub = c.args[1];
  if (eqNoCase(sub, "COUNT")) {
    if (c.args.size() != 2) return wrongArity(c.out, "command|count");
    return integer(c.out, 0);
  }
  if (eqNoCase(sub, "DOCS")) return reply::array(c.out, 0);  // redis-cli asks at start
  if (eqNoCase(sub, "INFO")) {
    reply::array(c.out, c.args.size() - 2);
    for (size_t i = 2; i < c.args.size(); ++i) reply::nullArray(c.out);
    return;
  }
  error(c.out,
        absl::StrCat("ERR unknown subcommand '", av(sub.substr(0, 128)), "'. Try COMMAND HELP."));
}

void cmdClient(Ctx& c) {
  const std::string_view sub = c.args[1];
  if (eqNoCase(sub, "SETNAME")) {
    if (c.args.size() != 3) return wrongArity(c.out, "client|setname");
    if (!validClientName(c.args[2])) {
      return error(c.out,
                   "ERR Client names cannot contain spaces, newlines or special characters.");
    }
    c.client.name = std::string(c.args[2]);
    return reply::ok(c.out);
  }
  if (eqNoCase(sub, "GETNAME")) {
    if (c.args.size() != 2) return wrongArity(c.out, "client|getname");
    if (c.client.name.empty()) return nullBulk(c.out);
    return bulk(c.out, c.client.name);
  }
  if (eqNoCase(sub, "SETINFO")) {
    if (c.args.size() != 4) return wrongArity(c.out, "client|setinfo");
    return reply::ok(c.out);  // LIB-NAME / LIB-VER: accepted, not kept
  }
  if (eqNoCase(sub, "ID")) {
    if (c.args.size() != 2) return wrongArity(c.out, "client|id");
    return integer(c.out, static_cast<int64_t>(c.client.id));
  }
  error(c.out,
        absl::StrCat("ERR unknown subcommand '", av(sub.substr(0, 128)), "'. Try CLIENT HELP."));
}

// --- key space ---

void cmdDbsize(Ctx& c) {
  size_t n = 0;
  for (size_t i = 0; i < c.ks.shardCount(); ++i) n += c.ks.shard(i).size();
  integer(c.out, static_cast<int64_t>(n));
}

void cmdFlush(Ctx& c) {
  if (c.args.size() > 2 ||
      (c.args.size() == 2 && !eqNoCase(c.args[1], "ASYNC") && !eqNoCase(c.args[1], "SYNC"))) {
    return error(c.out, kSyntax);
  }
  for (size_t i = 0; i < c.ks.shardCount(); ++i) c.ks.shard(i).clear();
  reply::ok(c.out);
}

void cmdDel(Ctx& c) {
  int64_t n = 0;
  const int64_t now = c.ks.nowMs();
  for (size_t i = 1; i < c.args.size(); ++i) {
    Db& db = c.ks.dbFor(c.args[i]);
    if (db.find(c.args[i], now) != nullptr && db.erase(c.args[i])) ++n;
  }
  integer(c.out, n);
}

void cmdExists(Ctx& c) {
  int64_t n = 0;
  const int64_t now = c.ks.nowMs();
  for (size_t i = 1; i < c.args.size(); ++i) {
    if (c.ks.dbFor(c.args[i]).find(c.args[i], now) != nullptr) ++n;
  }
  integer(c.out, n);
}

const char* typeName(ValueType t) {
  switch (t) {
    case ValueType::kString:
      return "string";
    case ValueType::kList:
      return "list";
    case ValueType::kHash:
      return "hash";
  }
  return "none";
}

void cmdType(Ctx& c) {
  Entry* e = c.ks.dbFor(c.args[1]).find(c.args[1], c.ks.nowMs());
  reply::simple(c.out, e == nullptr ? "none" : typeName(e->type()));
}

void cmdKeys(Ctx& c) {
  const std::string_view pattern = c.args[1];
  const bool all = pattern == "*";
  std::vector<std::string_view> keys;
  const int64_t now = c.ks.nowMs();
  for (size_t i = 0; i < c.ks.shardCount(); ++i) {
    c.ks.shard(i).forEach(now, [&](const Entry& e) {
      if (all || globMatch(pattern, e.key())) keys.push_back(e.key());
    });
  }
  reply::array(c.out, keys.size());
  for (std::string_view k : keys) bulk(c.out, k);
}

// SCAN's cursor is a shard index: each call returns the matching keys of one shard, so every key
// present for the whole scan is returned (COUNT is a hint, as in Redis).
void cmdScan(Ctx& c) {
  uint64_t cursor = 0;
  {
    const std::string_view s = c.args[1];
    bool ok = !s.empty() && s.size() <= 20;
    for (char ch : s) ok = ok && ch >= '0' && ch <= '9';
    if (ok) ok = absl::SimpleAtoi(av(s), &cursor);
    if (!ok) return error(c.out, "ERR invalid cursor");
  }
  std::string_view pattern;
  bool has_pattern = false;
  std::string_view type;
  bool has_type = false;
  for (size_t j = 2; j < c.args.size(); j += 2) {
    if (c.args.size() - j < 2) return error(c.out, kSyntax);
    if (eqNoCase(c.args[j], "COUNT")) {
      int64_t count;
      if (!parseInt64(c.args[j + 1], &count)) return error(c.out, kNotInt);
      if (count < 1) return error(c.out, kSyntax);
    } else if (eqNoCase(c.args[j], "MATCH")) {
      pattern = c.args[j + 1];
      has_pattern = pattern != "*";
    } else if (eqNoCase(c.args[j], "TYPE")) {
      type = c.args[j + 1];
      has_type = true;
    } else {
      return error(c.out, kSyntax);
    }
  }
  std::vector<std::string_view> keys;
  uint64_t next = 0;
  if (cursor < c.ks.shardCount()) {
    c.ks.shard(cursor).forEach(c.ks.nowMs(), [&](const Entry& e) {
      if (has_pattern && !globMatch(pattern, e.key())) return;
      if (has_type && !eqNoCase(type, typeName(e.type()))) return;
      keys.push_back(e.key());
    });
    next = cursor + 1 < c.ks.shardCount() ? cursor + 1 : 0;
  }
  reply::array(c.out, 2);
  char buf[24];
  bulk(c.out, std::string_view(buf, static_cast<size_t>(
                                        absl::numbers_internal::FastIntToBuffer(next, buf) - buf)));
  reply::array(c.out, keys.size());
  for (std::string_view k : keys) bulk(c.out, k);
}

// --- expiry ---

// EXPIRE / PEXPIRE key amount [NX|XX|GT|LT]
void expireGeneric(Ctx& c, bool seconds, const char* name) {
  bool nx = false, xx = false, gt = false, lt = false;
  for (size_t j = 3; j < c.args.size(); ++j) {
    const std::string_view o = c.args[j];
    if (eqNoCase(o, "NX"))
      nx = true;
    else if (eqNoCase(o, "XX"))
      xx = true;
    else if (eqNoCase(o, "GT"))
      gt = true;
    else if (eqNoCase(o, "LT"))
      lt = true;
    else
      return error(c.out, absl::StrCat("ERR Unsupported option ", av(o)));
  }
  if (nx && (xx || gt || lt)) {
    return error(c.out, "ERR NX and XX, GT or LT options at the same time are not compatible");
  }
  if (gt && lt) return error(c.out, "ERR GT and LT options at the same time are not compatible");
  int64_t when;  // (after the options, as redis-server reads them)
  if (!parseInt64(c.args[2], &when)) return error(c.out, kNotInt);
  const int64_t now = c.ks.nowMs();
  const std::string invalid = absl::StrCat("ERR invalid expire time in '", name, "' command");
  if (seconds) {
    if (when > INT64_MAX / 1000 || when < INT64_MIN / 1000) return error(c.out, invalid);
    when *= 1000;
  }
  if (when > INT64_MAX - now) return error(c.out, invalid);
  when += now;
  Db& db = c.ks.dbFor(c.args[1]);
  Entry* e = db.find(c.args[1], now);
  if (e == nullptr) return integer(c.out, 0);
  const int64_t current = db.expireAt(*e);  // -1: none
  if ((nx && current != -1) || (xx && current == -1) ||
      (gt && (current == -1 || when <= current)) || (lt && current != -1 && when >= current)) {
    return integer(c.out, 0);
  }
  if (when <= now) {
    db.erase(c.args[1]);
  } else {
    db.setExpire(e, when);
  }
  integer(c.out, 1);
}
void cmdExpire(Ctx& c) { expireGeneric(c, true, "expire"); }
void cmdPexpire(Ctx& c) { expireGeneric(c, false, "pexpire"); }

void ttlGeneric(Ctx& c, bool seconds) {
  Db& db = c.ks.dbFor(c.args[1]);
  const int64_t now = c.ks.nowMs();
  Entry* e = db.find(c.args[1], now);
  if (e == nullptr) return integer(c.out, -2);
  const int64_t at = db.expireAt(*e);
  if (at == -1) return integer(c.out, -1);
  const int64_t left = std::max<int64_t>(at - now, 0);
  integer(c.out, seconds ? (left + 500) / 1000 : left);
}
void cmdTtl(Ctx& c) { ttlGeneric(c, true); }
void cmdPttl(Ctx& c) { ttlGeneric(c, false); }

void cmdPersist(Ctx& c) {
  Db& db = c.ks.dbFor(c.args[1]);
  Entry* e = db.find(c.args[1], c.ks.nowMs());
  integer(c.out, e != nullptr && db.persist(e) ? 1 : 0);
}

// --- strings ---

// The string at `key` into *e (nullptr: none). False (WRONGTYPE replied) for another type.
bool lookupString(Ctx& c, Db& db, std::string_view key, Entry** e) {
  *e = db.find(key, c.ks.nowMs());
  if (*e != nullptr && (*e)->type() != ValueType::kString) {
    error(c.out, kWrongType);
    return false;
  }
  return true;
}

void replyString(std::string& out, const Entry& e) {
  char scratch[24];
  bulk(out, e.stringValue(scratch));
}

void cmdGet(Ctx& c) {
  Db& db = c.ks.dbFor(c.args[1]);
  Entry* e;
  if (!lookupString(c, db, c.args[1], &e)) return;
  if (e == nullptr) return nullBulk(c.out);
  replyString(c.out, *e);
}

// Sets key to value, dropping any TTL unless keep_ttl.
Entry* setKey(Db& db, Entry* existing, std::string_view key, std::string_view value,
              bool keep_ttl) {
  if (existing == nullptr) return db.insert(Entry(key, value));
  if (existing->type() != ValueType::kString) {
    db.erase(key);
    return db.insert(Entry(key, value));
  }
  if (!keep_ttl) db.persist(existing);
  existing->setString(value);
  return existing;
}

void cmdSet(Ctx& c) {
  enum : unsigned {
    kNx = 1,
    kXx = 2,
    kGet = 4,
    kKeepTtl = 8,
    kEx = 16,
    kPx = 32,
    kExAt = 64,
    kPxAt = 128
  };
  constexpr unsigned kExpireFlags = kEx | kPx | kExAt | kPxAt;
  unsigned flags = 0;
  std::string_view expire_arg;
  for (size_t j = 3; j < c.args.size(); ++j) {
    const std::string_view o = c.args[j];
    const bool has_next = j + 1 < c.args.size();
    if (eqNoCase(o, "NX") && !(flags & kXx)) {
      flags |= kNx;
    } else if (eqNoCase(o, "XX") && !(flags & kNx)) {
      flags |= kXx;
    } else if (eqNoCase(o, "GET")) {
      flags |= kGet;
    } else if (eqNoCase(o, "KEEPTTL") && !(flags & kExpireFlags)) {
      flags |= kKeepTtl;
    } else if (!(flags & (kExpireFlags | kKeepTtl)) && has_next &&
               (eqNoCase(o, "EX") || eqNoCase(o, "PX") || eqNoCase(o, "EXAT") ||
                eqNoCase(o, "PXAT"))) {
      flags |= eqNoCase(o, "EX")     ? kEx
               : eqNoCase(o, "PX")   ? kPx
               : eqNoCase(o, "EXAT") ? kExAt
                                     : kPxAt;
      expire_arg = c.args[++j];
    } else {
      return error(c.out, kSyntax);
    }
  }
  const int64_t now = c.ks.nowMs();
  int64_t when = 0;
  if (flags & kExpireFlags) {
    if (!parseInt64(expire_arg, &when)) return error(c.out, kNotInt);
    constexpr std::string_view kInvalid = "ERR invalid expire time in 'set' command";
    if (when <= 0 || ((flags & (kEx | kExAt)) && when > INT64_MAX / 1000))
      return error(c.out, kInvalid);
    if (flags & (kEx | kExAt)) when *= 1000;
    if (flags & (kEx | kPx)) {
      if (when > INT64_MAX - now) return error(c.out, kInvalid);
      when += now;
    }
  }
  Db& db = c.ks.dbFor(c.args[1]);
  Entry* e = db.find(c.args[1], now);
  if (flags & kGet) {
    if (e != nullptr && e->type() != ValueType::kString) return error(c.out, kWrongType);
    if (e == nullptr)
      nullBulk(c.out);
    else
      replyString(c.out, *e);
  }
  if (((flags & kNx) && e != nullptr) || ((flags & kXx) && e == nullptr)) {
    if (!(flags & kGet)) nullBulk(c.out);
    return;
  }
  e = setKey(db, e, c.args[1], c.args[2], flags & kKeepTtl);
  if (flags & kExpireFlags) {
    if (when <= now)
      db.erase(c.args[1]);  // EXAT/PXAT in the past
    else
      db.setExpire(e, when);
  }
  if (!(flags & kGet)) reply::ok(c.out);
}

void cmdGetset(Ctx& c) {
  Db& db = c.ks.dbFor(c.args[1]);
  Entry* e;
  if (!lookupString(c, db, c.args[1], &e)) return;
  if (e == nullptr)
    nullBulk(c.out);
  else
    replyString(c.out, *e);
  setKey(db, e, c.args[1], c.args[2], false);
}

void cmdMget(Ctx& c) {
  const int64_t now = c.ks.nowMs();
  reply::array(c.out, c.args.size() - 1);
  for (size_t i = 1; i < c.args.size(); ++i) {
    Entry* e = c.ks.dbFor(c.args[i]).find(c.args[i], now);
    if (e == nullptr || e->type() != ValueType::kString)
      nullBulk(c.out);
    else
      replyString(c.out, *e);
  }
}

void cmdMset(Ctx& c) {
  if (c.args.size() % 2 == 0) return wrongArity(c.out, "mset");
  const int64_t now = c.ks.nowMs();
  for (size_t i = 1; i + 1 < c.args.size(); i += 2) {
    Db& db = c.ks.dbFor(c.args[i]);
    setKey(db, db.find(c.args[i], now), c.args[i], c.args[i + 1], false);
  }
  reply::ok(c.out);
}

void incrBy(Ctx& c, int64_t by, bool decrement_check = false) {
  Db& db = c.ks.dbFor(c.args[1]);
  Entry* e;
  if (!lookupString(c, db, c.args[1], &e)) return;
  int64_t value = 0;
  if (e != nullptr && !e->intValue(&value)) return error(c.out, kNotInt);
  if ((by < 0 && value < 0 && by < INT64_MIN - value) ||
      (by > 0 && value > 0 && by > INT64_MAX - value)) {
    return error(c.out, kOverflow);
  }
  value += by;
  if (e == nullptr) {
    char buf[24];
    char* end = absl::numbers_internal::FastIntToBuffer(value, buf);
    db.insert(Entry(c.args[1], std::string_view(buf, static_cast<size_t>(end - buf))));
  } else {
    e->setInt(value);
  }
  integer(c.out, value);
}

void cmdIncr(Ctx& c) { incrBy(c, 1); }
void cmdDecr(Ctx& c) { incrBy(c, -1); }
void cmdIncrby(Ctx& c) {
  int64_t by;
  if (!parseInt64(c.args[2], &by)) return error(c.out, kNotInt);
  incrBy(c, by);
}
void cmdDecrby(Ctx& c) {
  int64_t by;
  if (!parseInt64(c.args[2], &by)) return error(c.out, kNotInt);
  if (by == INT64_MIN) return error(c.out, "ERR decrement would overflow");
  incrBy(c, -by);
}

void cmdAppend(Ctx& c) {
  Db& db = c.ks.dbFor(c.args[1]);
  Entry* e;
  if (!lookupString(c, db, c.args[1], &e)) return;
  if (e == nullptr) {
    e = db.insert(Entry(c.args[1], c.args[2]));
  } else {
    if (e->stringLength() + c.args[2].size() > kMaxStringSize) {
      return error(c.out, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    }
    e->append(c.args[2]);
  }
  integer(c.out, static_cast<int64_t>(e->stringLength()));
}

void cmdStrlen(Ctx& c) {
  Db& db = c.ks.dbFor(c.args[1]);
  Entry* e;
  if (!lookupString(c, db, c.args[1], &e)) return;
  integer(c.out, e == nullptr ? 0 : static_cast<int64_t>(e->stringLength()));
}

// --- lists ---

// The entry of type `type` at args[1]; nullptr when missing (or WRONGTYPE was replied: *wrong).
Entry* lookupTyped(Ctx& c, Db& db, ValueType type, bool* wrong) {
  Entry* e = db.find(c.args[1], c.ks.nowMs());
  *wrong = e != nullptr && e->type() != type;
  if (*wrong) {
    error(c.out, kWrongType);
    return nullptr;
  }
  return e;
}

void pushGeneric(Ctx& c, bool left) {
  Db& db = c.ks.dbFor(c.args[1]);
  bool wrong;
  Entry* e = lookupTyped(c, db, ValueType::kList, &wrong);
  if (wrong) return;
  if (e == nullptr) e = db.insert(Entry(c.args[1], ValueType::kList));
  List& l = e->list();
  for (size_t i = 2; i < c.args.size(); ++i) {
    if (left)
      l.emplace_front(c.args[i]);
    else
      l.emplace_back(c.args[i]);
  }
  integer(c.out, static_cast<int64_t>(l.size()));
}
void cmdLpush(Ctx& c) { pushGeneric(c, true); }
void cmdRpush(Ctx& c) { pushGeneric(c, false); }

void popGeneric(Ctx& c, bool left, const char* name) {
  if (c.args.size() > 3) return wrongArity(c.out, name);
  const bool has_count = c.args.size() == 3;
  int64_t count = 1;
  if (has_count) {
    if (!parseInt64(c.args[2], &count) || count < 0) {
      return error(c.out, "ERR value is out of range, must be positive");
    }
  }
  Db& db = c.ks.dbFor(c.args[1]);
  Entry* e = db.find(c.args[1], c.ks.nowMs());
  if (e == nullptr) return has_count ? reply::nullArray(c.out) : nullBulk(c.out);
  if (e->type() != ValueType::kList) return error(c.out, kWrongType);
  if (has_count && count == 0) return reply::array(c.out, 0);
  List& l = e->list();
  const size_t n = std::min<uint64_t>(static_cast<uint64_t>(count), l.size());
  if (has_count) reply::array(c.out, n);
  for (size_t i = 0; i < n; ++i) {
    if (left) {
      bulk(c.out, l.front());
      l.pop_front();
    } else {
      bulk(c.out, l.back());
      l.pop_back();
    }
  }
  if (l.empty()) db.erase(c.args[1]);
}
void cmdLpop(Ctx& c) { popGeneric(c, true, "lpop"); }
void cmdRpop(Ctx& c) { popGeneric(c, false, "rpop"); }

void cmdLlen(Ctx& c) {
  bool wrong;
  Entry* e = lookupTyped(c, c.ks.dbFor(c.args[1]), ValueType::kList, &wrong);
  if (wrong) return;
  integer(c.out, e == nullptr ? 0 : static_cast<int64_t>(e->list().size()));
}

void cmdLindex(Ctx& c) {
  // (as redis-server: the key first, then the index)
  bool wrong;
  Entry* e = lookupTyped(c, c.ks.dbFor(c.args[1]), ValueType::kList, &wrong);
  if (wrong) return;
  if (e == nullptr) return nullBulk(c.out);
  int64_t index;
  if (!parseInt64(c.args[2], &index)) return error(c.out, kNotInt);
  const List& l = e->list();
  const int64_t size = static_cast<int64_t>(l.size());
  if (index < 0) index += size;
  if (index < 0 || index >= size) return nullBulk(c.out);
  bulk(c.out, l[static_cast<size_t>(index)]);
}

void cmdLrange(Ctx& c) {
  int64_t start, stop;
  if (!parseInt64(c.args[2], &start) || !parseInt64(c.args[3], &stop)) return error(c.out, kNotInt);
  bool wrong;
  Entry* e = lookupTyped(c, c.ks.dbFor(c.args[1]), ValueType::kList, &wrong);
  if (wrong) return;
  if (e == nullptr) return reply::array(c.out, 0);
  const List& l = e->list();
  const int64_t size = static_cast<int64_t>(l.size());
  if (start < 0) start = std::max<int64_t>(size + start, 0);
  if (stop < 0) stop = size + stop;
  if (start > stop || start >= size) return reply::array(c.out, 0);
  if (stop >= size) stop = size - 1;
  reply::array(c.out, static_cast<size_t>(stop - start + 1));
  for (int64_t i = start; i <= stop; ++i) bulk(c.out, l[static_cast<size_t>(i)]);
}

// --- hashes ---

void cmdHset(Ctx& c) {
  if (c.args.size() % 2 == 1) return wrongArity(c.out, "hset");
  Db& db = c.ks.dbFor(c.args[1]);
  bool wrong;
  Entry* e = lookupTyped(c, db, ValueType::kHash, &wrong);
  if (wrong) return;
  if (e == nullptr) e = db.insert(Entry(c.args[1], ValueType::kHash));
  Hash& h = e->hash();
  int64_t created = 0;
  for (size_t i = 2; i + 1 < c.args.size(); i += 2) {
    auto [it, inserted] = h.try_emplace(c.args[i], c.args[i + 1]);
    if (inserted)
      ++created;
    else
      it->second.assign(c.args[i + 1].data(), c.args[i + 1].size());
  }
  integer(c.out, created);
}

void cmdHget(Ctx& c) {
  bool wrong;
  Entry* e = lookupTyped(c, c.ks.dbFor(c.args[1]), ValueType::kHash, &wrong);
  if (wrong) return;
  if (e == nullptr) return nullBulk(c.out);
  auto it = e->hash().find(c.args[2]);
  if (it == e->hash().end()) return nullBulk(c.out);
  bulk(c.out, it->second);
}

void cmdHdel(Ctx& c) {
  Db& db = c.ks.dbFor(c.args[1]);
  bool wrong;
  Entry* e = lookupTyped(c, db, ValueType::kHash, &wrong);
  if (wrong) return;
  if (e == nullptr) return integer(c.out, 0);
  int64_t n = 0;
  for (size_t i = 2; i < c.args.size(); ++i) n += static_cast<int64_t>(e->hash().erase(c.args[i]));
  if (e->hash().empty()) db.erase(c.args[1]);
  integer(c.out, n);
}

void cmdHlen(Ctx& c) {
  bool wrong;
  Entry* e = lookupTyped(c, c.ks.dbFor(c.args[1]), ValueType::kHash, &wrong);
  if (wrong) return;
  integer(c.out, e == nullptr ? 0 : static_cast<int64_t>(e->hash().size()));
}

void cmdHgetall(Ctx& c) {
  bool wrong;
  Entry* e = lookupTyped(c, c.ks.dbFor(c.args[1]), ValueType::kHash, &wrong);
  if (wrong) return;
  if (e == nullptr) return reply::array(c.out, 0);
  reply::array(c.out, e->hash().size() * 2);
  for (const auto& [f, v] : e->hash()) {
    bulk(c.out, f);
    bulk(c.out, v);
  }
}

void cmdHexists(Ctx& c) {
  bool wrong;
  Entry* e = lookupTyped(c, c.ks.dbFor(c.args[1]), ValueType::kHash, &wrong);
  if (wrong) return;
  integer(c.out, e != nullptr && e->hash().contains(c.args[2]) ? 1 : 0);
}

void cmdHincrby(Ctx& c) {
  int64_t by;
  if (!parseInt64(c.args[3], &by)) return error(c.out, kNotInt);
  Db& db = c.ks.dbFor(c.args[1]);
  bool wrong;
  Entry* e = lookupTyped(c, db, ValueType::kHash, &wrong);
  if (wrong) return;
  int64_t value = 0;
  if (e != nullptr) {
    auto it = e->hash().find(c.args[2]);
    if (it != e->hash().end() && !parseInt64(it->second, &value)) {
      return error(c.out, "ERR hash value is not an integer");
    }
  }
  if ((by < 0 && value < 0 && by < INT64_MIN - value) ||
      (by > 0 && value > 0 && by > INT64_MAX - value)) {
    return error(c.out, kOverflow);
  }
  value += by;
  if (e == nullptr) e = db.insert(Entry(c.args[1], ValueType::kHash));
  e->hash().insert_or_assign(std::string(c.args[2]), absl::StrCat(value));
  integer(c.out, value);
}

void cmdControl(Ctx&) {}  // MULTI, EXEC, DISCARD, QUIT: run by the connection

// clang-format off
constexpr CommandSpec kCommands[] = {
    {"ping", -1, KeyMode::kNone, 0, cmdPing},
    {"echo", 2, KeyMode::kNone, 0, cmdEcho},
    {"select", 2, KeyMode::kNone, 0, cmdSelect},
    {"hello", -1, KeyMode::kNone, 0, cmdHello},
    {"command", -1, KeyMode::kNone, 0, cmdCommand},
    {"client", -2, KeyMode::kNone, 0, cmdClient},
    {"quit", -1, KeyMode::kControl, 0, cmdControl},
    {"multi", 1, KeyMode::kControl, 0, cmdControl},
    {"exec", 1, KeyMode::kControl, 0, cmdControl},
    {"discard", 1, KeyMode::kControl, 0, cmdControl},
    {"dbsize", 1, KeyMode::kAll, 0, cmdDbsize},
    {"flushall", -1, KeyMode::kAll, 0, cmdFlush},
    {"flushdb", -1, KeyMode::kAll, 0, cmdFlush},
    {"keys", 2, KeyMode::kAll, 0, cmdKeys},
    {"scan", -2, KeyMode::kAll, 0, cmdScan},
    {"del", -2, KeyMode::kMulti, 1, cmdDel},
    {"exists", -2, KeyMode::kMulti, 1, cmdExists},
    {"type", 2, KeyMode::kOne, 0, cmdType},
    {"expire", -3, KeyMode::kOne, 0, cmdExpire},
    {"pexpire", -3, KeyMode::kOne, 0, cmdPexpire},
    {"ttl", 2, KeyMode::kOne, 0, cmdTtl},
    {"pttl", 2, KeyMode::kOne, 0, cmdPttl},
    {"persist", 2, KeyMode::kOne, 0, cmdPersist},
    {"get", 2, KeyMode::kOne, 0, cmdGet},
    {"set", -3, KeyMode::kOne, 0, cmdSet},
    {"getset", 3, KeyMode::kOne, 0, cmdGetset},
    {"mget", -2, KeyMode::kMulti, 1, cmdMget},
    {"mset", -3, KeyMode::kMulti, 2, cmdMset},
    {"incr", 2, KeyMode::kOne, 0, cmdIncr},
    {"decr", 2, KeyMode::kOne, 0, cmdDecr},
    {"incrby", 3, KeyMode::kOne, 0, cmdIncrby},
    {"decrby", 3, KeyMode::kOne, 0, cmdDecrby},
    {"append", 3, KeyMode::kOne, 0, cmdAppend},
    {"strlen", 2, KeyMode::kOne, 0, cmdStrlen},
    {"lpush", -3, KeyMode::kOne, 0, cmdLpush},
    {"rpush", -3, KeyMode::kOne, 0, cmdRpush},
    {"lpop", -2, KeyMode::kOne, 0, cmdLpop},
    {"rpop", -2, KeyMode::kOne, 0, cmdRpop},
    {"llen", 2, KeyMode::kOne, 0, cmdLlen},
    {"lrange", 4, KeyMode::kOne, 0, cmdLrange},
    {"lindex", 3, KeyMode::kOne, 0, cmdLindex},
    {"hset", -4, KeyMode::kOne, 0, cmdHset},
    {"hget", 3, KeyMode::kOne, 0, cmdHget},
    {"hdel", -3, KeyMode::kOne, 0, cmdHdel},
    {"hlen", 2, KeyMode::kOne, 0, cmdHlen},
    {"hgetall", 2, KeyMode::kOne, 0, cmdHgetall},
    {"hexists", 3, KeyMode::kOne, 0, cmdHexists},
    {"hincrby", 4, KeyMode::kOne, 0, cmdHincrby},
};
// clang-format on

// A static object, not a leaked one: the plugin is unloaded when a reload replaces it, and its
// destructor then frees the table (a pointer that died with the library would leak it per reload).
const absl::flat_hash_map<std::string_view, const CommandSpec*>& commandTable() {
  static const absl::flat_hash_map<std::string_view, const CommandSpec*> table = [] {
    absl::flat_hash_map<std::string_view, const CommandSpec*> t;
    for (const CommandSpec& spec : kCommands) t.emplace(spec.name, &spec);
    return t;
  }();
  return table;
}

}  // namespace

const CommandSpec* lookupCommand(std::string_view name) {
  char lower[16];
  if (name.size() > sizeof(lower)) return nullptr;
  for (size_t i = 0; i < name.size(); ++i) {
    lower[i] = static_cast<char>(absl::ascii_tolower(static_cast<unsigned char>(name[i])));
  }
  const auto& table = commandTable();
  auto it = table.find(std::string_view(lower, name.size()));
  return it == table.end() ? nullptr : it->second;
}

bool rejectCommand(const CommandSpec* spec, Args args, std::string& out) {
  if (spec == nullptr) {
    // As redis-server: the name to 128 bytes, then arguments while fewer than 128 bytes of them
    // were written; newlines become spaces so the reply stays one line; a C string ends at a NUL.
    auto cstr = [](std::string_view s) { return s.substr(0, s.find('\0')); };
    std::string msg = absl::StrCat("ERR unknown command '", av(cstr(args[0]).substr(0, 128)),
                                   "', with args beginning with: ");
    std::string list;
    for (size_t i = 1; i < args.size() && list.size() < 128; ++i) {
      absl::StrAppend(&list, "'", av(cstr(args[i]).substr(0, 128 - list.size())), "' ");
    }
    msg += list;
    std::replace(msg.begin(), msg.end(), '\r', ' ');
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    error(out, msg);
    return true;
  }
  const int argc = static_cast<int>(args.size());
  if ((spec->arity > 0 && argc != spec->arity) || (spec->arity < 0 && argc < -spec->arity)) {
    wrongArity(out, spec->name);
    return true;
  }
  return false;
}

void shardsOf(const CommandSpec& spec, Args args, const Keyspace& ks, std::vector<size_t>* out) {
  switch (spec.keys) {
    case KeyMode::kNone:
    case KeyMode::kControl:
      return;
    case KeyMode::kOne:
      out->push_back(ks.shardOf(args[1]));
      break;
    case KeyMode::kMulti:
      for (size_t i = 1; i < args.size(); i += static_cast<size_t>(spec.step)) {
        out->push_back(ks.shardOf(args[i]));
      }
      break;
    case KeyMode::kAll:
      for (size_t i = 0; i < ks.shardCount(); ++i) out->push_back(i);
      break;
  }
  std::sort(out->begin(), out->end());
  out->erase(std::unique(out->begin(), out->end()), out->end());
}

void runCommand(const CommandSpec& spec, Ctx& ctx) { spec.run(ctx); }

}  // namespace plexus::resp
