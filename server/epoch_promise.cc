#include "server/epoch_promise.h"

#include <cctype>
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
  if (!std::filesystem::exists(path, ec)) {
    return std::unique_ptr<EpochPromise>(new EpochPromise(path, 0));
  }
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
  if (number.empty() || number.size() > 19 ||
      number.find_first_not_of("0123456789") != std::string::npos) {
    return absl::DataLossError(path.string() +
                               " does not hold one decimal epoch; refusing to start (a damaged "
                               "promise must not read as 'nothing promised')");
  }
  return std::unique_ptr<EpochPromise>(new EpochPromise(path, std::stoull(number)));
}

absl::StatusOr<uint64_t> EpochPromise::Hold::Raise(uint64_t epoch) {
  const uint64_t current = promise_->value_.load();
  if (epoch <= current) return current;
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
