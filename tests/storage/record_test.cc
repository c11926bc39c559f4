// Tests storage/record.cc and storage/crc32c.cc: the byte layout drawn in
// binlog_format.h, and how ParseRecord tells a cut record (torn tail) from a
// damaged one (corruption).
#include "storage/record.h"

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "storage/binlog_format.h"
#include "storage/crc32c.h"

namespace relaykv {
namespace {

using binlog_format::kHeaderCrcCovered;
using binlog_format::kHeaderCrcOffset;
using binlog_format::kRecordHeaderSize;
using binlog_format::kSegmentHeaderSize;
using binlog_format::RecordType;

uint32_t Fixed32At(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<uint8_t>(s[at + i])} << (8 * i);
  return v;
}

void PutFixed32At(std::string* s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*s)[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

std::string Record(std::string_view payload) {
  std::string buf;
  AppendRecord(&buf, RecordType::kEvent, payload);
  return buf;
}

// Recomputes a segment header's CRC so that only the field a test damaged
// is wrong.
void ResealSegmentHeader(std::string* h) {
  PutFixed32At(h, kHeaderCrcOffset, Crc32c(std::string_view(*h).substr(0, kHeaderCrcOffset)));
}

TEST(Crc32cTest, MatchesTheKnownVectors) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);  // RFC 3720 B.4
  EXPECT_EQ(Crc32c(""), 0u);
}

TEST(Crc32cTest, TwoPartsGiveTheCrcOfTheirConcatenation) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data.push_back(static_cast<char>(i * 31));
  for (size_t cut : {0u, 1u, 7u, 8u, 9u, 15u, 16u, 500u, 999u, 1000u}) {
    EXPECT_EQ(Crc32c(std::string_view(data).substr(0, cut), std::string_view(data).substr(cut)),
              Crc32c(data))
        << "cut at " << cut;
  }
}

TEST(SegmentHeaderTest, RoundTripsFirstSeqAndPrevEpoch) {
  const std::pair<uint64_t, uint32_t> cases[] = {{1, 0}, {42, 7}, {~0ull, ~0u}, {1ull << 40, 1}};
  for (auto [first_seq, prev_epoch] : cases) {
    const std::string h = EncodeSegmentHeader(first_seq, prev_epoch);
    ASSERT_EQ(h.size(), kSegmentHeaderSize);
    EXPECT_EQ(h.substr(0, 8), binlog_format::kMagic);
    EXPECT_EQ(Fixed32At(h, 8), binlog_format::kVersion);
    EXPECT_EQ(Fixed32At(h, 28), 0u) << "key 0: payloads stored as they are";
    uint64_t got_seq = 0;
    uint32_t got_epoch = 0;
    ASSERT_TRUE(DecodeSegmentHeader(h, &got_seq, &got_epoch));
    EXPECT_EQ(got_seq, first_seq);
    EXPECT_EQ(got_epoch, prev_epoch);
  }
}

TEST(SegmentHeaderTest, BadMagicIsRejectedEvenWithAGoodCrc) {
  std::string h = EncodeSegmentHeader(5, 1);
  h[0] = 'X';
  ResealSegmentHeader(&h);
  uint64_t first_seq = 0;
  EXPECT_FALSE(DecodeSegmentHeader(h, &first_seq));
}

TEST(SegmentHeaderTest, UnknownVersionIsRejectedEvenWithAGoodCrc) {
  std::string h = EncodeSegmentHeader(5, 1);
  PutFixed32At(&h, 8, binlog_format::kVersion + 1);
  ResealSegmentHeader(&h);
  uint64_t first_seq = 0;
  EXPECT_FALSE(DecodeSegmentHeader(h, &first_seq));
}

TEST(SegmentHeaderTest, KeyRoundTripsAndAVersion2HeaderReadsWithKeyZero) {
  const std::string h = EncodeSegmentHeader(42, 7, 0xdeadbeef);
  uint64_t first_seq = 0;
  uint32_t prev_epoch = 0;
  uint32_t key = 0;
  ASSERT_TRUE(DecodeSegmentHeader(h, &first_seq, &prev_epoch, &key));
  EXPECT_EQ(key, 0xdeadbeefu);
  // Version 2: the key's place was zero padding, outside the CRC.
  std::string v2 = EncodeSegmentHeader(42, 7);
  PutFixed32At(&v2, 8, 2);
  PutFixed32At(&v2, kHeaderCrcOffset, Crc32c(std::string_view(v2).substr(0, kHeaderCrcOffset)));
  key = 1;
  ASSERT_TRUE(DecodeSegmentHeader(v2, &first_seq, &prev_epoch, &key));
  EXPECT_EQ(first_seq, 42u);
  EXPECT_EQ(prev_epoch, 7u);
  EXPECT_EQ(key, 0u);
  EXPECT_EQ(UnsupportedSegmentVersion(v2), "");
  PutFixed32At(&v2, 8, 1);
  PutFixed32At(&v2, kHeaderCrcOffset, Crc32c(std::string_view(v2).substr(0, kHeaderCrcOffset)));
  EXPECT_FALSE(DecodeSegmentHeader(v2, &first_seq));
  EXPECT_NE(UnsupportedSegmentVersion(v2).find("version 1 is not supported"), std::string::npos)
      << UnsupportedSegmentVersion(v2);
}

// Review s32 W2: a relaykv of format 2 checks the CRC over the first 24
// bytes before it reads the version: a format 3 header must pass that, so
// the older binary says "version 3 is not supported", not "damaged".
TEST(SegmentHeaderTest, Format3HeaderKeepsTheCrcAnOlderRelaykvChecks) {
  const std::string h = EncodeSegmentHeader(42, 7, 0xdeadbeef);
  EXPECT_EQ(Fixed32At(h, kHeaderCrcOffset), Crc32c(std::string_view(h).substr(0, kHeaderCrcOffset)));
  std::string newer = h;
  PutFixed32At(&newer, 8, binlog_format::kVersion + 1);
  ResealSegmentHeader(&newer);
  EXPECT_NE(UnsupportedSegmentVersion(newer).find("is not supported"), std::string::npos);
}

TEST(SegmentHeaderTest, AnyFlippedByteFailsTheCrc) {
  const std::string h = EncodeSegmentHeader(42, 7, 12345);
  for (size_t i = 0; i < kHeaderCrcOffset + 4; ++i) {
    std::string bad = h;
    bad[i] ^= 0x01;
    uint64_t first_seq = 0;
    EXPECT_FALSE(DecodeSegmentHeader(bad, &first_seq)) << "flipped byte " << i;
  }
}

TEST(SegmentHeaderTest, ShortHeaderIsRejected) {
  const std::string h = EncodeSegmentHeader(42, 7);
  uint64_t first_seq = 0;
  for (size_t n = 0; n < kSegmentHeaderSize; ++n) {
    EXPECT_FALSE(DecodeSegmentHeader(h.substr(0, n), &first_seq)) << n << " bytes";
  }
}

// Review s31 F1/F7: what a client writes must not reach the disk as it is.
TEST(RecordTest, EventPayloadIsStoredWhitenedAndDecodesBack) {
  v1::Event e;
  e.mutable_gtid()->set_epoch(1);
  e.mutable_gtid()->set_seq(9);
  auto* m = e.add_mutations();
  m->set_op(v1::Mutation::PUT);
  m->set_key("zeros");
  m->set_value(std::string(2048, '\0'));
  const std::string plain = e.SerializeAsString();
  std::string buf(100, 'x');  // the record lands at offset 100 of its segment
  AppendEventRecord(&buf, plain, /*key=*/77, /*dst_offset=*/0);
  ParsedRecord rec;
  ASSERT_EQ(ParseRecord(std::string_view(buf).substr(100), &rec), RecordParse::kOk);
  EXPECT_EQ(rec.payload.size(), plain.size());
  EXPECT_EQ(rec.payload.find(std::string(16, '\0')), std::string_view::npos)
      << "a run of the value's zeros reached the disk";
  v1::Event back;
  ASSERT_TRUE(DecodeEventPayload(rec.payload, 77, 100 + kRecordHeaderSize, &back));
  EXPECT_EQ(back.SerializeAsString(), plain);
  EXPECT_FALSE(DecodeEventPayload(rec.payload, 78, 100 + kRecordHeaderSize, &back) &&
               back.SerializeAsString() == plain)
      << "another key restores something else";
  // Key 0 stores as it is (version 2 segments, quarantine files).
  std::string as_is;
  AppendEventRecord(&as_is, plain, 0, 0);
  EXPECT_EQ(as_is, Record(plain));
}

// The keystream is part of the format: segments written by every earlier
// build must still read (review s32 W4). Bytes 5..20 of a segment with key
// 0x12345678, whitening zeros.
TEST(RecordTest, WhitenKeystreamIsPinned) {
  std::string zeros(16, '\0');
  Whiten(0x12345678, 5, zeros.data(), zeros.size());
  EXPECT_EQ(zeros, std::string("\x70\x81\x75\xf7\xc5\x71\xd9\x0d\xbe\x94\x4c\xed\xd9\x43\xa6\xd1",
                               16));
  std::string at0(16, '\0');
  std::string at8(16, '\0');
  Whiten(0x12345678, 0, at0.data(), at0.size());
  Whiten(0x12345678, 8, at8.data(), at8.size());
  EXPECT_NE(at0, at8) << "the keystream depends on the offset";
  EXPECT_EQ(at0.substr(8), at8.substr(0, 8));
}

TEST(RecordTest, WhitenUndoesItselfFromAnyOffset) {
  std::string data(100, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i);
  const std::string original = data;
  Whiten(5, 1003, data.data(), data.size());
  EXPECT_NE(data, original);
  // Restored in two pieces: each byte's keystream depends on its offset only.
  Whiten(5, 1003, data.data(), 37);
  Whiten(5, 1003 + 37, data.data() + 37, data.size() - 37);
  EXPECT_EQ(data, original);
  std::string unchanged = original;
  Whiten(0, 1003, unchanged.data(), unchanged.size());
  EXPECT_EQ(unchanged, original) << "key 0 whitens nothing";
}

TEST(RecordTest, LayoutIsAsDrawnInTheFormatHeader) {
  const std::string payload("pay\0load", 8);
  const std::string r = Record(payload);
  ASSERT_EQ(r.size(), kRecordHeaderSize + payload.size());
  const char type = static_cast<char>(RecordType::kEvent);
  EXPECT_EQ(Fixed32At(r, 0), Crc32c(std::string_view(&type, 1), payload)) << "crc: type+payload";
  EXPECT_EQ(Fixed32At(r, 4), payload.size()) << "length, little-endian";
  EXPECT_EQ(r[8], type);
  EXPECT_EQ(Fixed32At(r, 9), Crc32c(std::string_view(r).substr(0, kHeaderCrcCovered)))
      << "hcrc: crc, length, type";
  EXPECT_EQ(r.substr(kRecordHeaderSize), payload);
}

TEST(RecordTest, ConsecutiveRecordsRoundTrip) {
  const std::vector<std::string> payloads = {"hello", "", std::string(1, '\0'),
                                             std::string(70000, 'x'), std::string("a\0b\xff", 4)};
  std::string buf;
  for (const auto& p : payloads) AppendRecord(&buf, RecordType::kEvent, p);
  buf += "trailing bytes belong to the next record";
  std::string_view rest = buf;
  for (const auto& p : payloads) {
    ParsedRecord r;
    ASSERT_EQ(ParseRecord(rest, &r), RecordParse::kOk);
    EXPECT_EQ(r.type, RecordType::kEvent);
    EXPECT_EQ(r.payload, p);
    EXPECT_EQ(r.total_size, kRecordHeaderSize + p.size());
    rest.remove_prefix(r.total_size);
  }
  EXPECT_EQ(rest, "trailing bytes belong to the next record");
}

TEST(RecordTest, EveryTruncationIsIncompleteNeverOkNorCorrupt) {
  const std::string r = Record(std::string(100, 'x'));
  for (size_t n = 0; n < r.size(); ++n) {
    ParsedRecord out;
    const RecordParse p = ParseRecord(std::string_view(r).substr(0, n), &out);
    if (n < kRecordHeaderSize) {
      EXPECT_EQ(p, RecordParse::kHeaderIncomplete) << "cut at " << n;
    } else {
      EXPECT_EQ(p, RecordParse::kPayloadIncomplete) << "cut at " << n;
      EXPECT_EQ(out.total_size, r.size()) << "the trusted header gives the full size; cut at " << n;
    }
  }
}

TEST(RecordTest, FlippedHeaderByteIsABadHeader) {
  const std::string r = Record(std::string(50, 'x'));
  for (size_t i = 0; i < kRecordHeaderSize; ++i) {
    for (uint8_t bit : {0x01, 0x10, 0x80}) {
      std::string bad = r;
      bad[i] = static_cast<char>(bad[i] ^ bit);
      ParsedRecord out;
      EXPECT_EQ(ParseRecord(bad, &out), RecordParse::kBadHeader) << "byte " << i << " bit " << +bit;
    }
  }
}

TEST(RecordTest, HeaderCrcIsCheckedBeforeTheLengthIsTrusted) {
  // A flipped length bit that makes the payload look cut short must read as
  // damage, not as a torn tail.
  std::string bad = Record(std::string(50, 'x'));
  bad[5] ^= 0x01;  // length 50 -> 306
  ParsedRecord out;
  EXPECT_EQ(ParseRecord(bad, &out), RecordParse::kBadHeader);
}

TEST(RecordTest, LengthAboveTheMaximumIsABadHeaderEvenWithAGoodHeaderCrc) {
  std::string r = Record("x");
  PutFixed32At(&r, 4, binlog_format::kMaxPayloadSize + 1);
  PutFixed32At(&r, 9, Crc32c(std::string_view(r).substr(0, kHeaderCrcCovered)));
  ParsedRecord out;
  EXPECT_EQ(ParseRecord(r, &out), RecordParse::kBadHeader);
}

TEST(RecordTest, FlippedPayloadByteIsABadCrc) {
  const std::string r = Record(std::string(50, 'x'));
  for (size_t i = kRecordHeaderSize; i < r.size(); ++i) {
    std::string bad = r;
    bad[i] ^= 0x10;
    ParsedRecord out;
    EXPECT_EQ(ParseRecord(bad, &out), RecordParse::kBadCrc) << "byte " << i;
    EXPECT_EQ(out.total_size, r.size()) << "byte " << i;
  }
}

TEST(RecordTest, ZeroBytesAreNeverARecord) {
  // A zero-filled tail (preallocated or never written) must not parse as an
  // empty record.
  for (size_t n : {kRecordHeaderSize, size_t{64}, size_t{4096}}) {
    ParsedRecord out;
    EXPECT_EQ(ParseRecord(std::string(n, '\0'), &out), RecordParse::kBadHeader) << n << " zeros";
  }
}

TEST(RecordTest, GroupEndCarriesTheGroupsFirstAndLastSeqLittleEndian) {
  std::string r;
  AppendGroupEnd(&r, 0x0102030405060708ull, 0x0102030405060709ull);
  ASSERT_EQ(r.size(), binlog_format::kGroupEndRecordSize);
  EXPECT_EQ(Fixed32At(r, 4), binlog_format::kGroupEndPayloadSize);
  EXPECT_EQ(static_cast<uint8_t>(r[8]), static_cast<uint8_t>(RecordType::kGroupEnd));
  EXPECT_EQ(r.substr(kRecordHeaderSize),
            std::string("\x08\x07\x06\x05\x04\x03\x02\x01\x09\x07\x06\x05\x04\x03\x02\x01", 16));
  ParsedRecord out;
  ASSERT_EQ(ParseRecord(r, &out), RecordParse::kOk);
  EXPECT_EQ(out.type, RecordType::kGroupEnd);
  uint64_t first = 0;
  uint64_t last = 0;
  ASSERT_TRUE(DecodeGroupEnd(out.payload, &first, &last));
  EXPECT_EQ(first, 0x0102030405060708ull);
  EXPECT_EQ(last, 0x0102030405060709ull);
}

TEST(RecordTest, GroupEndOfAnotherSizeOrWithSeqsBackwardsDoesNotDecode) {
  uint64_t first = 0;
  uint64_t last = 0;
  EXPECT_FALSE(DecodeGroupEnd("", &first, &last)) << "format 1's empty payload";
  EXPECT_FALSE(DecodeGroupEnd(std::string(15, '\1'), &first, &last));
  EXPECT_FALSE(DecodeGroupEnd(std::string(17, '\1'), &first, &last));
  std::string r;
  AppendGroupEnd(&r, 8, 7);
  EXPECT_FALSE(DecodeGroupEnd(std::string_view(r).substr(kRecordHeaderSize), &first, &last));
  r.clear();
  AppendGroupEnd(&r, 7, 7);
  EXPECT_TRUE(DecodeGroupEnd(std::string_view(r).substr(kRecordHeaderSize), &first, &last));
  EXPECT_EQ(first, 7u);
  EXPECT_EQ(last, 7u);
}

}  // namespace
}  // namespace relaykv
