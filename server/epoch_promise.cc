#include "server/epoch_promise.h"

#include <cctype>
#include <charconv>
#include <string>

#include "spdlog/spdlog.h"
#include "storage/file.h"

namespace relaykv {
namespace {
constexpr const char* kFileName = "promised_epoch";
constexpr const char* kHeader =
    "# relaykv: the newest epoch this node has promised to follow (Revoke, README \"Failover\").\n"
    "# It never goes down; do not edit.\n";
}  // namespace

absl::StatusOr<std::unique_ptr<EpochPromise>> EpochPromise::Open(
    const std::filesystem::path& data_dir) {
  const std::filesystem::path path = data_dir / kFileName;
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  if (ec) {
    // EACCES, EIO: whether a promise exists is unknown, and reading it as
    // "nothing promised" would let this node follow a revoked primary.
    return absl::UnavailableError("cannot tell whether " + path.string() +
                                  " exists: " + ec.message() + "; refusing to start");
  }
  if (!exists) return std::unique_ptr<EpochPromise>(new EpochPromise(path, 0));
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  // Comment lines, then one decimal number.
  std::string number;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    std::string line = text->substr(pos, end - pos);
    pos = end + 1;
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (!number.empty()) {
      number.clear();
      break;  // two values: damaged
    }
    number = line;
  }
  uint64_t value = 0;
  const char* first = number.data();
  const char* last = number.data() + number.size();
  const auto parsed = std::from_chars(first, last, value);
  if (number.empty() || number.find_first_not_of("0123456789") != std::string::npos ||
      parsed.ec != std::errc() || parsed.ptr != last || value > kMaxEpoch) {
    return absl::DataLossError(path.string() +
                               " does not hold one decimal epoch; refusing to start (a damaged "
                               "promise must not read as 'nothing promised'; the largest epoch is " +
                               std::to_string(kMaxEpoch) + ")");
  }
  return std::unique_ptr<EpochPromise>(new EpochPromise(path, value));
}

absl::Status EpochPromise::CheckBound(uint64_t epoch) const {
  const uint64_t current = value_.load();
  if (epoch > kMaxEpoch) {
    return absl::InvalidArgumentError("epoch " + std::to_string(epoch) + " is above the largest " +
                                      std::to_string(kMaxEpoch) + "; not promised");
  }
  if (epoch > current && epoch - current > kMaxEpochStep) {
    return absl::InvalidArgumentError(
        "epoch " + std::to_string(epoch) + " is more than " + std::to_string(kMaxEpochStep) +
        " above the promised epoch " + std::to_string(current) +
        " (epochs grow by one per election); not promised");
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> EpochPromise::Hold::Raise(uint64_t epoch) {
  const uint64_t current = promise_->value_.load();
  if (epoch <= current) return current;
  if (auto s = promise_->CheckBound(epoch); !s.ok()) return s;
  // Durable before anyone can see it: value_ is published after the rename
  // and the directory's fsync.
  if (auto s = WriteFileAtomically(promise_->path_, kHeader + std::to_string(epoch) + "\n");
      !s.ok()) {
    return s;
  }
  promise_->value_.store(epoch);
  spdlog::info("epoch promise: raised from {} to {} (durable)", current, epoch);
  return epoch;
}

}  // namespace relaykv
