#include "storage/binlog_segments.h"

#include <fcntl.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <system_error>

#include "spdlog/spdlog.h"
#include "storage/binlog_format.h"
#include "storage/binlog_truncate.h"
#include "storage/record.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;
using binlog_format::kRecordHeaderSize;
using binlog_format::kSectorSize;
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

// The offset of the first record at or after `from` whose header and payload
// checksums are good, or npos. Past damage the record boundaries are unknown,
// so every offset is tried; a record header is never 13 zero bytes (its hcrc
// would not match), so runs of zeros (preallocated space) are skipped.
size_t NextWholeRecord(std::string_view data, size_t from, ParsedRecord* rec) {
  for (size_t at = from; at + kRecordHeaderSize <= data.size(); ++at) {
    if (data[at] == '\0') {
      const size_t nonzero = data.find_first_not_of('\0', at);
      if (nonzero == std::string_view::npos) return std::string_view::npos;
      // A header holding that byte starts at most 12 bytes before it.
      at = std::max(at, nonzero >= kRecordHeaderSize - 1 ? nonzero - (kRecordHeaderSize - 1) : 0);
    }
    if (ParseRecord(data.substr(at), rec) == RecordParse::kOk) return at;
  }
  return std::string_view::npos;
}

// What a whole record found past damage, at `at` in a segment with `key`,
// is, for the refusal message.
std::string Describe(const ParsedRecord& rec, uint32_t key, size_t at) {
  if (rec.type == binlog_format::RecordType::kGroupEnd) {
    uint64_t first = 0;
    uint64_t last = 0;
    if (DecodeGroupEnd(rec.payload, &first, &last)) {
      return "group end of seqs " + std::to_string(first) + ".." + std::to_string(last);
    }
    return "group end";
  }
  v1::Event event;
  if (rec.type == binlog_format::RecordType::kEvent &&
      DecodeEventPayload(rec.payload, key, at + kRecordHeaderSize, &event)) {
    return "event " + GtidFromProto(event.gtid()).ToString();
  }
  return "record of type " + std::to_string(static_cast<int>(rec.type));
}

// Whether the group end record at `at` (its header trusted, its payload
// CRC failing), closing the group [group_begin, ...) of seqs x..x+events-1,
// is that group's true end with sectors of it lost: the record the writer
// wrote is known exactly (AppendGroupEnd of those seqs), and the disk must
// differ from it only in bytes that are zero, each in a sector whose share
// of the group is all zero. This is how the loss of a sector holding only
// last_seq's high bytes shows (they are zero below seq 256, so the zero
// sector alone proves nothing). A flip that leaves the byte non-zero does
// not pass it; one that clears the only set bit of a lost-looking
// share reads exactly like the lost sector and is taken for it (the
// format's blind spot, binlog_format.h).
bool GroupEndLostSectors(std::string_view data, size_t group_begin, size_t at, uint64_t x,
                         uint64_t events) {
  if (events == 0) return false;
  std::string expected;
  AppendGroupEnd(&expected, x, x + events - 1);
  if (at + expected.size() > data.size()) return false;
  const std::string_view disk = data.substr(at, expected.size());
  const size_t group_end = at + expected.size();
  bool differs = false;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (disk[i] == expected[i]) continue;
    if (disk[i] != '\0') return false;
    const size_t sector = (at + i) / kSectorSize * kSectorSize;
    const size_t lo = std::max(group_begin, sector);
    const size_t hi = std::min(sector + kSectorSize, group_end);
    if (!AllZero(data.substr(lo, hi - lo))) return false;
    differs = true;
  }
  return differs;
}

// Decides damage at `damage` (a record that does not parse, `parse` says
// how) in the group that starts at `group_begin` with seq `x`, of which
// `events` event records were read whole before the damage, by the rule in
// binlog_format.h ("Torn tails"): OK if it is the torn last write, else
// DATA_LOSS naming the damage and the proof (or the missing evidence).
// `key`: the segment's (its event payloads are whitened with it).
absl::Status JudgeDamage(const fs::path& path, std::string_view data, uint32_t key,
                         size_t group_begin, size_t damage, uint64_t x, uint64_t events,
                         RecordParse parse) {
  const std::string what = parse == RecordParse::kBadHeader ? "bad record header checksum"
                                                             : "payload checksum mismatch";
  const size_t size = data.size();
  // The damaged group's end: exact once known, else a lower bound (its
  // kGroupEnd starts at or after every record of it known).
  size_t group_end = damage + binlog_format::kGroupEndRecordSize;
  bool end_known = false;
  bool payload_zeroed = false;  // a trusted header followed by zeros only
  bool end_lost = false;        // the group's own end with sectors lost (see above)
  bool cut_short = false;       // the group runs past the end of the file
  std::vector<std::pair<size_t, size_t>> whole;  // [begin, end) of whole records after D
  size_t own_end = std::string_view::npos;       // just past the group's own kGroupEnd
  uint64_t own_last = 0;

  ParsedRecord rec;
  size_t at = damage;
  bool aligned = false;  // `at` is a record boundary (a trusted header led here)
  if (parse == RecordParse::kBadCrc) {
    // The header is good, so the length is: the record's extent is known.
    ParseRecord(data.substr(damage), &rec);
    const std::string_view payload =
        data.substr(damage + kRecordHeaderSize, rec.total_size - kRecordHeaderSize);
    payload_zeroed = !payload.empty() && AllZero(payload);
    if (static_cast<binlog_format::RecordType>(static_cast<uint8_t>(data[damage + 8])) ==
        binlog_format::RecordType::kGroupEnd) {
      group_end = damage + rec.total_size;
      end_known = true;
      own_end = group_end;  // nothing after it is the group's own but another end of it
      own_last = 0;
      end_lost = GroupEndLostSectors(data, group_begin, damage, x, events);
    } else {
      group_end = damage + rec.total_size + binlog_format::kGroupEndRecordSize;
    }
    at = damage + rec.total_size;
    aligned = true;
  } else {
    at = damage + 1;
  }

  while (at < size) {
    if (!aligned && data[at] == '\0') {
      // A header is never 13 zero bytes: skip the run (see NextWholeRecord).
      const size_t nonzero = data.find_first_not_of('\0', at);
      if (nonzero == std::string_view::npos) break;
      at = std::max(at, nonzero >= kRecordHeaderSize - 1 ? nonzero - (kRecordHeaderSize - 1) : 0);
    }
    const RecordParse p = ParseRecord(data.substr(at), &rec);
    if (p == RecordParse::kOk) {
      const size_t end = at + rec.total_size;
      whole.emplace_back(at, end);
      uint64_t first = 0;
      uint64_t last = 0;
      const bool group_end_record = rec.type == binlog_format::RecordType::kGroupEnd &&
                                    DecodeGroupEnd(rec.payload, &first, &last);
      bool own = false;  // could be a record of the damaged group itself
      if (group_end_record) {
        if (first > x) {
          return Corruption(path, damage,
                            what + ", and the " + Describe(rec, key, at) +
                                " (a later group's) at offset " +
                                std::to_string(at) + " shows the damaged group had been synced");
        }
        own = first == x;
        if (own && own_end == std::string_view::npos) {
          own_end = end;
          own_last = last;
          group_end = end;
          end_known = true;
        }
      } else if (rec.type == binlog_format::RecordType::kEvent) {
        v1::Event event;
        if (DecodeEventPayload(rec.payload, key, at + kRecordHeaderSize, &event) &&
            event.gtid().seq() >= x) {
          own = event.gtid().seq() <= own_last || own_end == std::string_view::npos;
          if (!end_known) group_end = std::max(group_end, end + binlog_format::kGroupEndRecordSize);
        }
      }
      if (own_end != std::string_view::npos && at >= own_end && !own) {
        return Corruption(path, damage,
                          what + ", and the " + Describe(rec, key, at) + " at offset " +
                              std::to_string(at) +
                              ", after the damaged group's end at offset " +
                              std::to_string(own_end) + ", shows it had been synced");
      }
      at = end;
      aligned = true;
      continue;
    }
    if (aligned && p == RecordParse::kBadCrc) {
      if (!end_known) group_end = std::max(group_end, at + rec.total_size);
      at += rec.total_size;
      continue;
    }
    if (aligned && (p == RecordParse::kHeaderIncomplete || p == RecordParse::kPayloadIncomplete) &&
        own_end == std::string_view::npos) {
      cut_short = true;
      break;
    }
    aligned = false;
    ++at;
  }

  // No proof: the damage is the torn last write if a write was lost there.
  if (payload_zeroed || end_lost || cut_short || group_end > size) return absl::OkStatus();
  if (AllZero(data.substr(damage))) return absl::OkStatus();
  // Whether [from, to) holds a byte that no whole record found covers.
  auto uncovered = [&whole](size_t from, size_t to) {
    for (const auto& [b, e] : whole) {
      if (from >= to) return false;
      if (e <= from) continue;
      if (b > from) return true;
      from = e;
    }
    return from < to;
  };
  for (size_t sector = damage / kSectorSize * kSectorSize; sector < group_end;
       sector += kSectorSize) {
    const size_t lo = std::max(group_begin, sector);
    const size_t hi = std::min({sector + kSectorSize, group_end, size});
    if (lo >= hi || lo + 7 >= group_end) continue;  // last_seq's high bytes alone
    if (AllZero(data.substr(lo, hi - lo)) && uncovered(std::max(lo, damage), hi)) {
      return absl::OkStatus();
    }
  }
  return Corruption(path, damage,
                    what + " in the last group, with no sign of a lost write (no sector of it "
                           "zeroed, not cut short by the end of the file): it had been synced");
}

// Notes in r the GTIDs of the events past r->valid_end that still decode:
// what the truncation drops, as far as it is known.
void NoteDroppedEvents(std::string_view data, uint32_t key, SegmentScan* r) {
  ParsedRecord rec;
  for (size_t at = NextWholeRecord(data, r->valid_end, &rec); at != std::string_view::npos;
       at = NextWholeRecord(data, at + rec.total_size, &rec)) {
    v1::Event event;
    if (rec.type != binlog_format::RecordType::kEvent ||
        !DecodeEventPayload(rec.payload, key, at + kRecordHeaderSize, &event)) {
      continue;
    }
    const Gtid gtid = GtidFromProto(event.gtid());
    if (r->dropped_events == 0 || gtid < r->dropped_first) r->dropped_first = gtid;
    if (r->dropped_events == 0 || gtid > r->dropped_last) r->dropped_last = gtid;
    ++r->dropped_events;
  }
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

namespace {

// How a sealed segment ends, against the first seq of the empty segment
// after it, which is the last one listed.
enum class SealedEnd {
  kWhole,         // exactly before it, nothing after: a normal rotation
  kWrittenAfter,  // past it, or bytes after its last group: written to after the index changed
};

// A rotation seals a segment (cut at its last record, synced) before the
// index names the next one, so the sealed segment ends, whole, at the event
// just before the next segment's first seq. Checked when that next segment
// is the last and holds no event yet: if the index naming it went in place
// while the leader still appended to the sealed one (a rename reported as
// refused that happened after all; rename_outcome.h), recovering from the
// empty segment would hand those events' seqs out again (review s39a F3).
// Usually one read of the segment's last record; the whole segment only
// when that is not a group end closing the seq before `next_first_seq`.
absl::StatusOr<SealedEnd> CheckSealedEnd(const fs::path& path, const SegmentState& sealed,
                                         uint64_t next_first_seq, bool unsynced_groups,
                                         const fs::path& next_path) {
  auto file = File::Open(path, O_RDONLY);
  if (!file.ok()) return file.status();
  auto size = file->Size();
  if (!size.ok()) return size.status();
  if (*size == kSegmentHeaderSize && sealed.first_seq == next_first_seq) return SealedEnd::kWhole;
  if (*size >= kSegmentHeaderSize + binlog_format::kGroupEndRecordSize) {
    std::string tail(binlog_format::kGroupEndRecordSize, '\0');
    size_t n = 0;
    if (auto s = file->ReadAt(*size - tail.size(), tail.size(), tail.data(), &n); !s.ok()) return s;
    ParsedRecord rec;
    uint64_t first = 0;
    uint64_t last = 0;
    if (n == tail.size() && ParseRecord(tail, &rec) == RecordParse::kOk &&
        rec.total_size == tail.size() && rec.type == binlog_format::RecordType::kGroupEnd &&
        DecodeGroupEnd(rec.payload, &first, &last) && last + 1 == next_first_seq) {
      return SealedEnd::kWhole;
    }
  }
  // Not the usual end: read it all, as the last segment would be.
  std::string data(*size, '\0');
  size_t n = 0;
  if (auto s = file->ReadAt(0, data.size(), data.data(), &n); !s.ok()) return s;
  data.resize(n);
  auto scan = ScanLastSegment(path, data, sealed.first_seq, unsynced_groups);
  if (!scan.ok()) return scan.status();
  const uint64_t end_seq = sealed.first_seq + scan->events;  // one past its last event
  if (end_seq < next_first_seq) {
    return absl::DataLossError("binlog: sealed segment " + path.string() + " ends at seq " +
                               std::to_string(end_seq - 1) + " but the next segment " +
                               next_path.string() + " starts at seq " +
                               std::to_string(next_first_seq) + ": seqs " +
                               std::to_string(end_seq) + ".." +
                               std::to_string(next_first_seq - 1) + " are missing" +
                               (scan->valid_end == data.size()
                                    ? std::string(" (every group in it is whole)")
                                    : " (its last whole group ends at offset " +
                                          std::to_string(scan->valid_end) + " of its " +
                                          std::to_string(data.size()) +
                                          " bytes: what follows is damaged or was never written)"));
  }
  // Defensive: whole after all, though the quick read of its last record
  // did not say so (a short read); nothing to repair.
  if (end_seq == next_first_seq && scan->valid_end == data.size()) return SealedEnd::kWhole;
  // Past it, or whole but with bytes after (a torn group, or zeros a
  // sealed segment never keeps): recovered as the last segment, which
  // cuts what follows its last group (review s39d M1).
  return SealedEnd::kWrittenAfter;
}

}  // namespace

absl::StatusOr<SegmentScan> ScanLastSegment(const fs::path& path, std::string_view data,
                                           uint64_t first_seq, bool unsynced_groups) {
  SegmentScan r;  // as of the last whole group
  r.valid_end = kSegmentHeaderSize;
  uint32_t key = 0;  // the caller checked the header; the fuzzer's is good too
  uint64_t header_first_seq = 0;
  DecodeSegmentHeader(data, &header_first_seq, nullptr, &key);
  uint64_t group_events = 0;  // events seen since that group's end
  Gtid group_last = r.last;
  uint64_t offset = kSegmentHeaderSize;
  while (offset < data.size()) {
    std::string_view rest = data.substr(offset);
    ParsedRecord rec;
    const RecordParse p = ParseRecord(rest, &rec);
    if (p == RecordParse::kHeaderIncomplete || p == RecordParse::kPayloadIncomplete) {
      break;  // cut short by the end of the file: torn tail
    }
    if (p == RecordParse::kBadHeader || p == RecordParse::kBadCrc) {
      if (unsynced_groups) {
        // Groups were published without a sync (binlog.unsynced): their
        // pages reach the disk in any order, so a later whole group proves
        // nothing about this one. Everything from the damage on goes.
        spdlog::warn("binlog: {} damaged at offset {} where groups were not all synced "
                     "(sync_binlog or sync_relay_log not 1): cutting it there",
                     path.string(), offset);
        break;
      }
      absl::Status torn = JudgeDamage(path, data, key, r.valid_end, offset,
                                      first_seq + r.events, group_events, p);
      if (!torn.ok()) return torn;
      break;
    }
    offset += rec.total_size;
    if (rec.type == binlog_format::RecordType::kGroupEnd) {
      // It must close exactly the events read since the last one.
      const uint64_t want_first = first_seq + r.events;
      uint64_t first = 0;
      uint64_t last = 0;
      if (!DecodeGroupEnd(rec.payload, &first, &last) || group_events == 0 ||
          first != want_first || last != want_first + group_events - 1) {
        return Corruption(
            path, offset - rec.total_size,
            "group end record " +
                (DecodeGroupEnd(rec.payload, &first, &last)
                     ? "names seqs " + std::to_string(first) + ".." + std::to_string(last)
                     : std::string("does not decode")) +
                ", but the group it closes holds " +
                (group_events == 0 ? std::string("no event")
                                   : "seqs " + std::to_string(want_first) + ".." +
                                         std::to_string(want_first + group_events - 1)));
      }
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
    if (!DecodeEventPayload(rec.payload, key, at + kRecordHeaderSize, &event)) {
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
  NoteDroppedEvents(data, key, &r);
  return r;
}

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

absl::StatusOr<std::vector<uint64_t>> ReadBinlogIndex(const fs::path& dir) {
  return ReadIndex(dir);
}

absl::Status WriteBinlogIndex(const fs::path& dir, const std::vector<uint64_t>& numbers,
                              bool* renamed) {
  std::string text;
  for (uint64_t n : numbers) text += SegmentFileName(n) + "\n";
  return WriteFileAtomically(dir / binlog_format::kIndexFileName, text, renamed);
}

absl::StatusOr<File> CreateSegment(const fs::path& dir, uint64_t number, uint64_t first_seq,
                                   uint64_t prev_epoch, uint32_t key) {
  // One place for every way a segment is made (rotation, a clone's new
  // binlog): a larger epoch would read back as another one.
  if (prev_epoch > binlog_format::kMaxEpoch) {
    return absl::InvalidArgumentError("cannot start binlog segment at seq " +
                                      std::to_string(first_seq) + " after epoch " +
                                      std::to_string(prev_epoch) + ": above " +
                                      std::to_string(binlog_format::kMaxEpoch) +
                                      ", the largest a binlog holds");
  }
  if (key == 0) {
    return absl::InvalidArgumentError("binlog segment " + SegmentFileName(number) +
                                      " needs a nonzero key (NewSegmentKey)");
  }
  const fs::path path = dir / SegmentFileName(number);
  // Its outcome does not matter here (either file under the name has a
  // whole header, and the index is written after); asked for so that a
  // refused rename removes the tmp file.
  bool renamed = false;
  if (auto s = WriteFileAtomically(
          path, EncodeSegmentHeader(first_seq, static_cast<uint32_t>(prev_epoch), key), &renamed);
      !s.ok()) {
    return s;
  }
  return File::Open(path, O_RDWR);
}

absl::Status CreateBinlogStartingAfter(const fs::path& dir, const Gtid& before) {
  if (auto s = CreatePrivateDirectory(dir); !s.ok()) return s;
  if (fs::exists(dir / binlog_format::kIndexFileName)) {
    return absl::FailedPreconditionError("binlog " + dir.string() + " already exists");
  }
  auto seg = CreateSegment(dir, 1, before.seq + 1, before.epoch, NewSegmentKey());
  if (!seg.ok()) return seg.status();
  return WriteBinlogIndex(dir, {1});
}

absl::StatusOr<RecoveredBinlog> RecoverBinlogDir(const fs::path& dir, bool unsynced_groups) {
  if (auto s = CreatePrivateDirectory(dir); !s.ok()) return s;
  if (auto s = CompletePendingTruncation(dir); !s.ok()) return s;
  std::error_code ec;

  // Segment files present on disk.
  std::vector<uint64_t> on_disk;
  std::vector<fs::path> unfinished;  // a segment's tmp file a crash left (CreateSegment)
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    uint64_t n = 0;
    const std::string name = entry.path().filename().string();
    if (ParseSegmentFileName(name, &n)) on_disk.push_back(n);
    if (name.ends_with(".tmp") && ParseSegmentFileName(name.substr(0, name.size() - 4), &n)) {
      unfinished.push_back(entry.path());
    }
  }
  if (ec) return absl::InternalError("cannot list " + dir.string() + ": " + ec.message());
  for (const fs::path& tmp : unfinished) {
    // Not fsynced: a power cut brings it back, and the next open removes it.
    std::error_code removed;
    if (fs::remove(tmp, removed)) {
      spdlog::warn("binlog: removed {} (a segment whose creation did not finish)", tmp.string());
    } else if (removed) {
      spdlog::warn("binlog: cannot remove {} (a segment whose creation did not finish): {}; "
                   "creating that segment fails until it is removed",
                   tmp.string(), removed.message());
    }
  }

  RecoveredBinlog out;
  if (!fs::exists(dir / binlog_format::kIndexFileName)) {
    if (!on_disk.empty()) {
      return absl::DataLossError("binlog index " + (dir / binlog_format::kIndexFileName).string() +
                                 " is missing but segment files exist; refusing to guess");
    }
    const uint32_t key = NewSegmentKey();
    auto seg = CreateSegment(dir, 1, 1, 0, key);
    if (!seg.ok()) return seg.status();
    if (auto s = WriteBinlogIndex(dir, {1}); !s.ok()) return s;
    out.segments.push_back({1, 1, kSegmentHeaderSize, 0, key, {}});
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
    uint32_t key = 0;
    if (n < kSegmentHeaderSize || !DecodeSegmentHeader(header, &first_seq, &prev_epoch, &key)) {
      if (std::string why = UnsupportedSegmentVersion(header.substr(0, n)); !why.empty()) {
        return absl::FailedPreconditionError(path.string() + ": " + why + "; refusing to start");
      }
      return Corruption(path, 0, "bad segment header");
    }
    if (!out.segments.empty() && first_seq < out.segments.back().first_seq) {
      return Corruption(path, 0, "segment first seq " + std::to_string(first_seq) +
                                     " goes backwards");
    }
    const bool last = i + 1 == numbers->size();
    if (!last) {
      out.segments.push_back({number, first_seq, *size, prev_epoch, key, {}});
      continue;
    }
    // Only the last segment can have a torn tail: check every record.
    std::string data(*size, '\0');
    if (auto s = file->ReadAt(0, data.size(), data.data(), &n); !s.ok()) return s;
    data.resize(n);
    auto scan = ScanLastSegment(path, data, first_seq, unsynced_groups);
    if (!scan.ok()) return scan.status();
    if (scan->valid_end < data.size()) {
      if (AllZero(std::string_view(data).substr(scan->valid_end))) {
        // Preallocated space (see binlog.h), or a write that never started.
        spdlog::debug("binlog: {} ends at offset {}; dropping {} zero bytes after it",
                      path.string(), scan->valid_end, data.size() - scan->valid_end);
      } else {
        // The dropped bytes were never synced (ScanLastSegment), so never acknowledged.
        const std::string gtids =
            scan->dropped_events == 0
                ? std::string("GTIDs dropped: none (no event of it decodes)")
                : "GTIDs " + scan->dropped_first.ToString() + ".." +
                      scan->dropped_last.ToString() + " dropped";
        spdlog::warn("binlog: torn tail in {} at offset {}: dropped {} bytes; {}", path.string(),
                     scan->valid_end, data.size() - scan->valid_end, gtids);
      }
      if (auto s = file->Truncate(scan->valid_end); !s.ok()) return s;
    }
    // Always, cut or not: what this scan read may exist only in the page
    // cache (a leader killed between its write and its fdatasync), and it
    // becomes visible from here — applied, shipped, ACKed. A power cut must
    // not take it back, or its GTIDs would be given to other events (review
    // s31 F2). One fdatasync per open.
    if (auto s = file->DataSync(); !s.ok()) return s;
    if (scan->events == 0 && !out.segments.empty()) {
      const SegmentState& sealed = out.segments.back();
      const fs::path sealed_path = dir / SegmentFileName(sealed.number);
      auto end = CheckSealedEnd(sealed_path, sealed, first_seq, unsynced_groups, path);
      if (!end.ok()) return end.status();
      if (*end == SealedEnd::kWrittenAfter) {
        // Its events are real (acknowledged, maybe shipped): the empty
        // segment goes, and the sealed one is recovered as the last.
        spdlog::warn("binlog: {} does not end where {} (empty) starts, at seq {}: written to "
                     "after the index named the next segment; dropping {} and recovering {} as "
                     "the last segment",
                     sealed_path.string(), first_seq, path.string(), path.string(),
                     sealed_path.string());
        std::vector<uint64_t> kept(numbers->begin(), numbers->end() - 1);
        if (auto s = WriteBinlogIndex(dir, kept); !s.ok()) return s;
        file->Close();
        fs::remove(path, ec);
        return RecoverBinlogDir(dir, unsynced_groups);
      }
    }
    out.segments.push_back({number, first_seq, scan->valid_end, prev_epoch, key, {}});
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
