#include "storage/binlog_reader.h"

#include <fcntl.h>

#include <algorithm>

#include "storage/binlog.h"
#include "storage/binlog_format.h"
#include "storage/binlog_segments.h"
#include "storage/record.h"

namespace relaykv {
namespace {

using binlog_format::kRecordHeaderSize;
using binlog_format::kSegmentHeaderSize;

// Reads ahead this much, so small records don't cost a syscall each.
constexpr size_t kReadChunk = 256 * 1024;

}  // namespace

BinlogReader::BinlogReader(Binlog* binlog, uint64_t segment_number, File file, uint64_t offset,
                           uint64_t next_seq)
    : binlog_(binlog),
      segment_number_(segment_number),
      file_(std::move(file)),
      offset_(offset),
      next_seq_(next_seq) {}

absl::Status BinlogReader::OpenSegment(uint64_t number) {
  const auto path = binlog_->dir() / SegmentFileName(number);
  auto file = File::Open(path, O_RDONLY);
  if (!file.ok()) {
    if (absl::IsNotFound(file.status())) {
      return absl::OutOfRangeError("binlog segment " + path.string() +
                                   " was purged before this reader got to it");
    }
    return file.status();
  }
  std::string header(kSegmentHeaderSize, '\0');
  size_t n = 0;
  if (auto s = file->ReadAt(0, header.size(), header.data(), &n); !s.ok()) return s;
  uint64_t first_seq = 0;
  uint32_t key = 0;
  if (n < kSegmentHeaderSize || !DecodeSegmentHeader(header, &first_seq, nullptr, &key)) {
    return absl::DataLossError("binlog corrupt: " + path.string() + " at offset 0: bad segment header");
  }
  if (next_seq_ != 0 && first_seq != next_seq_) {
    return absl::DataLossError("binlog corrupt: " + path.string() + " starts at seq " +
                               std::to_string(first_seq) + ", expected " + std::to_string(next_seq_));
  }
  segment_number_ = number;
  key_ = key;
  file_ = *std::move(file);
  offset_ = kSegmentHeaderSize;
  next_seq_ = first_seq;
  buf_.clear();
  buf_offset_ = offset_;
  noted_offset_ = offset_;
  return absl::OkStatus();
}

void BinlogReader::Seek(uint64_t offset, uint64_t seq) {
  offset_ = offset;
  next_seq_ = seq;
  buf_.clear();
  buf_offset_ = offset_;
  noted_offset_ = offset_;
}

absl::StatusOr<bool> BinlogReader::Fill(size_t n, uint64_t limit) {
  if (offset_ >= buf_offset_ && offset_ + n <= buf_offset_ + buf_.size()) return true;
  if (offset_ + n > limit) return false;
  size_t want = static_cast<size_t>(std::min<uint64_t>(limit - offset_, std::max(n, kReadChunk)));
  buf_.resize(want);
  size_t got = 0;
  if (auto s = file_.ReadAt(offset_, want, buf_.data(), &got); !s.ok()) return s;
  buf_.resize(got);
  buf_offset_ = offset_;
  return got >= n;
}

absl::StatusOr<std::optional<BinlogRecord>> BinlogReader::Next() {
  const auto path = [&] { return (binlog_->dir() / SegmentFileName(segment_number_)).string(); };
  for (;;) {
    Binlog::ReadLimit limit = binlog_->LimitFor(segment_number_);
    if (limit.purged) {
      // Purge removes only sealed segments; the open file is still whole.
      auto size = file_.Size();
      if (!size.ok()) return size.status();
      limit.end_offset = *size;
      limit.has_next = true;
    }
    if (offset_ >= limit.end_offset) {
      if (!limit.has_next) return std::nullopt;
      if (auto s = OpenSegment(segment_number_ + 1); !s.ok()) return s;
      continue;
    }
    // [offset_, end_offset) holds whole visible records only.
    auto have = Fill(kRecordHeaderSize, limit.end_offset);
    if (!have.ok()) return have.status();
    ParsedRecord rec;
    std::string_view view(buf_.data() + (offset_ - buf_offset_),
                          buf_.size() - (offset_ - buf_offset_));
    RecordParse p = *have ? ParseRecord(view, &rec) : RecordParse::kHeaderIncomplete;
    if (p == RecordParse::kPayloadIncomplete) {
      have = Fill(rec.total_size, limit.end_offset);
      if (!have.ok()) return have.status();
      view = std::string_view(buf_.data() + (offset_ - buf_offset_),
                              buf_.size() - (offset_ - buf_offset_));
      p = *have ? ParseRecord(view, &rec) : RecordParse::kPayloadIncomplete;
    }
    if (p != RecordParse::kOk) {
      return absl::DataLossError("binlog corrupt: " + path() + " at offset " +
                                 std::to_string(offset_) + ": bad or cut record inside the visible log");
    }
    if (rec.type == binlog_format::RecordType::kGroupEnd) {
      offset_ += rec.total_size;
      continue;
    }
    BinlogRecord out;
    if (rec.type == binlog_format::RecordType::kEvent) {
      out.payload.assign(rec.payload);
      Whiten(key_, offset_ + kRecordHeaderSize, out.payload.data(), out.payload.size());
    }
    if (rec.type != binlog_format::RecordType::kEvent || !out.event.ParseFromString(out.payload)) {
      return absl::DataLossError("binlog corrupt: " + path() + " at offset " +
                                 std::to_string(offset_) + ": record is not a decodable event");
    }
    if (out.event.gtid().seq() != next_seq_) {
      return absl::DataLossError("binlog corrupt: " + path() + " at offset " +
                                 std::to_string(offset_) + ": event seq " +
                                 std::to_string(out.event.gtid().seq()) + ", expected " +
                                 std::to_string(next_seq_));
    }
    offset_ += rec.total_size;
    ++next_seq_;
    if (offset_ >= noted_offset_ + Binlog::kSeekStride) {
      binlog_->NoteSeekPoint(segment_number_, next_seq_, offset_);
      noted_offset_ = offset_;
    }
    return out;
  }
}

absl::StatusOr<std::optional<BinlogRecord>> BinlogReader::NextWait(
    std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto r = Next();
    if (!r.ok() || r->has_value()) return r;
    uint64_t visible = binlog_->WaitForVisibleAfter(next_seq_ - 1, deadline);
    if (visible < next_seq_) {
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      return absl::CancelledError("binlog " + binlog_->dir().string() + " was closed");
    }
  }
}

absl::Status BinlogReader::SkipTo(uint64_t from_seq) {
  while (next_seq_ < from_seq) {
    auto r = Next();
    if (!r.ok()) return r.status();
    if (!r->has_value()) {
      return absl::InternalError("binlog seq " + std::to_string(from_seq) + " is not visible yet");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<v1::Event>> ReadEventAt(Binlog& binlog, uint64_t seq) {
  if (seq == 0 || seq < binlog.FirstAvailableSeq()) return std::nullopt;
  auto reader = binlog.NewReader(seq);
  // OUT_OF_RANGE: purged meanwhile, or beyond the end.
  if (!reader.ok()) {
    if (absl::IsOutOfRange(reader.status())) return std::nullopt;
    return reader.status();
  }
  auto rec = (*reader)->Next();
  if (!rec.ok()) {
    if (absl::IsOutOfRange(rec.status())) return std::nullopt;
    return rec.status();
  }
  if (!rec->has_value()) return std::nullopt;
  return std::move((*rec)->event);
}

}  // namespace relaykv
