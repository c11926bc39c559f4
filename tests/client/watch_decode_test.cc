// Client::Watch decodes the server's answers by hand (client/watch_decode.h)
// where it used to parse them with protobuf: whatever bytes it accepts must
// mean what protobuf reads from them, field for field — random answers,
// answers split across gRPC slices at random, unknown fields at every
// level, concatenated answers (protobuf merges them), and every truncation
// and random corruption of an answer (then: an error, or what protobuf
// also reads).
#include "client/watch_decode.h"

#include <random>
#include <string>
#include <vector>

#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/unknown_field_set.h"
#include "gtest/gtest.h"
#include "proto/watch.pb.h"

namespace relaykv {
namespace {

// What Client::Watch delivered when it parsed with protobuf.
WatchBatch Expected(const v1::WatchResponse& msg) {
  WatchBatch b;
  for (const v1::WatchEvent& pe : msg.events()) {
    WatchEvent& e = b.events.emplace_back();
    e.gtid = {pe.gtid().epoch(), pe.gtid().seq()};
    e.timestamp_us = pe.timestamp_us();
    for (const v1::Mutation& pm : pe.changes()) {
      e.changes.push_back({pm.op() == v1::Mutation::DELETE ? Mutation::Op::kDelete : Mutation::Op::kPut,
                           pm.key(), pm.value()});
    }
  }
  b.progress = {msg.progress().epoch(), msg.progress().seq()};
  b.head = {msg.head().epoch(), msg.head().seq()};
  return b;
}

void ExpectSame(const WatchBatch& want, const WatchBatch& got) {
  ASSERT_EQ(want.events.size(), got.events.size());
  for (size_t i = 0; i < want.events.size(); ++i) {
    const WatchEvent& w = want.events[i];
    const WatchEvent& g = got.events[i];
    EXPECT_EQ(w.gtid, g.gtid) << "event " << i;
    EXPECT_EQ(w.timestamp_us, g.timestamp_us) << "event " << i;
    ASSERT_EQ(w.changes.size(), g.changes.size()) << "event " << i;
    for (size_t j = 0; j < w.changes.size(); ++j) {
      EXPECT_EQ(w.changes[j].op, g.changes[j].op) << "event " << i << " change " << j;
      EXPECT_EQ(w.changes[j].key, g.changes[j].key) << "event " << i << " change " << j;
      EXPECT_EQ(w.changes[j].value, g.changes[j].value) << "event " << i << " change " << j;
    }
  }
  EXPECT_EQ(want.progress, got.progress);
  EXPECT_EQ(want.head, got.head);
}

std::string RandomBytes(std::mt19937_64& rng) {
  static const size_t kSizes[] = {0, 1, 15, 16, 127, 128, 300, 16384, 70000};
  std::string s(kSizes[rng() % std::size(kSizes)], '\0');
  for (char& c : s) c = static_cast<char>("ab\0\xff"[rng() % 4]);
  return s;
}

uint64_t RandomNumber(std::mt19937_64& rng) {
  static const uint64_t kNumbers[] = {0, 1, 127, 128, 1ull << 35, ~0ull};
  return kNumbers[rng() % std::size(kNumbers)];
}

// Unknown fields of every wire type, as a newer server could send.
void AddUnknown(google::protobuf::Message* m, std::mt19937_64& rng) {
  if (rng() % 3 != 0) return;
  google::protobuf::UnknownFieldSet* u = m->GetReflection()->MutableUnknownFields(m);
  u->AddVarint(100, RandomNumber(rng));
  u->AddLengthDelimited(101, RandomBytes(rng));
  u->AddFixed32(102, static_cast<uint32_t>(rng()));
  u->AddFixed64(103, rng());
  u->AddGroup(104)->AddVarint(1, rng());
}

v1::WatchResponse RandomResponse(std::mt19937_64& rng, bool unknown) {
  v1::WatchResponse r;
  const size_t events = rng() % 4;
  for (size_t i = 0; i < events; ++i) {
    v1::WatchEvent* e = r.add_events();
    if (rng() % 4 != 0) {
      e->mutable_gtid()->set_epoch(RandomNumber(rng));
      e->mutable_gtid()->set_seq(RandomNumber(rng));
    }
    static const int64_t kTimes[] = {0, 1, -1, 1'800'000'000'000'000, INT64_MIN};
    e->set_timestamp_us(kTimes[rng() % std::size(kTimes)]);
    const size_t changes = rng() % 4;
    for (size_t j = 0; j < changes; ++j) {
      v1::Mutation* m = e->add_changes();
      static const int kOps[] = {0, 1, 2, 7, -1};  // unset, PUT, DELETE, unknown ones
      m->set_op(static_cast<v1::Mutation::Op>(kOps[rng() % std::size(kOps)]));
      m->set_key(RandomBytes(rng));
      m->set_value(RandomBytes(rng));
      if (unknown) AddUnknown(m, rng);
    }
    if (unknown) {
      AddUnknown(e, rng);
      if (e->has_gtid()) AddUnknown(e->mutable_gtid(), rng);
    }
  }
  if (rng() % 5 != 0) {
    r.mutable_progress()->set_epoch(RandomNumber(rng));
    r.mutable_progress()->set_seq(RandomNumber(rng));
  }
  if (rng() % 5 != 0) {
    r.mutable_head()->set_epoch(RandomNumber(rng));
    r.mutable_head()->set_seq(RandomNumber(rng));
  }
  if (unknown) AddUnknown(&r, rng);
  return r;
}

std::string Hex(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes.substr(0, 64)) out += "0123456789abcdef"[c >> 4], out += "0123456789abcdef"[c & 15];
  return out + (bytes.size() > 64 ? "..." : "");
}

// Decodes `bytes` as gRPC hands them over: in slices of `block` bytes.
absl::Status Decode(const std::string& bytes, int block, WatchBatch* batch) {
  google::protobuf::io::ArrayInputStream in(bytes.data(), static_cast<int>(bytes.size()), block);
  return DecodeWatchResponse(&in, bytes.size(), batch);
}

TEST(WatchDecodeTest, ReadsWhatProtobufReadsFromRandomAnswers) {
  std::mt19937_64 rng(20261127);
  WatchBatch batch;  // reused, as Client::Watch does: a smaller answer after a bigger one
  for (int round = 0; round < 600; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const v1::WatchResponse msg = RandomResponse(rng, round % 2 == 1);
    const std::string bytes = msg.SerializeAsString();
    const int block = round % 3 == 0 ? 1 + static_cast<int>(rng() % 64) : -1;  // -1: one slice
    ASSERT_TRUE(Decode(bytes, block, &batch).ok()) << Decode(bytes, block, &batch);
    ExpectSame(Expected(msg), batch);
  }
}

TEST(WatchDecodeTest, ConcatenatedAnswersMergeAsProtobufMergesThem) {
  std::mt19937_64 rng(7);
  WatchBatch batch;
  for (int round = 0; round < 200; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string bytes = RandomResponse(rng, true).SerializeAsString() +
                              RandomResponse(rng, false).SerializeAsString();
    v1::WatchResponse merged;
    ASSERT_TRUE(merged.ParseFromString(bytes));
    ASSERT_TRUE(Decode(bytes, -1, &batch).ok());
    ExpectSame(Expected(merged), batch);
  }
}

// Every prefix and random corruptions of an answer: never a crash; where
// the decoder accepts the bytes, protobuf reads the same from them.
TEST(WatchDecodeTest, CutOrCorruptAnswersAreRefusedOrReadAsProtobufReadsThem) {
  std::mt19937_64 rng(99);
  WatchBatch batch;
  int refused = 0;
  auto check = [&](const std::string& bytes) {
    v1::WatchResponse parsed;
    const bool protobuf_ok = parsed.ParseFromString(bytes);
    const absl::Status s = Decode(bytes, 1 + static_cast<int>(rng() % 16), &batch);
    if (!s.ok()) {
      ++refused;
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
      EXPECT_NE(s.message().find("watch answer is malformed"), std::string::npos) << s;
      return;
    }
    ASSERT_TRUE(protobuf_ok) << "accepted bytes protobuf refuses: " << Hex(bytes);
    ExpectSame(Expected(parsed), batch);
  };
  for (int round = 0; round < 40; ++round) {
    v1::WatchResponse msg;
    do msg = RandomResponse(rng, round % 2 == 1);
    while (msg.ByteSizeLong() > 4000);  // every prefix of it is tried
    const std::string bytes = msg.SerializeAsString();
    for (size_t n = 0; n < bytes.size(); ++n) check(bytes.substr(0, n));
    for (int i = 0; i < 200 && !bytes.empty(); ++i) {
      std::string bad = bytes;
      bad[rng() % bad.size()] = static_cast<char>(rng());
      check(bad);
    }
  }
  EXPECT_GT(refused, 0);
}

TEST(WatchDecodeTest, MalformedAnswersNameTheProblem) {
  WatchBatch batch;
  // events (field 1) claiming 5 bytes with 1 left.
  absl::Status s = DecodeWatchResponse(std::string("\x0a\x05\x08", 3), &batch);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("an event is 5 bytes, more than the 1 left"), std::string::npos) << s;
  // A zero tag where a field should start.
  s = DecodeWatchResponse(std::string("\x00", 1), &batch);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("zero or cut-short field tag"), std::string::npos) << s;
  // A change's key cut short inside a slice boundary-free message.
  s = DecodeWatchResponse(std::string("\x0a\x04\x1a\x02\x12\x07", 6), &batch);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("a change's key is 7 bytes, more than the 0 left"), std::string::npos)
      << s;
  // An empty answer is a valid one: no events, positions zero.
  batch.events.resize(3);
  ASSERT_TRUE(DecodeWatchResponse(std::string(), &batch).ok());
  EXPECT_TRUE(batch.events.empty());
  EXPECT_EQ(batch.progress, Gtid{});
}

}  // namespace
}  // namespace relaykv
