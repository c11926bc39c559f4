// Encoding and decoding of binlog segment headers and records, exactly as
// drawn in binlog_format.h. Pure functions on byte buffers; no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proto/event.pb.h"
#include "storage/binlog_format.h"
#include "storage/crc32c.h"

namespace relaykv {


// Returns the 32-byte header (version kVersion) of a segment whose first
// event has `first_seq`, whose preceding event has epoch `prev_epoch`, and
// whose event payloads are whitened with `key` (0: stored as they are).
std::string EncodeSegmentHeader(uint64_t first_seq, uint32_t prev_epoch = 0, uint32_t key = 0);
// Parses a segment header of a version this relaykv reads (a version 2
// header has key 0); false if the magic, version or CRC is wrong.
bool DecodeSegmentHeader(std::string_view header, uint64_t* first_seq,
                         uint32_t* prev_epoch = nullptr, uint32_t* key = nullptr);
// For a header DecodeSegmentHeader refused: when it is whole, its magic and
// CRC good and only its version is not one this relaykv reads (a segment
// written by a relaykv of another format, not damage), says so naming the
// versions; else "".
std::string UnsupportedSegmentVersion(std::string_view header);

// A random nonzero key for a new segment.
uint32_t NewSegmentKey();
// XORs data[0, n), which lies at `offset` in a segment whose key is `key`,
// with that segment's keystream (binlog_format.h): whitens stored-as-is
// bytes and restores whitened ones. Nothing for key 0.
void Whiten(uint32_t key, uint64_t offset, char* data, size_t n);
// Appends a kEvent record holding `event` (serialized) whitened for a
// segment with `key`, in which dst's first byte lies at `dst_offset`.
void AppendEventRecord(std::string* dst, std::string_view event, uint32_t key,
                       uint64_t dst_offset);
// Decodes the payload of a kEvent record, `stored` as on disk, that lies
// at `offset` in a segment with `key`; false if it does not decode.
bool DecodeEventPayload(std::string_view stored, uint32_t key, uint64_t offset,
                        v1::Event* event);

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
