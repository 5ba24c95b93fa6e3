#pragma once
// LatencyHistogram: a log-linear (HDR-style) histogram of latencies in nanoseconds, for
// `plexus-client bench`. Fixed size, no allocation after construction, mergeable.
//
// Layout: values below 128 ns have one bucket each; above, every power of two [2^k, 2^(k+1)) is cut
// into 64 equal sub-buckets, so a bucket is at most 1/64 of its values wide (about 1.6 %). The range
// ends at kMaxValue (100 s); larger values land in the last bucket, while max() stays exact.
//
//   index:  0 .. 127 | 128 .. 191  | 192 .. 255  | ... | 64 per power of two up to 2^37
//   width:     1     |     2       |     4       | ... | 2^(k-6)
//
// Thread safety: none; each loop thread records into its own histogram, merged at the end.

#include <array>
#include <cstddef>
#include <cstdint>

namespace plexus::client {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 6;                         // 64 sub-buckets
  static constexpr int64_t kSubBuckets = int64_t{1} << kSubBucketBits;
  static constexpr int64_t kLinearLimit = 2 * kSubBuckets;         // 128: one bucket per value below
  static constexpr int64_t kMaxValue = int64_t{100} * 1000 * 1000 * 1000;  // 100 s in ns
  static constexpr int kMaxExponent = 36;                          // kMaxValue < 2^37
  static constexpr int kBuckets =
      static_cast<int>(kLinearLimit + (kMaxExponent - kSubBucketBits) * kSubBuckets);

  LatencyHistogram() { reset(); }

  // Records one value in ns (negative values count as 0).
  void record(int64_t ns) {
    if (ns < 0) ns = 0;
    ++counts_[static_cast<size_t>(bucketIndex(ns))];
    ++count_;
    sum_ += static_cast<double>(ns);
    if (ns < min_) min_ = ns;
    if (ns > max_) max_ = ns;
  }
  void merge(const LatencyHistogram& other);
  void reset();

  uint64_t count() const { return count_; }
  int64_t min() const { return count_ ? min_ : 0; }
  int64_t max() const { return count_ ? max_ : 0; }
  double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0; }
  // The value at percentile `p` (0..100), nearest-rank: the smallest recorded value with at least
  // p % of all values at or below it, given as the middle of its bucket (clamped to [min, max]).
  // 0 when empty.
  int64_t percentile(double p) const;

  // The bucket of `ns` and the range [lower, upper) of values it holds. Exposed for tests.
  static int bucketIndex(int64_t ns) {
    if (ns >= kMaxValue) ns = kMaxValue;
    if (ns < kLinearLimit) return static_cast<int>(ns);
    const int exponent = 63 - __builtin_clzll(static_cast<unsigned long long>(ns));  // >= 7
    const int shift = exponent - kSubBucketBits;
    return static_cast<int>(kLinearLimit + (exponent - kSubBucketBits - 1) * kSubBuckets +
                            ((ns >> shift) - kSubBuckets));
  }
  static int64_t bucketLower(int index);
  static int64_t bucketUpper(int index);

 private:
  std::array<uint64_t, kBuckets> counts_;
  uint64_t count_;
  double sum_;
  int64_t min_;
  int64_t max_;
};

}  // namespace plexus::client
