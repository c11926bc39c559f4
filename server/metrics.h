// Metrics primitives and the Prometheus text exposition format (0.0.4).
//
// Histogram: fixed buckets, lock-free. Observe() is meant for the commit
// path: it finds the bucket by a short scan of constant bounds and does two
// relaxed atomic adds (the bucket and the sum) — no lock, no allocation.
// Readers (Snapshot) may run concurrently; a snapshot taken while
// observations land may be off by those in flight, never inconsistent in a
// way a scraper sees: _count is computed from the buckets it reports.
// Values are integers in a base unit (nanoseconds, events); the exposition
// divides them (by 1e9: seconds).
//
// Exposition: builds the body of a GET /metrics reply. Each Family() starts
// a metric family (# HELP, # TYPE); the samples that follow belong to it.
// Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; label values are escaped here.
// Not thread-safe: one per scrape.
//
// Ownership: a Histogram owns its counters and is neither copied nor moved
// (the commit path holds pointers to it).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace relaykv {

class Histogram {
 public:
  static constexpr size_t kMaxBuckets = 24;
  // `upper_bounds`: ascending, in the base unit, at most kMaxBuckets; a
  // last +Inf bucket is implied.
  explicit Histogram(std::span<const uint64_t> upper_bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Lock-free; safe from any thread.
  void Observe(uint64_t value) {
    size_t i = 0;
    while (i < num_bounds_ && value > bounds_[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
  }

  struct Snapshot {
    std::vector<uint64_t> upper_bounds;  // base unit, ascending (no +Inf)
    std::vector<uint64_t> cumulative;    // upper_bounds.size() + 1 entries; last = +Inf = count
    uint64_t sum = 0;                    // base unit
    uint64_t count() const { return cumulative.empty() ? 0 : cumulative.back(); }
  };
  Snapshot TakeSnapshot() const;

 private:
  const size_t num_bounds_;
  std::array<uint64_t, kMaxBuckets> bounds_{};
  std::array<std::atomic<uint64_t>, kMaxBuckets + 1> buckets_{};  // not cumulative
  std::atomic<uint64_t> sum_{0};
};

// Bucket bounds used by relaykv's histograms.
// Latencies, nanoseconds: 50 µs .. 10 s, roughly x2-x2.5 apart.
std::span<const uint64_t> LatencyBucketsNanos();
// Group commit sizes, events: 1, 2, 4, .. 1024.
std::span<const uint64_t> GroupSizeBuckets();

using Labels = std::vector<std::pair<std::string_view, std::string>>;

class Exposition {
 public:
  enum class Type { kCounter, kGauge, kHistogram };
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

  // Starts family `name` (# HELP `help`, # TYPE). A counter's name ends in
  // _total (asserted).
  void Family(std::string_view name, Type type, std::string_view help);
  // One sample of the current family (gauge or counter).
  void Sample(std::string_view name, const Labels& labels, double value);
  void Sample(std::string_view name, const Labels& labels, uint64_t value);
  // The _bucket/_sum/_count samples of histogram family `name` (started by
  // Family), values divided by `divisor` (1e9: nanoseconds -> seconds; a
  // division, so that 50000 ns reads exactly 0.00005).
  void HistogramSamples(std::string_view name, const Labels& labels,
                        const Histogram::Snapshot& h, double divisor);
  // Family() and one unlabelled sample, for the common case.
  void Gauge(std::string_view name, std::string_view help, double value);
  void Counter(std::string_view name, std::string_view help, uint64_t value);

  const std::string& text() const { return out_; }

  // Prometheus float text: shortest round-trip form, "+Inf", "-Inf", "NaN".
  static std::string FormatValue(double v);
  // A bucket bound (le): fixed notation as client libraries write it
  // ("0.00005", not "5e-05"), shortest that reads back the same.
  static std::string FormatBound(double v);
  // A label value with \, " and newline escaped.
  static std::string EscapeLabelValue(std::string_view v);

 private:
  void AppendLabels(const Labels& labels, std::string_view extra_name = {},
                    std::string_view extra_value = {});
  std::string out_;
};

}  // namespace relaykv
