// server/metrics.h: the lock-free histogram and the Prometheus text
// exposition format 0.0.4 (HELP/TYPE lines, labels, cumulative buckets).
#include "server/metrics.h"

#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace relaykv {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kBounds[] = {10, 100, 1000};

TEST(HistogramTest, BucketsAreCumulativeAndBoundsInclusive) {
  Histogram h(kBounds);
  for (uint64_t v : {0, 10, 11, 100, 5000}) h.Observe(v);
  const Histogram::Snapshot s = h.TakeSnapshot();
  EXPECT_EQ(s.upper_bounds, (std::vector<uint64_t>{10, 100, 1000}));
  // le=10: {0, 10}; le=100: +{11, 100}; le=1000: same; +Inf: +{5000}.
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 4, 4, 5}));
  EXPECT_EQ(s.count(), 5u);
  EXPECT_EQ(s.sum, 0u + 10 + 11 + 100 + 5000);
}

TEST(HistogramTest, ConcurrentObserversLoseNothing) {
  Histogram h(kBounds);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) h.Observe(static_cast<uint64_t>(i % 2000));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.TakeSnapshot().count(), 40000u);
}

TEST(ExpositionTest, CounterAndGaugeHaveHelpTypeAndSample) {
  Exposition e;
  e.Counter("relaykv_things_total", "Things done.", 42);
  e.Gauge("relaykv_level", "A level.", 1.5);
  EXPECT_EQ(e.text(),
            "# HELP relaykv_things_total Things done.\n"
            "# TYPE relaykv_things_total counter\n"
            "relaykv_things_total 42\n"
            "# HELP relaykv_level A level.\n"
            "# TYPE relaykv_level gauge\n"
            "relaykv_level 1.5\n");
}

TEST(ExpositionTest, HistogramHasBucketsWithLeSumAndCount) {
  Histogram h(kBounds);  // nanoseconds
  h.Observe(5);
  h.Observe(500);
  Exposition e;
  e.Family("relaykv_x_seconds", Exposition::Type::kHistogram, "X latency.");
  e.HistogramSamples("relaykv_x_seconds", {{"wait_point", "AFTER_SYNC"}}, h.TakeSnapshot(), 1e9);
  EXPECT_EQ(e.text(),
            "# HELP relaykv_x_seconds X latency.\n"
            "# TYPE relaykv_x_seconds histogram\n"
            "relaykv_x_seconds_bucket{wait_point=\"AFTER_SYNC\",le=\"0.00000001\"} 1\n"
            "relaykv_x_seconds_bucket{wait_point=\"AFTER_SYNC\",le=\"0.0000001\"} 1\n"
            "relaykv_x_seconds_bucket{wait_point=\"AFTER_SYNC\",le=\"0.000001\"} 2\n"
            "relaykv_x_seconds_bucket{wait_point=\"AFTER_SYNC\",le=\"+Inf\"} 2\n"
            "relaykv_x_seconds_sum{wait_point=\"AFTER_SYNC\"} 5.05e-07\n"
            "relaykv_x_seconds_count{wait_point=\"AFTER_SYNC\"} 2\n");
}

TEST(ExpositionTest, LabelValuesAndHelpAreEscaped) {
  Exposition e;
  e.Family("relaykv_info", Exposition::Type::kGauge, "back\\slash\nnewline");
  e.Sample("relaykv_info", {{"a", "q\"uote"}, {"b", "back\\slash\nnl"}}, uint64_t{1});
  EXPECT_THAT(e.text(), HasSubstr("# HELP relaykv_info back\\\\slash\\nnewline\n"));
  EXPECT_THAT(e.text(), HasSubstr("relaykv_info{a=\"q\\\"uote\",b=\"back\\\\slash\\nnl\"} 1\n"));
}

TEST(ExpositionTest, SpecialFloatsUsePrometheusSpelling) {
  EXPECT_EQ(Exposition::FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(Exposition::FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(Exposition::FormatValue(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(Exposition::FormatValue(0.25), "0.25");
  EXPECT_EQ(Exposition::FormatValue(3), "3");
  EXPECT_EQ(Exposition::FormatBound(5e-05), "0.00005");
  EXPECT_EQ(Exposition::FormatBound(10), "10");
}

TEST(ExpositionTest, LatencyBucketsSpan50MicrosecondsTo10Seconds) {
  const auto b = LatencyBucketsNanos();
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.front(), 50'000u);
  EXPECT_EQ(b.back(), 10'000'000'000u);
  EXPECT_LE(b.size(), Histogram::kMaxBuckets);
}

}  // namespace
}  // namespace relaykv
