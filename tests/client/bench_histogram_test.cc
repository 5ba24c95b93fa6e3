#include "client/bench_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace plexus::client {
namespace {

// Nearest-rank percentile of sorted data: the value at rank ceil(p/100 * n), 1-based.
int64_t exactPercentile(const std::vector<int64_t>& sorted, double p) {
  const double rank = std::ceil(p / 100.0 * static_cast<double>(sorted.size()) - 1e-9);
  const size_t i = static_cast<size_t>(std::clamp(rank, 1.0, static_cast<double>(sorted.size())));
  return sorted[i - 1];
}

// The histogram's answer lies in the bucket of the exact value: within 1/64 of it, relative.
void expectWithinBucket(int64_t got, int64_t exact) {
  const double tolerance = std::max(1.0, static_cast<double>(exact) / 64.0);
  EXPECT_LE(std::abs(static_cast<double>(got - exact)), tolerance) << "exact " << exact;
}

TEST(LatencyHistogramTest, EmptyIsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(50), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.mean(), 0);
}

TEST(LatencyHistogramTest, BucketsCoverTheRangeWithoutGapsAndWithinOneSixtyFourth) {
  EXPECT_EQ(LatencyHistogram::bucketIndex(0), 0);
  EXPECT_EQ(LatencyHistogram::bucketIndex(127), 127);
  EXPECT_EQ(LatencyHistogram::bucketIndex(128), 128);
  EXPECT_EQ(LatencyHistogram::bucketIndex(LatencyHistogram::kMaxValue),
            LatencyHistogram::bucketIndex(LatencyHistogram::kMaxValue * 10));
  EXPECT_LT(LatencyHistogram::bucketIndex(LatencyHistogram::kMaxValue), LatencyHistogram::kBuckets);
  // Buckets past the one of kMaxValue exist (the array ends on a power of two) but stay empty.
  const int last = LatencyHistogram::bucketIndex(LatencyHistogram::kMaxValue);
  for (int i = 0; i < last; ++i) {
    const int64_t lo = LatencyHistogram::bucketLower(i);
    const int64_t hi = LatencyHistogram::bucketUpper(i);
    ASSERT_EQ(hi, LatencyHistogram::bucketLower(i + 1)) << i;
    ASSERT_EQ(LatencyHistogram::bucketIndex(lo), i);
    ASSERT_EQ(LatencyHistogram::bucketIndex(hi - 1), i);
    if (lo >= LatencyHistogram::kLinearLimit) {
      ASSERT_LE((hi - lo) * 64, lo) << i;
    }
  }
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (int64_t v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.percentile(50), 50);
  EXPECT_EQ(h.percentile(90), 90);
  EXPECT_EQ(h.percentile(99), 99);
  EXPECT_EQ(h.percentile(100), 100);
  EXPECT_EQ(h.percentile(0), 1);
  EXPECT_EQ(h.min(), 1);
  EXPECT_EQ(h.max(), 100);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(LatencyHistogramTest, PercentilesMatchExactOnesWithinBucketError) {
  // Log-normal latencies from 1 µs to tens of ms, the shape real ones have.
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(std::log(50000.0), 1.2);
  std::vector<int64_t> values;
  LatencyHistogram h;
  for (int i = 0; i < 100000; ++i) {
    const auto v = std::clamp<int64_t>(static_cast<int64_t>(dist(rng)), 1000, 100'000'000);
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99}) {
    SCOPED_TRACE(p);
    expectWithinBucket(h.percentile(p), exactPercentile(values, p));
  }
  EXPECT_EQ(h.max(), values.back());
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.percentile(100), values.back());
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram a;
  LatencyHistogram b;
  LatencyHistogram all;
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> dist(1000, 50'000'000);
  for (int i = 0; i < 20000; ++i) {
    const int64_t v = dist(rng);
    (i % 3 ? a : b).record(v);
    all.record(v);
  }
  LatencyHistogram merged;
  merged.merge(a);
  merged.merge(b);
  merged.merge(LatencyHistogram());  // empty: changes nothing
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  EXPECT_DOUBLE_EQ(merged.mean(), all.mean());
  for (double p : {50.0, 90.0, 99.0, 99.9}) EXPECT_EQ(merged.percentile(p), all.percentile(p));
}

TEST(LatencyHistogramTest, OutOfRangeValuesAreClampedButMaxStaysExact) {
  LatencyHistogram h;
  h.record(-5);                                  // counts as 0
  h.record(LatencyHistogram::kMaxValue * 3);     // beyond 100 s
  h.record(LatencyHistogram::kMaxValue * 4);
  EXPECT_EQ(h.count(), 3u);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), LatencyHistogram::kMaxValue * 4);
  EXPECT_EQ(h.percentile(1), 0);
  // The top bucket holds both; its middle is close to 100 s (within the bucket's 1/64).
  expectWithinBucket(h.percentile(50), LatencyHistogram::kMaxValue);
  EXPECT_EQ(h.percentile(100), LatencyHistogram::kMaxValue * 4);
  h.reset();
  EXPECT_EQ(h.count(), 0u);
}

}  // namespace
}  // namespace plexus::client
