#include "storage/record.h"

#include <sys/random.h>

#include <algorithm>
#include <chrono>
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

namespace {

// The header CRC: over [0, 24) in every version, so that a relaykv of an
// older format still reads the version of a newer one and says so (instead
// of calling the header damaged). The key is checked by its use: a wrong
// one leaves no event decodable, which stops the node.
uint32_t HeaderCrc(std::string_view h) {
  return Crc32c(h.substr(0, binlog_format::kHeaderCrcOffset));
}

// splitmix64's finalizer: one 64-bit word of keystream per 8-byte block.
uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

std::string EncodeSegmentHeader(uint64_t first_seq, uint32_t prev_epoch, uint32_t key) {
  std::string h(binlog_format::kSegmentHeaderSize, '\0');
  std::memcpy(h.data(), binlog_format::kMagic.data(), binlog_format::kMagic.size());
  PutFixed32(h.data() + 8, binlog_format::kVersion);
  PutFixed32(h.data() + 12, prev_epoch);
  PutFixed64(h.data() + 16, first_seq);
  PutFixed32(h.data() + binlog_format::kKeyOffset, key);
  PutFixed32(h.data() + binlog_format::kHeaderCrcOffset, HeaderCrc(h));
  return h;
}

bool DecodeSegmentHeader(std::string_view h, uint64_t* first_seq, uint32_t* prev_epoch,
                         uint32_t* key) {
  if (h.size() < binlog_format::kSegmentHeaderSize) return false;
  if (h.substr(0, binlog_format::kMagic.size()) != binlog_format::kMagic) return false;
  const uint32_t version = GetFixed32(h.data() + 8);
  if (version < binlog_format::kOldestReadableVersion || version > binlog_format::kVersion) {
    return false;
  }
  if (GetFixed32(h.data() + binlog_format::kHeaderCrcOffset) != HeaderCrc(h)) return false;
  *first_seq = GetFixed64(h.data() + 16);
  if (prev_epoch != nullptr) *prev_epoch = GetFixed32(h.data() + 12);
  if (key != nullptr) *key = version >= 3 ? GetFixed32(h.data() + binlog_format::kKeyOffset) : 0;
  return true;
}

std::string UnsupportedSegmentVersion(std::string_view h) {
  if (h.size() < binlog_format::kSegmentHeaderSize) return "";
  if (h.substr(0, binlog_format::kMagic.size()) != binlog_format::kMagic) return "";
  const uint32_t version = GetFixed32(h.data() + 8);
  if (version >= binlog_format::kOldestReadableVersion && version <= binlog_format::kVersion) {
    return "";
  }
  // The CRC covers the version: a good one means the field was written so.
  if (GetFixed32(h.data() + binlog_format::kHeaderCrcOffset) != HeaderCrc(h)) return "";
  std::string why = "binlog format version " + std::to_string(version) +
                    " is not supported (this relaykv reads versions " +
                    std::to_string(binlog_format::kOldestReadableVersion) + " to " +
                    std::to_string(binlog_format::kVersion) + ")";
  if (version < binlog_format::kOldestReadableVersion) {
    why += ": written by an older relaykv, which numbered mutation ops differently; it "
           "cannot be read in place";
  }
  return why;
}

uint32_t NewSegmentKey() {
  // getrandom(2), not std::random_device (which throws, e.g. out of file
  // descriptors, in the middle of a rotation). Without it, the clock: a
  // key only has to be unknown to clients, not secret from the host.
  uint32_t key = 0;
  for (uint64_t attempt = 0; key == 0; ++attempt) {
    if (::getrandom(&key, sizeof(key), 0) != static_cast<ssize_t>(sizeof(key))) {
      key = static_cast<uint32_t>(
          Mix(static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
              attempt));
    }
  }
  return key;
}

void Whiten(uint32_t key, uint64_t offset, char* data, size_t n) {
  if (key == 0) return;
  const uint64_t seed = Mix(key);
  size_t i = 0;
  // Byte j of the 8-byte block at offset b*8 is byte j (little-endian) of
  // Mix(seed ^ b): bytes up to the first block boundary, whole blocks,
  // then the rest.
  auto bytes = [&](size_t until) {
    for (; i < until; ++i) {
      const uint64_t at = offset + i;
      const uint64_t word = Mix(seed ^ (at >> 3));
      data[i] = static_cast<char>(data[i] ^ static_cast<char>(word >> (8 * (at & 7))));
    }
  };
  bytes(std::min(n, static_cast<size_t>((8 - (offset & 7)) & 7)));
  for (; i + 8 <= n; i += 8) {
    uint64_t block;
    std::memcpy(&block, data + i, 8);
    block ^= Mix(seed ^ ((offset + i) >> 3));  // little-endian: byte j is bits 8j..8j+7
    std::memcpy(data + i, &block, 8);
  }
  bytes(n);
}

namespace {

// Writes the header of the record whose payload, as stored, is at
// rec + kRecordHeaderSize.
void PutRecordHeader(char* rec, binlog_format::RecordType type, std::string_view stored) {
  char type_byte = static_cast<char>(type);
  PutFixed32(rec, Crc32c(std::string_view(&type_byte, 1), stored));
  PutFixed32(rec + 4, static_cast<uint32_t>(stored.size()));
  rec[8] = type_byte;
  PutFixed32(rec + 9, Crc32c(std::string_view(rec, binlog_format::kHeaderCrcCovered)));
}

// Appends the record with its payload stored whitened for `key` (0: as it
// is), dst's first byte lying at `dst_offset` in the segment.
void AppendStored(std::string* dst, binlog_format::RecordType type, std::string_view payload,
                  uint32_t key, uint64_t dst_offset) {
  const size_t at = dst->size();
  dst->resize(at + kRecordHeaderSize);
  dst->append(payload);
  char* stored = dst->data() + at + kRecordHeaderSize;
  Whiten(key, dst_offset + at + kRecordHeaderSize, stored, payload.size());
  PutRecordHeader(dst->data() + at, type, std::string_view(stored, payload.size()));
}

}  // namespace

void AppendRecord(std::string* dst, binlog_format::RecordType type, std::string_view payload) {
  AppendStored(dst, type, payload, /*key=*/0, 0);
}

void AppendEventRecord(std::string* dst, std::string_view event, uint32_t key,
                       uint64_t dst_offset) {
  AppendStored(dst, binlog_format::RecordType::kEvent, event, key, dst_offset);
}

bool DecodeEventPayload(std::string_view stored, uint32_t key, uint64_t offset,
                        v1::Event* event) {
  if (key == 0) return event->ParseFromArray(stored.data(), static_cast<int>(stored.size()));
  std::string plain(stored);
  Whiten(key, offset, plain.data(), plain.size());
  return event->ParseFromString(plain);
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
