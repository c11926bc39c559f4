#include "server/metrics.h"

#include <cassert>
#include <charconv>
#include <cmath>

namespace relaykv {
namespace {

constexpr uint64_t kMicro = 1000;
constexpr uint64_t kMilli = 1000 * kMicro;
constexpr uint64_t kSecond = 1000 * kMilli;
constexpr uint64_t kLatencyBounds[] = {
    50 * kMicro,  100 * kMicro, 250 * kMicro, 500 * kMicro, 1 * kMilli,
    2 * kMilli,   5 * kMilli,   10 * kMilli,  25 * kMilli,  50 * kMilli,
    100 * kMilli, 250 * kMilli, 500 * kMilli, 1 * kSecond,  2 * kSecond,
    5 * kSecond,  10 * kSecond};
constexpr uint64_t kGroupBounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

}  // namespace

std::span<const uint64_t> LatencyBucketsNanos() { return kLatencyBounds; }
std::span<const uint64_t> GroupSizeBuckets() { return kGroupBounds; }

Histogram::Histogram(std::span<const uint64_t> upper_bounds) : num_bounds_(upper_bounds.size()) {
  // At most kMaxBuckets bounds, strictly ascending.
  assert(upper_bounds.size() <= kMaxBuckets);
  for (size_t i = 0; i < num_bounds_; ++i) {
    assert(i == 0 || upper_bounds[i] > upper_bounds[i - 1]);
    bounds_[i] = upper_bounds[i];
  }
}

Histogram::Snapshot Histogram::TakeSnapshot() const {
  Snapshot s;
  s.upper_bounds.assign(bounds_.begin(), bounds_.begin() + num_bounds_);
  s.cumulative.resize(num_bounds_ + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= num_bounds_; ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::string Exposition::FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}

std::string Exposition::FormatBound(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
  return ec == std::errc() ? std::string(buf, end) : FormatValue(v);
}

std::string Exposition::EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Exposition::Family(std::string_view name, Type type, std::string_view help) {
  // Counters are named *_total (Prometheus convention; promtool checks it).
  assert(type != Type::kCounter || name.ends_with("_total"));
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  // HELP text escapes \ and newline.
  for (char c : help) {
    if (c == '\\') {
      out_ += "\\\\";
    } else if (c == '\n') {
      out_ += "\\n";
    } else {
      out_ += c;
    }
  }
  out_ += "\n# TYPE ";
  out_ += name;
  switch (type) {
    case Type::kCounter:
      out_ += " counter\n";
      break;
    case Type::kGauge:
      out_ += " gauge\n";
      break;
    case Type::kHistogram:
      out_ += " histogram\n";
      break;
  }
}

void Exposition::AppendLabels(const Labels& labels, std::string_view extra_name,
                              std::string_view extra_value) {
  if (labels.empty() && extra_name.empty()) return;
  out_ += '{';
  bool first = true;
  auto one = [&](std::string_view n, std::string_view v) {
    if (!first) out_ += ',';
    first = false;
    out_ += n;
    out_ += "=\"";
    out_ += EscapeLabelValue(v);
    out_ += '"';
  };
  for (const auto& [n, v] : labels) one(n, v);
  if (!extra_name.empty()) one(extra_name, extra_value);
  out_ += '}';
}

void Exposition::Sample(std::string_view name, const Labels& labels, double value) {
  out_ += name;
  AppendLabels(labels);
  out_ += ' ';
  out_ += FormatValue(value);
  out_ += '\n';
}

void Exposition::Sample(std::string_view name, const Labels& labels, uint64_t value) {
  out_ += name;
  AppendLabels(labels);
  out_ += ' ';
  out_ += std::to_string(value);
  out_ += '\n';
}

void Exposition::HistogramSamples(std::string_view name, const Labels& labels,
                                  const Histogram::Snapshot& h, double divisor) {
  const std::string bucket = std::string(name) + "_bucket";
  for (size_t i = 0; i < h.cumulative.size(); ++i) {
    const std::string le = i < h.upper_bounds.size()
                               ? FormatBound(static_cast<double>(h.upper_bounds[i]) / divisor)
                               : "+Inf";
    out_ += bucket;
    AppendLabels(labels, "le", le);
    out_ += ' ';
    out_ += std::to_string(h.cumulative[i]);
    out_ += '\n';
  }
  Sample(std::string(name) + "_sum", labels, static_cast<double>(h.sum) / divisor);
  Sample(std::string(name) + "_count", labels, h.count());
}

void Exposition::Gauge(std::string_view name, std::string_view help, double value) {
  Family(name, Type::kGauge, help);
  Sample(name, {}, value);
}

void Exposition::Counter(std::string_view name, std::string_view help, uint64_t value) {
  Family(name, Type::kCounter, help);
  Sample(name, {}, value);
}

}  // namespace relaykv
