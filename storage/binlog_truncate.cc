#include "storage/binlog_truncate.h"

#include <fcntl.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <system_error>

#include "spdlog/spdlog.h"
#include "storage/binlog_format.h"
#include "storage/binlog_segments.h"
#include "storage/file.h"
#include "storage/record.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;
using binlog_format::kRecordHeaderSize;
using binlog_format::kSegmentHeaderSize;
using binlog_format::RecordType;

// What step 4 does; all of it is in the intent file, so that recovery can do
// it again without looking at anything else.
struct Intent {
  uint64_t segment = 0;       // the segment cut; later ones are removed
  uint64_t offset = 0;        // cut here
  bool group_end = false;     // append kGroupEnd(group_first, group_last) at offset
  uint64_t group_first = 0;
  uint64_t group_last = 0;
  // For the log line if recovery finishes it (invariant 4).
  uint64_t bytes = 0;
  Gtid first_removed, last_removed;
  std::string quarantine;
};

std::string EncodeIntent(const Intent& in) {
  std::ostringstream out;
  out << "relaykv-binlog-truncate 1\n"
      << "segment " << in.segment << "\n"
      << "offset " << in.offset << "\n"
      << "group_end " << (in.group_end ? 1 : 0) << " " << in.group_first << " " << in.group_last
      << "\n"
      << "removed " << in.bytes << " " << in.first_removed.epoch << " " << in.first_removed.seq
      << " " << in.last_removed.epoch << " " << in.last_removed.seq << "\n"
      << "quarantine " << in.quarantine << "\n";
  return out.str();
}

bool DecodeIntent(const std::string& text, Intent* in) {
  std::istringstream s(text);
  std::string magic, k1, k2, k3, k4, k5;
  int version = 0, ge = 0;
  s >> magic >> version >> k1 >> in->segment >> k2 >> in->offset >> k3 >> ge >> in->group_first >>
      in->group_last >> k4 >> in->bytes >> in->first_removed.epoch >> in->first_removed.seq >>
      in->last_removed.epoch >> in->last_removed.seq >> k5;
  if (!s || magic != "relaykv-binlog-truncate" || version != 1 || k1 != "segment" ||
      k2 != "offset" || k3 != "group_end" || k4 != "removed" || k5 != "quarantine" ||
      (ge != 0 && ge != 1) || in->segment == 0 || in->offset < kSegmentHeaderSize) {
    return false;
  }
  s.get();  // the space before the path (which may hold spaces)
  std::getline(s, in->quarantine);
  in->group_end = ge == 1;
  return true;
}

fs::path IntentPath(const fs::path& dir) { return dir / binlog_format::kTruncateIntentName; }

// Step 4 (see the header). Idempotent: run again after a crash at any point,
// it produces the same files.
absl::Status CarryOut(const fs::path& dir, const Intent& in) {
  const fs::path seg_path = dir / SegmentFileName(in.segment);
  auto numbers = ReadBinlogIndex(dir);
  if (!numbers.ok()) return numbers.status();
  if (in.segment < numbers->front()) {
    return absl::DataLossError(IntentPath(dir).string() + " cuts " + seg_path.string() +
                               ", which the index no longer lists");
  }
  std::vector<uint64_t> kept;
  for (uint64_t n : *numbers) {
    if (n <= in.segment) kept.push_back(n);
  }
  if (kept.back() != in.segment) {
    return absl::DataLossError(IntentPath(dir).string() + " cuts " + seg_path.string() +
                               ", which the index does not list");
  }
  if (auto s = WriteBinlogIndex(dir, kept); !s.ok()) return s;

  auto file = File::Open(seg_path, O_RDWR);
  if (!file.ok()) return file.status();
  auto size = file->Size();
  if (!size.ok()) return size.status();
  if (*size < in.offset) {
    return absl::DataLossError(seg_path.string() + " has " + std::to_string(*size) +
                               " bytes, less than the truncation offset " +
                               std::to_string(in.offset));
  }
  uint64_t new_size = in.offset;
  if (in.group_end) {
    std::string record;
    AppendGroupEnd(&record, in.group_first, in.group_last);
    if (auto s = file->WriteAt(in.offset, record); !s.ok()) return s;
    new_size += record.size();
  }
  if (auto s = file->Truncate(new_size); !s.ok()) return s;
  if (auto s = file->DataSync(); !s.ok()) return s;
  file->Close();

  // Later segments: listed before the index rewrite, or left on disk.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    uint64_t n = 0;
    if (ParseSegmentFileName(entry.path().filename().string(), &n) && n > in.segment) {
      fs::remove(entry.path(), ec);
      if (ec) return absl::InternalError("cannot remove " + entry.path().string() + ": " +
                                         ec.message());
    }
  }
  if (ec) return absl::InternalError("cannot list " + dir.string() + ": " + ec.message());
  if (auto s = SyncDir(dir); !s.ok()) return s;
  fs::remove(IntentPath(dir), ec);
  if (ec) return absl::InternalError("cannot remove " + IntentPath(dir).string() + ": " +
                                     ec.message());
  return SyncDir(dir);
}

// One record of a segment file, read at `offset`; an event's payload
// unwhitened (the segment's `key`).
struct Record {
  RecordType type{};
  std::string payload;
  uint64_t size = 0;
};
absl::StatusOr<Record> ReadRecordAt(const File& f, uint64_t offset, uint64_t end, uint32_t key) {
  std::string buf(kRecordHeaderSize, '\0');
  size_t n = 0;
  auto bad = [&](const char* what) {
    return absl::DataLossError(f.path().string() + " offset " + std::to_string(offset) + ": " +
                               what);
  };
  if (offset + kRecordHeaderSize > end) return bad("record header past the segment's end");
  if (auto s = f.ReadAt(offset, buf.size(), buf.data(), &n); !s.ok()) return s;
  ParsedRecord rec;
  RecordParse p = ParseRecord(std::string_view(buf.data(), n), &rec);
  if (p != RecordParse::kPayloadIncomplete && p != RecordParse::kOk) return bad("bad record");
  if (offset + rec.total_size > end) return bad("record past the segment's end");
  buf.resize(rec.total_size);
  if (auto s = f.ReadAt(offset, buf.size(), buf.data(), &n); !s.ok()) return s;
  if (ParseRecord(std::string_view(buf.data(), n), &rec) != RecordParse::kOk) {
    return bad("bad record");
  }
  Record out{rec.type, std::string(rec.payload), rec.total_size};
  if (out.type == RecordType::kEvent) {
    Whiten(key, offset + kRecordHeaderSize, out.payload.data(), out.payload.size());
  }
  return out;
}

std::string UtcStamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%04d%02d%02dT%02d%02d%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms));
  return buf;
}

// The plan: where to cut, what goes to quarantine.
struct Plan {
  Intent intent;
  std::string quarantine;  // header + event records + kGroupEnd
  TruncationReport report;
};

absl::StatusOr<Plan> MakePlan(const fs::path& dir, const RecoveredBinlog& rec, const Gtid& end) {
  Plan plan;
  // The segment holding seq end.seq+1 (or, if the binlog ends there, the last).
  size_t k = 0;
  for (size_t i = 0; i < rec.segments.size(); ++i) {
    if (rec.segments[i].first_seq <= end.seq + 1) k = i;
  }
  const SegmentState& seg = rec.segments[k];
  const fs::path seg_path = dir / SegmentFileName(seg.number);
  auto not_in_history = [&](const Gtid& have) {
    return absl::FailedPreconditionError("cannot truncate after " + end.ToString() + ": " +
                                         seg_path.string() + " has " + have.ToString() +
                                         " at that seq; " + end.ToString() +
                                         " is not in this binlog's history");
  };
  auto file = File::Open(seg_path, O_RDONLY);
  if (!file.ok()) return file.status();

  Intent& in = plan.intent;
  in.segment = seg.number;
  if (seg.first_seq == end.seq + 1) {
    // The cut is at the segment's start; the header tells end's epoch.
    const Gtid before{seg.prev_epoch, seg.first_seq - 1};
    if (before != end) return not_in_history(before);
    in.offset = kSegmentHeaderSize;
  }
  // Walk the segment: find end's event, the record after it, its group.
  uint64_t offset = kSegmentHeaderSize;
  uint64_t seq = seg.first_seq;  // the next event's seq
  uint64_t group_first = seg.first_seq;
  bool cut_found = in.offset != 0;
  std::vector<std::string> removed;
  auto add_removed = [&](std::string payload) -> absl::Status {
    v1::Event e;
    if (!e.ParseFromString(payload)) {
      return absl::DataLossError("undecodable event in " + seg_path.string());
    }
    const Gtid g = GtidFromProto(e.gtid());
    if (plan.report.events_removed == 0) plan.report.first_removed = g;
    plan.report.last_removed = g;
    ++plan.report.events_removed;
    removed.push_back(std::move(payload));
    return absl::OkStatus();
  };
  for (size_t i = k; i < rec.segments.size(); ++i) {
    const SegmentState& s = rec.segments[i];
    File f;
    if (i == k) {
      f = std::move(*file);
    } else {
      auto o = File::Open(dir / SegmentFileName(s.number), O_RDONLY);
      if (!o.ok()) return o.status();
      f = *std::move(o);
      offset = kSegmentHeaderSize;
      plan.report.bytes_removed += s.end_offset;
      ++plan.report.segments_removed;
    }
    while (offset < s.end_offset) {
      auto r = ReadRecordAt(f, offset, s.end_offset, s.key);
      if (!r.ok()) return r.status();
      if (r->type == RecordType::kEvent) {
        if (!cut_found && seq == end.seq + 1) {
          cut_found = true;
          in.offset = offset;
          if (group_first <= end.seq) {
            in.group_end = true;
            in.group_first = group_first;
            in.group_last = end.seq;
          }
        }
        if (cut_found) {
          if (auto st = add_removed(std::move(r->payload)); !st.ok()) return st;
        } else if (seq == end.seq) {
          v1::Event e;
          if (!e.ParseFromString(r->payload)) {
            return absl::DataLossError("undecodable event in " + seg_path.string() +
                                       " at offset " + std::to_string(offset));
          }
          const Gtid g = GtidFromProto(e.gtid());
          if (g != end) return not_in_history(g);
        }
        ++seq;
      } else if (r->type == RecordType::kGroupEnd) {
        group_first = seq;
      }
      offset += r->size;
    }
  }
  if (!cut_found) {
    return absl::InternalError("no event " + std::to_string(end.seq + 1) + " found in " +
                               seg_path.string());
  }
  plan.report.bytes_removed += seg.end_offset - in.offset;
  plan.report.segment = SegmentFileName(seg.number);
  plan.report.offset = in.offset;
  const uint64_t first = plan.report.first_removed.seq;
  const uint64_t last = plan.report.last_removed.seq;
  if (first != end.seq + 1 || last != rec.last.seq ||
      plan.report.events_removed != last - first + 1) {
    return absl::DataLossError("binlog events after " + end.ToString() + " are not dense up to " +
                               rec.last.ToString());
  }
  plan.quarantine = EncodeSegmentHeader(first, static_cast<uint32_t>(end.epoch));
  for (const std::string& p : removed) AppendRecord(&plan.quarantine, RecordType::kEvent, p);
  AppendGroupEnd(&plan.quarantine, first, last);
  return plan;
}

// Step 2: the quarantine file, durable with its name.
absl::Status WriteQuarantine(const fs::path& path, const std::string& contents) {
  auto f = File::Open(path, O_WRONLY | O_CREAT | O_EXCL);
  if (!f.ok()) return f.status();
  if (auto s = f->WriteAt(0, contents); !s.ok()) return s;
  if (auto s = f->DataSync(); !s.ok()) return s;
  f->Close();
  return SyncDir(path.parent_path());
}

}  // namespace

absl::StatusOr<TruncationReport> TruncateBinlogAfter(const TruncateRequest& req) {
  const fs::path& dir = req.binlog_dir;
  // As Binlog::Open: after an unsynced run the last segment is cut at its
  // first damage.
  auto rec = RecoverBinlogDir(dir, fs::exists(dir / binlog_format::kUnsyncedMarkerName));
  if (!rec.ok()) return rec.status();
  const Gtid& end = req.end;
  const uint64_t first_available = rec->segments.front().first_seq;
  if (end.seq + 1 < first_available) {
    return absl::OutOfRangeError("cannot truncate after " + end.ToString() +
                                 ": the binlog starts at seq " + std::to_string(first_available) +
                                 " (earlier events were purged)");
  }
  if (end.seq > rec->last.seq || (end.seq == rec->last.seq && end != rec->last)) {
    return absl::FailedPreconditionError("cannot truncate after " + end.ToString() +
                                         ": not in this binlog's history, which ends at " +
                                         rec->last.ToString());
  }
  if (req.applied.seq > end.seq) {
    return absl::FailedPreconditionError(
        "cannot truncate after " + end.ToString() + ": the state machine applied up to " +
        req.applied.ToString() + " and holds effects of the tail");
  }
  if (end == rec->last) return TruncationReport{};

  auto plan = MakePlan(dir, *rec, end);
  if (!plan.ok()) return plan.status();
  TruncationReport& report = plan->report;
  const fs::path qdir = req.quarantine_dir.empty() ? dir.parent_path() : req.quarantine_dir;
  report.quarantine =
      qdir / ("binlog-quarantine.epoch" + std::to_string(report.first_removed.epoch) + "-" +
              std::to_string(report.last_removed.epoch) + ".seq" +
              std::to_string(report.first_removed.seq) + "-" +
              std::to_string(report.last_removed.seq) + "." + UtcStamp());
  if (auto s = WriteQuarantine(report.quarantine, plan->quarantine); !s.ok()) return s;
  plan->intent.bytes = report.bytes_removed;
  plan->intent.first_removed = report.first_removed;
  plan->intent.last_removed = report.last_removed;
  plan->intent.quarantine = report.quarantine.string();
  // The commit point: from here on recovery completes the truncation.
  if (auto s = WriteFileAtomically(IntentPath(dir), EncodeIntent(plan->intent)); !s.ok()) {
    return s;
  }
  // Logged at the commit point too: a crash after CarryOut removed the
  // intent and before the line below would otherwise leave a truncation
  // that no run ever logged (invariant 4).
  spdlog::warn("binlog: truncating {} at offset {}: {} bytes, events {}..{}, copied to {} "
               "(committed: a restart completes it)",
               (dir / report.segment).string(), report.offset, report.bytes_removed,
               report.first_removed.ToString(), report.last_removed.ToString(),
               report.quarantine.string());
  if (auto s = CarryOut(dir, plan->intent); !s.ok()) return s;
  report.truncated = true;
  // Invariant 4: nothing truncated silently. Logged once it is durable.
  spdlog::warn(
      "binlog: truncated {} at offset {}: {} bytes, {} events {}..{} removed ({} later segments "
      "deleted), copied to {}",
      (dir / report.segment).string(), report.offset, report.bytes_removed, report.events_removed,
      report.first_removed.ToString(), report.last_removed.ToString(), report.segments_removed,
      report.quarantine.string());
  return report;
}

absl::Status CompletePendingTruncation(const fs::path& dir) {
  const fs::path path = IntentPath(dir);
  std::error_code ec;
  if (!fs::exists(path, ec)) return absl::OkStatus();
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  Intent in;
  if (!DecodeIntent(*text, &in)) {
    return absl::DataLossError(path.string() + " does not parse; refusing to start (an "
                               "interrupted binlog truncation; its quarantine file holds the tail)");
  }
  if (auto s = CarryOut(dir, in); !s.ok()) return s;
  spdlog::warn(
      "binlog: completed an interrupted truncation: {} cut at offset {}: {} bytes, events {}..{} "
      "removed (later segments deleted), copied to {}",
      (dir / SegmentFileName(in.segment)).string(), in.offset, in.bytes,
      in.first_removed.ToString(), in.last_removed.ToString(), in.quarantine);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Event>> ReadQuarantineFile(const fs::path& path) {
  auto data = ReadFileToString(path);
  if (!data.ok()) return data.status();
  auto bad = [&](uint64_t offset, const std::string& what) {
    return absl::DataLossError(path.string() + " offset " + std::to_string(offset) + ": " + what);
  };
  uint64_t first_seq = 0;
  uint32_t key = 0;  // 0 as written here; honoured all the same
  if (data->size() < kSegmentHeaderSize ||
      !DecodeSegmentHeader(std::string_view(*data).substr(0, kSegmentHeaderSize), &first_seq,
                           nullptr, &key)) {
    return bad(0, "bad header");
  }
  std::vector<v1::Event> events;
  uint64_t offset = kSegmentHeaderSize;
  while (offset < data->size()) {
    ParsedRecord rec;
    if (ParseRecord(std::string_view(*data).substr(offset), &rec) != RecordParse::kOk) {
      return bad(offset, "bad record");
    }
    if (rec.type == RecordType::kEvent) {
      v1::Event e;
      if (!DecodeEventPayload(rec.payload, key, offset + kRecordHeaderSize, &e)) {
        return bad(offset, "undecodable event");
      }
      if (e.gtid().seq() != first_seq + events.size()) return bad(offset, "seq out of order");
      events.push_back(std::move(e));
    }
    offset += rec.total_size;
  }
  return events;
}

}  // namespace relaykv
