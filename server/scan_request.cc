#include "server/scan_request.h"

#include "storage/show_key.h"
#include "server/limits.h"

namespace relaykv {
namespace {

constexpr char kTokenVersion = 0x01;
constexpr char kForward = 'F';
constexpr char kReverse = 'R';
constexpr size_t kTokenHeaderBytes = 2;

absl::Status CheckBound(const char* what, const std::string& key) {
  if (key.size() <= kMaxKeyBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(std::string("scan ") + what + " is " +
                                    std::to_string(key.size()) + " bytes; the limit is " +
                                    std::to_string(kMaxKeyBytes));
}

absl::Status Malformed(const std::string& why) {
  return absl::InvalidArgumentError("scan continuation token is malformed: " + why +
                                    " (pass back the token of the previous page, with the same "
                                    "range, prefix and direction)");
}

}  // namespace

std::string PrefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (!end.empty()) end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

absl::StatusOr<ScanSpec> ResolveScan(const ScanRange& range) {
  ScanSpec spec;
  if (!range.prefix.empty() && (!range.start.empty() || !range.end.empty())) {
    return absl::InvalidArgumentError(
        "scan prefix cannot be combined with start or end: give a prefix or a range");
  }
  if (auto s = CheckBound("start", range.start); !s.ok()) return s;
  if (auto s = CheckBound("end", range.end); !s.ok()) return s;
  if (auto s = CheckBound("prefix", range.prefix); !s.ok()) return s;
  if (!range.end.empty() && range.start > range.end) {
    return absl::InvalidArgumentError("scan start " + ShowKey(range.start) + " is after end " +
                                      ShowKey(range.end) + " (the range is [start, end))");
  }
  const uint32_t max = range.count_only ? kMaxScanCountLimit : kMaxScanLimit;
  if (range.limit > max) {
    return absl::InvalidArgumentError(
        "scan limit " + std::to_string(range.limit) + " is over the maximum of " +
        std::to_string(max) + (range.count_only ? " for a count" : " keys per page") +
        "; read further pages with the continuation token");
  }
  spec.max_keys = range.limit != 0 ? range.limit : (range.count_only ? max : kDefaultScanLimit);
  spec.max_bytes = range.count_only ? 0 : kMaxScanReplyBytes;
  spec.reverse = range.reverse;
  spec.keys_only = range.keys_only;
  spec.count_only = range.count_only;
  if (!range.prefix.empty()) {
    spec.start = range.prefix;
    spec.end = PrefixEnd(range.prefix);
  } else {
    spec.start = range.start;
    spec.end = range.end;
  }
  if (range.continuation.empty()) return spec;

  const std::string& token = range.continuation;
  if (token.size() <= kTokenHeaderBytes) {
    return Malformed(std::to_string(token.size()) + " bytes is too short");
  }
  if (token[0] != kTokenVersion) {
    return Malformed("unknown version " + std::to_string(static_cast<unsigned char>(token[0])));
  }
  if (token[1] != kForward && token[1] != kReverse) return Malformed("unknown direction");
  if ((token[1] == kReverse) != range.reverse) {
    return Malformed(std::string("it continues a ") + (token[1] == kReverse ? "reverse" : "forward") +
                     " scan, this one runs " + (range.reverse ? "in reverse" : "forward"));
  }
  std::string last = token.substr(kTokenHeaderBytes);
  if (last.size() > kMaxKeyBytes) {
    return Malformed("its key is " + std::to_string(last.size()) + " bytes; the limit is " +
                     std::to_string(kMaxKeyBytes));
  }
  if (last < spec.start || (!spec.end.empty() && last >= spec.end)) {
    return Malformed("its key " + ShowKey(last) + " is outside the scanned range");
  }
  if (range.reverse) {
    spec.end = std::move(last);  // exclusive: resumes below it
  } else {
    last.push_back('\0');  // the smallest key after it
    spec.start = std::move(last);
  }
  return spec;
}

std::string ContinuationAfter(const ScanRange& range, const std::string& last_key) {
  std::string token;
  token.reserve(kTokenHeaderBytes + last_key.size());
  token.push_back(kTokenVersion);
  token.push_back(range.reverse ? kReverse : kForward);
  token += last_key;
  return token;
}

}  // namespace relaykv
