#include "client/bench_histogram.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace plexus::client {

void LatencyHistogram::reset() {
  counts_.fill(0);
  count_ = 0;
  sum_ = 0;
  min_ = std::numeric_limits<int64_t>::max();
  max_ = 0;
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

int64_t LatencyHistogram::bucketLower(int index) {
  if (index < kLinearLimit) return index;
  const int64_t j = index - kLinearLimit;
  const int shift = static_cast<int>(j / kSubBuckets) + 1;  // exponent - kSubBucketBits
  return (kSubBuckets + j % kSubBuckets) << shift;
}

int64_t LatencyHistogram::bucketUpper(int index) {
  if (index < kLinearLimit) return index + 1;
  const int64_t j = index - kLinearLimit;
  const int shift = static_cast<int>(j / kSubBuckets) + 1;
  return (kSubBuckets + j % kSubBuckets + 1) << shift;
}

int64_t LatencyHistogram::percentile(double p) const {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  // Nearest rank, 1-based: ceil(p/100 * n), at least 1. The small slack keeps e.g. 99.9 % of 1000
  // at rank 999 despite rounding in p / 100 * n.
  const double exact = p / 100.0 * static_cast<double>(count_);
  uint64_t rank = static_cast<uint64_t>(std::ceil(exact - 1e-9));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  if (rank == count_) return max_;  // the largest value is known exactly
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[static_cast<size_t>(i)];
    if (seen >= rank) {
      const int64_t mid = bucketLower(i) + (bucketUpper(i) - 1 - bucketLower(i)) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

}  // namespace plexus::client
