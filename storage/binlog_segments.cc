#include "storage/binlog_segments.h"

#include <fcntl.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <system_error>

#include "spdlog/spdlog.h"
#include "storage/binlog_format.h"
#include "storage/record.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;
using binlog_format::kRecordHeaderSize;
using binlog_format::kSegmentHeaderSize;

absl::Status Corruption(const fs::path& file, uint64_t offset, std::string_view what) {
  return absl::DataLossError("binlog corrupt: " + file.string() + " at offset " +
                             std::to_string(offset) + ": " + std::string(what) +
                             "; refusing to start (restore the file or remove the damaged "
                             "segments by hand)");
}

bool AllZero(std::string_view bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; });
}

struct ScanResult {
  uint64_t valid_end = 0;   // end of the last good record
  uint64_t events = 0;
  Gtid last;
};

// Whether a bad record at `at` spanning `span` bytes is the torn last write
// rather than damage to synced data (binlog_format.h, "Torn tails"): one of
// its sectors never reached the disk, and no group ends after it with data
// following (a group written after it would mean it had been synced).
bool TornLastWrite(std::string_view data, uint64_t at, uint64_t span) {
  constexpr uint64_t kSector = binlog_format::kSectorSize;
  bool lost_sector = false;
  for (uint64_t b = (at + kSector - 1) / kSector * kSector; b < at + span && b < data.size();
       b += kSector) {
    if (AllZero(data.substr(b, kSector))) {
      lost_sector = true;
      break;
    }
  }
  if (!lost_sector) return false;
  const size_t end = data.find(GroupEndRecord(), at);
  return end == std::string_view::npos || AllZero(data.substr(end + GroupEndRecord().size()));
}

// Scans a whole segment (the last one) checking every record; decides
// between torn tail (returns the end of the last whole group) and
// corruption (error). Events after the last kGroupEnd belong to a write
// that did not finish, so never synced: they go with the torn tail.
absl::StatusOr<ScanResult> ScanLastSegment(const fs::path& path, std::string_view data,
                                           uint64_t first_seq) {
  ScanResult r;  // as of the last whole group
  r.valid_end = kSegmentHeaderSize;
  uint64_t group_events = 0;  // events seen since that group's end
  Gtid group_last = r.last;
  uint64_t offset = kSegmentHeaderSize;
  while (offset < data.size()) {
    std::string_view rest = data.substr(offset);
    ParsedRecord rec;
    RecordParse p = ParseRecord(rest, &rec);
    switch (p) {
      case RecordParse::kOk:
        break;
      case RecordParse::kHeaderIncomplete:
      case RecordParse::kPayloadIncomplete:
        return r;  // cut short by the end of the file: torn tail
      case RecordParse::kBadHeader:
        if (AllZero(rest.substr(std::min<size_t>(rest.size(), kRecordHeaderSize)))) return r;
        if (TornLastWrite(data, offset, kRecordHeaderSize)) return r;
        return Corruption(path, offset, "bad record header checksum with data after it");
      case RecordParse::kBadCrc:
        if (rec.total_size == rest.size() || AllZero(rest.substr(rec.total_size))) return r;
        if (TornLastWrite(data, offset, rec.total_size)) return r;
        return Corruption(path, offset, "payload checksum mismatch with data after it");
    }
    offset += rec.total_size;
    if (rec.type == binlog_format::RecordType::kGroupEnd) {
      r.events += group_events;
      r.last = group_last;
      r.valid_end = offset;
      group_events = 0;
      continue;
    }
    const uint64_t at = offset - rec.total_size;
    if (rec.type != binlog_format::RecordType::kEvent) {
      return Corruption(path, at, "unknown record type " + std::to_string(static_cast<int>(rec.type)));
    }
    v1::Event event;
    if (!event.ParseFromArray(rec.payload.data(), static_cast<int>(rec.payload.size()))) {
      return Corruption(path, at, "event payload does not decode");
    }
    uint64_t want = first_seq + r.events + group_events;
    if (event.gtid().seq() != want) {
      return Corruption(path, at,
                        "event has gtid " + GtidFromProto(event.gtid()).ToString() +
                            ", expected seq " + std::to_string(want));
    }
    if (event.gtid().epoch() < group_last.epoch) {
      return Corruption(path, at,
                        "event has gtid " + GtidFromProto(event.gtid()).ToString() +
                            ": its epoch goes back from " + std::to_string(group_last.epoch));
    }
    group_last = GtidFromProto(event.gtid());
    ++group_events;
  }
  return r;
}

absl::StatusOr<std::vector<uint64_t>> ReadIndex(const fs::path& dir) {
  auto text = ReadFileToString(dir / binlog_format::kIndexFileName);
  if (!text.ok()) return text.status();
  std::vector<uint64_t> numbers;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    uint64_t n = 0;
    if (!ParseSegmentFileName(line, &n)) {
      return absl::DataLossError("binlog index " + (dir / binlog_format::kIndexFileName).string() +
                                 " has a bad line: '" + line + "'");
    }
    if (!numbers.empty() && n != numbers.back() + 1) {
      return absl::DataLossError("binlog index lists " + line + " after " +
                                 SegmentFileName(numbers.back()) + ": segments must be consecutive");
    }
    numbers.push_back(n);
  }
  if (numbers.empty()) {
    return absl::DataLossError("binlog index " + (dir / binlog_format::kIndexFileName).string() +
                               " lists no segment");
  }
  return numbers;
}

}  // namespace

std::string SegmentFileName(uint64_t number) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "binlog.%06llu", static_cast<unsigned long long>(number));
  return buf;
}

bool ParseSegmentFileName(const std::string& name, uint64_t* number) {
  const std::string_view prefix = binlog_format::kSegmentPrefix;
  if (name.size() < prefix.size() + 6 || name.compare(0, prefix.size(), prefix) != 0) return false;
  uint64_t n = 0;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    n = n * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  if (n == 0) return false;
  *number = n;
  return true;
}

absl::Status WriteBinlogIndex(const fs::path& dir, const std::vector<uint64_t>& numbers) {
  std::string text;
  for (uint64_t n : numbers) text += SegmentFileName(n) + "\n";
  return WriteFileAtomically(dir / binlog_format::kIndexFileName, text);
}

absl::StatusOr<File> CreateSegment(const fs::path& dir, uint64_t number, uint64_t first_seq,
                                   uint64_t prev_epoch) {
  auto file = File::Open(dir / SegmentFileName(number), O_RDWR | O_CREAT | O_TRUNC);
  if (!file.ok()) return file.status();
  if (auto s = file->WriteAt(0, EncodeSegmentHeader(first_seq, static_cast<uint32_t>(prev_epoch)));
      !s.ok()) {
    return s;
  }
  if (auto s = file->DataSync(); !s.ok()) return s;
  if (auto s = SyncDir(dir); !s.ok()) return s;
  return file;
}

absl::StatusOr<RecoveredBinlog> RecoverBinlogDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError("cannot create binlog directory " + dir.string() + ": " + ec.message());

  // Segment files present on disk.
  std::vector<uint64_t> on_disk;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    uint64_t n = 0;
    if (ParseSegmentFileName(entry.path().filename().string(), &n)) on_disk.push_back(n);
  }
  if (ec) return absl::InternalError("cannot list " + dir.string() + ": " + ec.message());

  RecoveredBinlog out;
  if (!fs::exists(dir / binlog_format::kIndexFileName)) {
    if (!on_disk.empty()) {
      return absl::DataLossError("binlog index " + (dir / binlog_format::kIndexFileName).string() +
                                 " is missing but segment files exist; refusing to guess");
    }
    auto seg = CreateSegment(dir, 1, 1, 0);
    if (!seg.ok()) return seg.status();
    if (auto s = WriteBinlogIndex(dir, {1}); !s.ok()) return s;
    out.segments.push_back({1, 1, kSegmentHeaderSize});
    return out;
  }

  auto numbers = ReadIndex(dir);
  if (!numbers.ok()) return numbers.status();
  // Files the index does not list were left by an interrupted rotation (a
  // newer, event-less segment) or purge (older, already dropped): remove.
  for (uint64_t n : on_disk) {
    if (n < numbers->front() || n > numbers->back()) {
      spdlog::warn("binlog: removing {} (not in {})", (dir / SegmentFileName(n)).string(),
                   binlog_format::kIndexFileName);
      fs::remove(dir / SegmentFileName(n), ec);
    }
  }

  for (size_t i = 0; i < numbers->size(); ++i) {
    const uint64_t number = (*numbers)[i];
    const fs::path path = dir / SegmentFileName(number);
    auto file = File::Open(path, O_RDWR);
    if (!file.ok()) {
      return absl::DataLossError("binlog segment listed in the index is unreadable: " +
                                 std::string(file.status().message()));
    }
    auto size = file->Size();
    if (!size.ok()) return size.status();
    std::string header(kSegmentHeaderSize, '\0');
    size_t n = 0;
    if (auto s = file->ReadAt(0, header.size(), header.data(), &n); !s.ok()) return s;
    uint64_t first_seq = 0;
    uint32_t prev_epoch = 0;
    if (n < kSegmentHeaderSize || !DecodeSegmentHeader(header, &first_seq, &prev_epoch)) {
      return Corruption(path, 0, "bad segment header");
    }
    if (!out.segments.empty() && first_seq < out.segments.back().first_seq) {
      return Corruption(path, 0, "segment first seq " + std::to_string(first_seq) +
                                     " goes backwards");
    }
    const bool last = i + 1 == numbers->size();
    if (!last) {
      out.segments.push_back({number, first_seq, *size});
      continue;
    }
    // Only the last segment can have a torn tail: check every record.
    std::string data(*size, '\0');
    if (auto s = file->ReadAt(0, data.size(), data.data(), &n); !s.ok()) return s;
    data.resize(n);
    auto scan = ScanLastSegment(path, data, first_seq);
    if (!scan.ok()) return scan.status();
    if (scan->valid_end < data.size()) {
      if (AllZero(std::string_view(data).substr(scan->valid_end))) {
        // Preallocated space (see binlog.h), or a write that never started.
        spdlog::debug("binlog: {} ends at offset {}; dropping {} zero bytes after it",
                      path.string(), scan->valid_end, data.size() - scan->valid_end);
      } else {
        spdlog::warn("binlog: torn tail in {} at offset {}: dropped {} bytes", path.string(),
                     scan->valid_end, data.size() - scan->valid_end);
      }
      if (auto s = file->Truncate(scan->valid_end); !s.ok()) return s;
      if (auto s = file->DataSync(); !s.ok()) return s;
    }
    out.segments.push_back({number, first_seq, scan->valid_end});
    out.next_seq = first_seq + scan->events;
    if (scan->events > 0) {
      out.last = scan->last;
    } else if (first_seq > 1) {
      out.last = Gtid{prev_epoch, first_seq - 1};  // empty last segment
    }
  }
  return out;
}

}  // namespace relaykv
