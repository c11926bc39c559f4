#include "server/epoch_promise.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <string>

#include "spdlog/spdlog.h"
#include "storage/file.h"

namespace relaykv {
namespace {
constexpr const char* kFileName = "promised_epoch";
constexpr const char* kHeader =
    "# relaykv: the newest epoch this node has promised to follow (Revoke, README \"Failover\").\n"
    "# It never goes down; do not edit.\n";
// The server_id the epoch belongs to (0: unknown), in a comment line.
constexpr const char* kOwnerPrefix = "# owner: ";
}  // namespace

absl::StatusOr<std::unique_ptr<EpochPromise>> EpochPromise::Open(
    const std::filesystem::path& data_dir) {
  const std::filesystem::path path = data_dir / kFileName;
  // Unknown is not "nothing promised": that would let this node follow a
  // revoked primary.
  const absl::StatusOr<bool> exists = FileExists(path);
  if (!exists.ok()) {
    return absl::UnavailableError(std::string(exists.status().message()) + "; refusing to start");
  }
  if (!*exists) return std::unique_ptr<EpochPromise>(new EpochPromise(path, 0, 0));
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  // Comment lines, one of which may name the owner, then one line: the
  // epoch. (The owner is in a comment so that an older relaykvd, which
  // knows only the number, still reads the file after a downgrade.)
  std::string value_line;
  std::string owner_field;
  bool damaged = false;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    std::string line = text->substr(pos, end - pos);
    pos = end + 1;
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (line.rfind(kOwnerPrefix, 0) == 0) {
      damaged = damaged || !owner_field.empty();
      owner_field = line.substr(std::string_view(kOwnerPrefix).size());
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    damaged = damaged || !value_line.empty();  // two value lines
    value_line = line;
  }
  const auto parse = [](const std::string& field, uint64_t max, uint64_t* out) {
    const char* last = field.data() + field.size();
    const auto parsed = std::from_chars(field.data(), last, *out);
    return !field.empty() && field.find_first_not_of("0123456789") == std::string::npos &&
           parsed.ec == std::errc() && parsed.ptr == last && *out <= max;
  };
  uint64_t value = 0;
  uint64_t owner = 0;
  const bool ok = !damaged && parse(value_line, kMaxEpoch, &value) &&
                  (owner_field.empty() ||
                   parse(owner_field, std::numeric_limits<uint32_t>::max(), &owner));
  if (!ok) {
    return absl::DataLossError(path.string() +
                               " does not hold one decimal epoch (and at most one '" +
                               kOwnerPrefix +
                               "' line); refusing to start (a damaged promise must not read as "
                               "'nothing promised'; the largest epoch is " +
                               std::to_string(kMaxEpoch) + ")");
  }
  return std::unique_ptr<EpochPromise>(
      new EpochPromise(path, value, static_cast<uint32_t>(owner)));
}

absl::Status EpochPromise::CheckBound(uint64_t epoch, uint64_t floor) const {
  const uint64_t current = std::max(value_.load(), floor);
  if (epoch > kMaxEpoch) {
    return absl::InvalidArgumentError("epoch " + std::to_string(epoch) + " is above the largest " +
                                      std::to_string(kMaxEpoch) + "; not promised");
  }
  if (epoch > current && epoch - current > kMaxEpochStep) {
    return absl::InvalidArgumentError(
        "epoch " + std::to_string(epoch) + " is more than " + std::to_string(kMaxEpochStep) +
        " above the promised epoch and the binlog's, " + std::to_string(current) +
        " (epochs grow by one per election); not promised — a node that must follow a newer "
        "cluster: CLONE FROM one of its nodes");
  }
  return absl::OkStatus();
}

absl::Status EpochPromise::Store(uint64_t epoch, uint32_t owner) {
  // Durable before anyone can see it: published after the rename and the
  // directory's fsync.
  if (auto s = WriteFileAtomically(
          path_, kHeader + std::string(kOwnerPrefix) + std::to_string(owner) + "\n" +
                     std::to_string(epoch) + "\n");
      !s.ok()) {
    return s;
  }
  owner_.store(owner);
  value_.store(epoch);
  return absl::OkStatus();
}

absl::Status EpochPromise::Hold::CheckOwner(uint64_t epoch, uint32_t server_id) const {
  const uint32_t bound = owner();
  if (epoch != value() || bound == 0 || server_id == 0 || bound == server_id) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      "epoch " + std::to_string(epoch) + " is promised to server_id " + std::to_string(bound) +
      ", not to server_id " + std::to_string(server_id) +
      " (two nodes opened the same epoch: the one that was not elected must not be followed)");
}

absl::StatusOr<uint64_t> EpochPromise::Hold::Raise(uint64_t epoch, uint32_t owner,
                                                   uint64_t floor) {
  const uint64_t current = promise_->value_.load();
  const uint32_t bound = promise_->owner_.load();
  if (epoch < current) return current;
  if (epoch == current) {
    if (auto s = CheckOwner(epoch, owner); !s.ok()) return s;
    if (bound != 0 || owner == 0) return current;
    if (auto s = promise_->Store(epoch, owner); !s.ok()) return s;
    spdlog::info("epoch promise: epoch {} bound to server_id {} (durable)", epoch, owner);
    return current;
  }
  if (auto s = promise_->CheckBound(epoch, floor); !s.ok()) return s;
  if (auto s = promise_->Store(epoch, owner); !s.ok()) return s;
  spdlog::info("epoch promise: raised from {} to {} (server_id {}; durable)", current, epoch,
               owner == 0 ? std::string("unknown") : std::to_string(owner));
  return epoch;
}

}  // namespace relaykv
