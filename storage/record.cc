#include "storage/record.h"

#include <cstring>
#include <string>

#include "storage/crc32c.h"

namespace relaykv {
namespace {

using binlog_format::kRecordHeaderSize;

void PutFixed32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void PutFixed64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t GetFixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}
uint64_t GetFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

}  // namespace

std::string EncodeSegmentHeader(uint64_t first_seq, uint32_t prev_epoch) {
  std::string h(binlog_format::kSegmentHeaderSize, '\0');
  std::memcpy(h.data(), binlog_format::kMagic.data(), binlog_format::kMagic.size());
  PutFixed32(h.data() + 8, binlog_format::kVersion);
  PutFixed32(h.data() + 12, prev_epoch);
  PutFixed64(h.data() + 16, first_seq);
  PutFixed32(h.data() + binlog_format::kHeaderCrcOffset,
             Crc32c(std::string_view(h.data(), binlog_format::kHeaderCrcOffset)));
  return h;
}

bool DecodeSegmentHeader(std::string_view h, uint64_t* first_seq, uint32_t* prev_epoch) {
  if (h.size() < binlog_format::kSegmentHeaderSize) return false;
  if (h.substr(0, binlog_format::kMagic.size()) != binlog_format::kMagic) return false;
  if (GetFixed32(h.data() + 8) != binlog_format::kVersion) return false;
  uint32_t crc = GetFixed32(h.data() + binlog_format::kHeaderCrcOffset);
  if (crc != Crc32c(h.substr(0, binlog_format::kHeaderCrcOffset))) return false;
  *first_seq = GetFixed64(h.data() + 16);
  if (prev_epoch != nullptr) *prev_epoch = GetFixed32(h.data() + 12);
  return true;
}

std::string UnsupportedSegmentVersion(std::string_view h) {
  if (h.size() < binlog_format::kSegmentHeaderSize) return "";
  if (h.substr(0, binlog_format::kMagic.size()) != binlog_format::kMagic) return "";
  // The CRC covers the version: a good one means the field was written so.
  if (GetFixed32(h.data() + binlog_format::kHeaderCrcOffset) !=
      Crc32c(h.substr(0, binlog_format::kHeaderCrcOffset))) {
    return "";
  }
  const uint32_t version = GetFixed32(h.data() + 8);
  if (version == binlog_format::kVersion) return "";
  std::string why = "binlog format version " + std::to_string(version) +
                    " is not supported (this relaykv reads version " +
                    std::to_string(binlog_format::kVersion) + ")";
  if (version < binlog_format::kVersion) {
    why += ": written by an older relaykv, which numbered mutation ops differently; it "
           "cannot be read in place";
  }
  return why;
}

void AppendRecord(std::string* dst, binlog_format::RecordType type, std::string_view payload) {
  char header[kRecordHeaderSize];
  char type_byte = static_cast<char>(type);
  const uint32_t crc = Crc32c(std::string_view(&type_byte, 1), payload);
  PutFixed32(header, crc);
  PutFixed32(header + 4, static_cast<uint32_t>(payload.size()));
  header[8] = type_byte;
  PutFixed32(header + 9, Crc32c(std::string_view(header, binlog_format::kHeaderCrcCovered)));
  dst->append(header, kRecordHeaderSize);
  dst->append(payload);
}

void AppendGroupEnd(std::string* dst, uint64_t first_seq, uint64_t last_seq) {
  char payload[binlog_format::kGroupEndPayloadSize];
  PutFixed64(payload, first_seq);
  PutFixed64(payload + 8, last_seq);
  AppendRecord(dst, binlog_format::RecordType::kGroupEnd, std::string_view(payload, sizeof(payload)));
}

bool DecodeGroupEnd(std::string_view payload, uint64_t* first_seq, uint64_t* last_seq) {
  if (payload.size() != binlog_format::kGroupEndPayloadSize) return false;
  const uint64_t first = GetFixed64(payload.data());
  const uint64_t last = GetFixed64(payload.data() + 8);
  if (first > last) return false;
  *first_seq = first;
  *last_seq = last;
  return true;
}

RecordParse ParseRecord(std::string_view buf, ParsedRecord* out) {
  if (buf.size() < kRecordHeaderSize) return RecordParse::kHeaderIncomplete;
  if (GetFixed32(buf.data() + 9) != Crc32c(buf.substr(0, binlog_format::kHeaderCrcCovered))) {
    return RecordParse::kBadHeader;
  }
  uint32_t crc = GetFixed32(buf.data());
  uint32_t length = GetFixed32(buf.data() + 4);
  if (length > binlog_format::kMaxPayloadSize) return RecordParse::kBadHeader;
  out->total_size = kRecordHeaderSize + length;
  if (buf.size() < out->total_size) return RecordParse::kPayloadIncomplete;
  if (Crc32c(buf.substr(8, 1), buf.substr(kRecordHeaderSize, length)) != crc) {
    return RecordParse::kBadCrc;
  }
  out->type = static_cast<binlog_format::RecordType>(static_cast<uint8_t>(buf[8]));
  out->payload = buf.substr(kRecordHeaderSize, length);
  return RecordParse::kOk;
}

}  // namespace relaykv
