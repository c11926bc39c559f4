// Encoding and decoding of binlog segment headers and records, exactly as
// drawn in binlog_format.h. Pure functions on byte buffers; no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "storage/binlog_format.h"
#include "storage/crc32c.h"

namespace relaykv {


// Returns the 32-byte header of a segment whose first event has `first_seq`
// and whose preceding event has epoch `prev_epoch`.
std::string EncodeSegmentHeader(uint64_t first_seq, uint32_t prev_epoch = 0);
// Parses a segment header; false if the magic, version or CRC is wrong.
bool DecodeSegmentHeader(std::string_view header, uint64_t* first_seq,
                         uint32_t* prev_epoch = nullptr);
// For a header DecodeSegmentHeader refused: when it is whole, its magic and
// CRC good and only its version differs from kVersion (a segment written by
// a relaykv of another format, not damage), says so naming both versions;
// else "".
std::string UnsupportedSegmentVersion(std::string_view header);

// Appends one framed record (crc, length, type, payload) to *dst.
void AppendRecord(std::string* dst, binlog_format::RecordType type, std::string_view payload);
// Appends the kGroupEnd record closing a group whose events have seqs
// [first_seq, last_seq] (kGroupEndRecordSize bytes).
void AppendGroupEnd(std::string* dst, uint64_t first_seq, uint64_t last_seq);
// Decodes a kGroupEnd payload; false unless it is kGroupEndPayloadSize bytes
// with first_seq <= last_seq.
bool DecodeGroupEnd(std::string_view payload, uint64_t* first_seq, uint64_t* last_seq);

enum class RecordParse {
  kOk,                 // a whole record, both CRCs good
  kHeaderIncomplete,   // fewer than kRecordHeaderSize bytes left
  kBadHeader,          // hcrc mismatch, or length above kMaxPayloadSize
  kPayloadIncomplete,  // good header; payload runs past the end of `buf`
  kBadCrc,             // whole record, payload CRC mismatch
};

struct ParsedRecord {
  binlog_format::RecordType type{};
  std::string_view payload;  // points into the parsed buffer
  size_t total_size = 0;     // header + payload
};

// Parses the record at the start of `buf` (which extends to the end of the
// bytes available). On kPayloadIncomplete and kBadCrc, out->total_size is
// the size the (trusted) header claims.
RecordParse ParseRecord(std::string_view buf, ParsedRecord* out);

}  // namespace relaykv
