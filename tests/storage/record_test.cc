#include "storage/record.h"

#include "gtest/gtest.h"

namespace relaykv {
namespace {

using binlog_format::kRecordHeaderSize;
using binlog_format::RecordType;

TEST(RecordTest, Crc32cMatchesTheKnownVector) { EXPECT_EQ(Crc32c("123456789"), 0xE3069283u); }

TEST(RecordTest, SegmentHeaderRoundTripsAndRejectsDamage) {
  std::string h = EncodeSegmentHeader(42, 7);
  ASSERT_EQ(h.size(), binlog_format::kSegmentHeaderSize);
  uint64_t first = 0;
  uint32_t epoch = 0;
  ASSERT_TRUE(DecodeSegmentHeader(h, &first, &epoch));
  EXPECT_EQ(first, 42u);
  EXPECT_EQ(epoch, 7u);
  for (size_t i = 0; i < binlog_format::kHeaderCrcOffset + 4; ++i) {
    std::string bad = h;
    bad[i] ^= 0x01;
    EXPECT_FALSE(DecodeSegmentHeader(bad, &first)) << "flipped byte " << i;
  }
  EXPECT_FALSE(DecodeSegmentHeader(h.substr(0, 31), &first));
}

TEST(RecordTest, RecordRoundTrips) {
  std::string buf;
  AppendRecord(&buf, RecordType::kEvent, "hello");
  AppendRecord(&buf, RecordType::kEvent, "");
  ParsedRecord r;
  ASSERT_EQ(ParseRecord(buf, &r), RecordParse::kOk);
  EXPECT_EQ(r.payload, "hello");
  EXPECT_EQ(r.total_size, kRecordHeaderSize + 5);
  ASSERT_EQ(ParseRecord(std::string_view(buf).substr(r.total_size), &r), RecordParse::kOk);
  EXPECT_EQ(r.payload, "");
}

TEST(RecordTest, EveryTruncationIsIncompleteNeverOk) {
  std::string buf;
  AppendRecord(&buf, RecordType::kEvent, std::string(100, 'x'));
  for (size_t n = 0; n < buf.size(); ++n) {
    ParsedRecord r;
    RecordParse p = ParseRecord(std::string_view(buf).substr(0, n), &r);
    EXPECT_EQ(p, n < kRecordHeaderSize ? RecordParse::kHeaderIncomplete : RecordParse::kPayloadIncomplete)
        << "cut at " << n;
  }
}

TEST(RecordTest, FlippedBitsAreDetected) {
  std::string buf;
  AppendRecord(&buf, RecordType::kEvent, std::string(50, 'x'));
  for (size_t i = 0; i < buf.size(); ++i) {
    std::string bad = buf;
    bad[i] ^= 0x10;
    ParsedRecord r;
    RecordParse p = ParseRecord(bad, &r);
    if (i < kRecordHeaderSize) {
      EXPECT_EQ(p, RecordParse::kBadHeader) << "byte " << i;
    } else {
      EXPECT_EQ(p, RecordParse::kBadCrc) << "byte " << i;
    }
  }
}

}  // namespace
}  // namespace relaykv

namespace relaykv {
namespace {

TEST(RecordTest, Crc32cOfTwoPartsEqualsCrc32cOfTheirConcatenation) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data.push_back(static_cast<char>(i * 31));
  for (size_t cut : {0u, 1u, 7u, 8u, 9u, 500u, 999u, 1000u}) {
    EXPECT_EQ(Crc32c(std::string_view(data).substr(0, cut), std::string_view(data).substr(cut)),
              Crc32c(data))
        << "cut at " << cut;
  }
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4 test vector
}

}  // namespace
}  // namespace relaykv
