#include "resp_db.h"

#include <utility>

#include "absl/strings/numbers.h"

namespace plexus::resp {

bool parseInt64(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  size_t i = 0;
  bool negative = false;
  if (s[0] == '-') {
    if (s.size() == 1) return false;
    negative = true;
    i = 1;
  }
  if (s[i] == '0') {
    if (s.size() == 1) {
      *out = 0;
      return true;
    }
    return false;
  }
  uint64_t v = 0;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c < '0' || c > '9') return false;
    const unsigned d = static_cast<unsigned>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (negative) {
    if (v > static_cast<uint64_t>(INT64_MAX) + 1) return false;
    *out = static_cast<int64_t>(0 - v);
  } else {
    if (v > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(v);
  }
  return true;
}

Entry::Entry(std::string_view key, std::string_view value) {
  std::memset(bytes_, 0, sizeof(bytes_));
  store(key, value);
}

Entry::Entry(std::string_view key, ValueType type) {
  std::memset(bytes_, 0, sizeof(bytes_));
  auto* b = new Box{std::string(key), {}};
  if (type == ValueType::kList) {
    b->value = std::make_unique<List>();
  } else {
    b->value = std::make_unique<Hash>();
  }
  setBox(b);
}

Entry& Entry::operator=(Entry&& other) noexcept {
  if (this != &other) {
    release();
    std::memcpy(bytes_, other.bytes_, sizeof(bytes_));
    other.bytes_[0] = kEmpty;
  }
  return *this;
}

void Entry::release() {
  if (rep() == kBoxed) delete box();
  bytes_[0] = kEmpty;
}

std::string_view Entry::key() const {
  switch (rep()) {
    case kPacked:
    case kPackedInt:
      return {reinterpret_cast<const char*>(bytes_ + 4), bytes_[2]};
    case kBoxed:
      return box()->key;
    case kEmpty:
      break;
  }
  return {};
}

ValueType Entry::type() const {
  if (rep() != kBoxed) return ValueType::kString;
  const Box* b = box();
  if (std::holds_alternative<std::string>(b->value)) return ValueType::kString;
  if (std::holds_alternative<std::unique_ptr<List>>(b->value)) return ValueType::kList;
  return ValueType::kHash;
}

void Entry::store(std::string_view key, std::string_view value) {
  const bool ttl = hasTtl();
  int64_t n;
  if (key.size() <= kMaxIntKey && parseInt64(value, &n)) {
    // (the key may live in this entry's own box: copy it out before releasing)
    char k[kMaxIntKey];
    std::memcpy(k, key.data(), key.size());
    release();
    bytes_[0] = kPackedInt;
    bytes_[2] = static_cast<uint8_t>(key.size());
    std::memcpy(bytes_ + 4, k, key.size());
    std::memcpy(bytes_ + 24, &n, sizeof(n));
  } else if (key.size() + value.size() <= kPayload) {
    char kv[kPayload];
    std::memcpy(kv, key.data(), key.size());
    std::memcpy(kv + key.size(), value.data(), value.size());
    release();
    bytes_[0] = kPacked;
    bytes_[2] = static_cast<uint8_t>(key.size());
    bytes_[3] = static_cast<uint8_t>(value.size());
    std::memcpy(bytes_ + 4, kv, key.size() + value.size());
  } else if (rep() == kBoxed) {
    Box* b = box();
    if (auto* s = std::get_if<std::string>(&b->value)) {
      s->assign(value.data(), value.size());
    } else {
      b->value = std::string(value);
    }
  } else {
    auto* b = new Box{std::string(key), std::string(value)};
    setBox(b);
  }
  bytes_[1] = ttl ? kHasTtl : 0;
}

bool Entry::isInt() const { return rep() == kPackedInt; }

std::string_view Entry::stringValue(char* scratch) const {
  switch (rep()) {
    case kPacked:
      return {reinterpret_cast<const char*>(bytes_ + 4 + bytes_[2]), bytes_[3]};
    case kPackedInt: {
      int64_t n;
      std::memcpy(&n, bytes_ + 24, sizeof(n));
      char* end = absl::numbers_internal::FastIntToBuffer(n, scratch);
      return {scratch, static_cast<size_t>(end - scratch)};
    }
    case kBoxed:
      if (auto* s = std::get_if<std::string>(&box()->value)) return *s;
      break;
    case kEmpty:
      break;
  }
  return {};
}

bool Entry::intValue(int64_t* out) const {
  if (rep() == kPackedInt) {
    std::memcpy(out, bytes_ + 24, sizeof(*out));
    return true;
  }
  char scratch[24];
  return parseInt64(stringValue(scratch), out);
}

size_t Entry::stringLength() const {
  char scratch[24];
  return stringValue(scratch).size();
}

void Entry::setString(std::string_view value) {
  if (rep() == kBoxed) {
    // store() copies the key out of the box before it lets the box go
    store(box()->key, value);
  } else {
    char k[kPayload];
    const size_t n = bytes_[2];
    std::memcpy(k, bytes_ + 4, n);
    store(std::string_view(k, n), value);
  }
}

void Entry::setInt(int64_t value) {
  if (rep() == kPackedInt) {
    std::memcpy(bytes_ + 24, &value, sizeof(value));
    return;
  }
  char scratch[24];
  char* end = absl::numbers_internal::FastIntToBuffer(value, scratch);
  setString(std::string_view(scratch, static_cast<size_t>(end - scratch)));
}

void Entry::append(std::string_view tail) {
  if (rep() == kBoxed) {
    if (auto* s = std::get_if<std::string>(&box()->value)) {
      s->append(tail.data(), tail.size());
      return;
    }
  }
  char scratch[24];
  std::string v(stringValue(scratch));
  v.append(tail.data(), tail.size());
  setString(v);
}

List& Entry::list() { return *std::get<std::unique_ptr<List>>(box()->value); }
Hash& Entry::hash() { return *std::get<std::unique_ptr<Hash>>(box()->value); }

Entry* Db::find(std::string_view key, int64_t now_ms) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  Entry& e =
      const_cast<Entry&>(*it);  // the key part never changes; the hash depends on nothing else
  if (e.hasTtl() && expireAt(e) <= now_ms) {
    dropTtl(key);
    entries_.erase(it);
    ++expired_;
    return nullptr;
  }
  return &e;
}

Entry* Db::insert(Entry&& e) {
  auto [it, inserted] = entries_.insert(std::move(e));
  return const_cast<Entry*>(&*it);
}

bool Db::erase(std::string_view key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  if (it->hasTtl()) dropTtl(key);
  entries_.erase(it);
  return true;
}

void Db::clear() {
  entries_.clear();
  expires_.clear();
  ttl_keys_.clear();
}

void Db::setExpire(Entry* e, int64_t when_ms) {
  const std::string_view key = e->key();
  auto it = expires_.find(key);
  if (it != expires_.end()) {
    it->second.when_ms = when_ms;
  } else {
    expires_.emplace(std::string(key), Ttl{when_ms, ttl_keys_.size()});
    ttl_keys_.emplace_back(key);
  }
  e->setHasTtl(true);
}

int64_t Db::expireAt(const Entry& e) const {
  if (!e.hasTtl()) return -1;
  auto it = expires_.find(e.key());
  return it == expires_.end() ? -1 : it->second.when_ms;
}

bool Db::persist(Entry* e) {
  if (!e->hasTtl()) return false;
  dropTtl(e->key());
  e->setHasTtl(false);
  return true;
}

void Db::dropTtl(std::string_view key) {
  auto it = expires_.find(key);
  if (it == expires_.end()) return;
  const size_t index = it->second.index;
  expires_.erase(it);
  // swap-remove from ttl_keys_, and fix the index of the key moved into the hole
  if (index + 1 != ttl_keys_.size()) {
    ttl_keys_[index] = std::move(ttl_keys_.back());
    expires_.find(ttl_keys_[index])->second.index = index;
  }
  ttl_keys_.pop_back();
}

size_t Db::activeExpire(int64_t now_ms, size_t samples, int max_rounds) {
  size_t deleted = 0;
  for (int round = 0; round < max_rounds && !ttl_keys_.empty(); ++round) {
    const size_t n = std::min(samples, ttl_keys_.size());
    size_t expired = 0;
    for (size_t i = 0; i < n && !ttl_keys_.empty(); ++i) {
      const size_t index = rng_() % ttl_keys_.size();
      auto it = expires_.find(ttl_keys_[index]);
      if (it->second.when_ms <= now_ms) {
        const std::string key = ttl_keys_[index];
        erase(key);
        ++expired;
        ++expired_;
      }
    }
    deleted += expired;
    if (expired * 4 <= n) break;
  }
  return deleted;
}

}  // namespace plexus::resp
