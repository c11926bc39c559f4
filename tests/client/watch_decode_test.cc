// Client::Watch decodes the server's answers by hand (client/watch_decode.h)
// where it used to parse them with protobuf: whatever bytes it accepts must
// mean what protobuf reads from them, field for field — random answers,
// answers split across gRPC slices at random, unknown fields at every
// level, concatenated answers (protobuf merges them), and every truncation
// and random corruption of an answer (then: an error, or what protobuf
// also reads); and Client::Watch ending at a malformed answer.
#include "client/watch_decode.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/method_handler.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/unknown_field_set.h"
#include "gtest/gtest.h"
#include "proto/watch.grpc.pb.h"  // the request's serialization traits
#include "relaykv/client.h"
#include "tests/common/watch_batch_from_proto.h"

namespace relaykv {
namespace {

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
    ExpectSame(WatchBatchFromProto(msg), batch);
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
    ExpectSame(WatchBatchFromProto(merged), batch);
  }
}

// Every prefix and random corruptions of an answer: never a crash; the
// decoder accepts exactly what protobuf accepts, and reads the same.
TEST(WatchDecodeTest, CutOrCorruptAnswersAreRefusedOrReadAsProtobufReadsThem) {
  std::mt19937_64 rng(99);
  WatchBatch batch;
  int refused = 0;
  auto check = [&](const std::string& bytes) {
    v1::WatchResponse parsed;
    const bool protobuf_ok = parsed.ParseFromString(bytes);
    const absl::Status s = Decode(bytes, 1 + static_cast<int>(rng() % 16), &batch);
    ASSERT_EQ(s.ok(), protobuf_ok) << (s.ok() ? "accepted bytes protobuf refuses: "
                                              : "refused bytes protobuf reads: ")
                                   << s << " " << Hex(bytes);
    if (!s.ok()) {
      ++refused;
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
      EXPECT_NE(s.message().find("watch answer is malformed"), std::string::npos) << s;
      return;
    }
    ExpectSame(WatchBatchFromProto(parsed), batch);
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

std::string FromHex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  }
  return out;
}

// Bytes protobuf itself never writes (so random answers never hold them):
// the decoder takes exactly those protobuf's parser takes, and reads them
// alike.
TEST(WatchDecodeTest, NonCanonicalAndHostileBytesAreReadAsProtobufReadsThem) {
  const std::string group90 = [] {
    std::string g;
    for (int i = 0; i < 90; ++i) g += "a306";  // field 100, start group
    for (int i = 0; i < 90; ++i) g += "a406";  // field 100, end group
    return g;
  }();
  const struct {
    std::string hex;
    bool ok;  // what protobuf does too (checked)
  } kCases[] = {
      {"8a80808000" "00", true},      // a 5-byte tag (events) with padding
      {"8a8080808000" "00", false},   // a 6-byte tag
      {"0a" "8080808000", true},      // a 5-byte length 0
      {"0a" "808080808000", false},   // a 6-byte length
      {"0a" "8080808008", false},     // a length of 2^31
      {"00", false}, {"0200", false}, {"0100000000000000" "00", false},  // field number 0
      {"0c", false},                  // an end-group with no group
      {"0e", false}, {"0f", false},   // wire types 6 and 7
      {"a306" "ac06", false},         // a group ended by another field's end tag
      {"a306" "a406", true},          // an unknown group
      {"a306", false},                // a group with no end
      {group90, true},                // unknown groups nested 90 deep
      {"0a08" "0a020805" "0a021007", true},                          // an event's gtid twice: merged
      {"0a0c" "1a0a" "0802" "0801" "120161" "120162", true},         // op and key twice: the last
      {"0a08" "1a06" "088280808010", true},                          // op 2 + 2^32: DELETE (int32)
      {"0a0b" "10ffffffffffffffffff7f", true},                       // a 10-byte timestamp
      {"0a0b" "10ffffffffffffffffffff01", false},                    // an 11-byte varint
      {"1203" "0a0100", true},        // progress's epoch with wire type 2: skipped
      {"1a020801" "0a00" "12021002", true},  // fields out of order
      {"0a02" "1a00" "0a00", true},   // an empty change, an empty event
  };
  WatchBatch batch;
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.hex.substr(0, 80));
    const std::string bytes = FromHex(c.hex);
    v1::WatchResponse parsed;
    EXPECT_EQ(parsed.ParseFromString(bytes), c.ok) << "protobuf";
    const absl::Status s = Decode(bytes, 3, &batch);
    ASSERT_EQ(s.ok(), c.ok) << s;
    if (s.ok()) ExpectSame(WatchBatchFromProto(parsed), batch);
  }
  ASSERT_TRUE(Decode(FromHex("0a08" "0a020805" "0a021007"), -1, &batch).ok());
  EXPECT_EQ(batch.events.at(0).gtid, (Gtid{5, 7}));
  ASSERT_TRUE(Decode(FromHex("0a08" "1a06" "088280808010"), -1, &batch).ok());
  EXPECT_EQ(batch.events.at(0).changes.at(0).op, Mutation::Op::kDelete);
  ASSERT_TRUE(Decode(FromHex("0a0c" "1a0a" "0802" "0801" "120161" "120162"), -1, &batch).ok());
  EXPECT_EQ(batch.events.at(0).changes.at(0).op, Mutation::Op::kPut);
  EXPECT_EQ(batch.events.at(0).changes.at(0).key, "b");
  // The one difference: unknown groups nested deeper than the decoder goes.
  EXPECT_FALSE(DecodeWatchResponse(FromHex("a306" + group90 + "a406"), &batch).ok());
}

// The path Client::Watch takes: gRPC's ByteBuffer of several slices (an
// empty one too) read through grpc::ProtoBufferReader.
TEST(WatchDecodeTest, ReadsAnAnswerSpreadOverGrpcSlices) {
  std::mt19937_64 rng(5);
  WatchBatch batch;
  for (int round = 0; round < 50; ++round) {
    const v1::WatchResponse msg = RandomResponse(rng, true);
    const std::string bytes = msg.SerializeAsString();
    std::vector<grpc::Slice> slices;
    for (size_t at = 0; at < bytes.size();) {
      const size_t n = std::min(bytes.size() - at, static_cast<size_t>(rng() % 200));
      slices.emplace_back(bytes.data() + at, n);  // n may be 0: an empty slice
      at += n;
    }
    grpc::ByteBuffer buffer(slices.data(), slices.size());
    grpc::ProtoBufferReader in(&buffer);
    ASSERT_TRUE(DecodeWatchResponse(&in, buffer.Length(), &batch).ok());
    ExpectSame(WatchBatchFromProto(msg), batch);
  }
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


// A server on 127.0.0.1 (`address`) that answers a watch with one good
// answer, then bytes that are not a WatchResponse, then holds the stream
// open (until cancelled or 20 s).
class MalformedWatchServer : public grpc::Service {
 public:
  MalformedWatchServer() {
    AddMethod(new grpc::internal::RpcServiceMethod(
        "/relaykv.v1.ChangeStream/Watch", grpc::internal::RpcMethod::SERVER_STREAMING,
        new grpc::internal::ServerStreamingHandler<MalformedWatchServer, v1::WatchRequest,
                                                   grpc::ByteBuffer>(
            [](MalformedWatchServer* self, grpc::ServerContext* ctx, const v1::WatchRequest*,
               grpc::ServerWriter<grpc::ByteBuffer>* writer) {
              ++self->calls;
              v1::WatchResponse good;
              v1::WatchEvent* e = good.add_events();
              e->mutable_gtid()->set_epoch(1);
              e->mutable_gtid()->set_seq(1);
              e->add_changes()->set_key("k");
              good.mutable_progress()->set_seq(1);
              const std::string bytes = good.SerializeAsString();
              grpc::Slice slice(bytes);
              writer->Write(grpc::ByteBuffer(&slice, 1));
              grpc::Slice bad(std::string("\x0a\x05\x08", 3));
              writer->Write(grpc::ByteBuffer(&bad, 1));
              for (int i = 0; i < 200 && !ctx->IsCancelled(); ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
              }
              return grpc::Status::OK;
            },
            this)));
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    address = "127.0.0.1:" + std::to_string(port);
  }
  // The server goes before the service it calls (a member, then the base).
  ~MalformedWatchServer() override {
    if (server_) server_->Shutdown();
  }
  bool started() const { return server_ != nullptr; }

  std::atomic<int> calls{0};
  std::string address;

 private:
  std::unique_ptr<grpc::Server> server_;
};

// A malformed answer ends Client::Watch with DATA_LOSS at once — after the
// good batch before it, without resuming (the node would send the same),
// and without waiting for the server to end the stream.
TEST(WatchDecodeTest, ClientWatchEndsWithDataLossOnAMalformedAnswer) {
  MalformedWatchServer service;
  ASSERT_TRUE(service.started());
  auto client = Client::Connect({service.address});
  ASSERT_TRUE(client.ok()) << client.status();
  ClientWatchOptions o;
  o.resume_for = std::chrono::seconds(30);  // an outage would be resumed; this is not one
  std::vector<std::string> keys;
  const auto start = std::chrono::steady_clock::now();
  const absl::Status s = (*client)->Watch(WatchRange::Prefix(""), o, [&](const WatchBatch& b) {
    for (const WatchEvent& e : b.events) {
      for (const Mutation& m : e.changes) keys.push_back(m.key);
    }
    return true;
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("watch answer is malformed"), std::string::npos) << s;
  EXPECT_EQ(keys, std::vector<std::string>{"k"});
  EXPECT_EQ(service.calls.load(), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));  // hang guard
}

// Every gRPC object Client::Watch makes is let go: once the client and
// the server are gone, gRPC is no longer initialized (each completion
// queue, channel and server holds an initialization). Review s30 found
// the stream's reader leaked, with its completion queue, per watch.
TEST(WatchDecodeTest, ClientWatchLeavesNoGrpcObjectBehind) {
  {
    MalformedWatchServer service;
    ASSERT_TRUE(service.started());
    auto client = Client::Connect({service.address});
    ASSERT_TRUE(client.ok()) << client.status();
    for (int i = 0; i < 3; ++i) {
      // Stops at the first batch (the good one): the client cancels the stream.
      const absl::Status s = (*client)->Watch(WatchRange::Prefix(""), ClientWatchOptions{},
                                              [](const WatchBatch&) { return false; });
      EXPECT_TRUE(s.ok()) << s;
    }
    EXPECT_EQ(service.calls.load(), 3);
  }
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (grpc_is_initialized() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(grpc_is_initialized()) << "a gRPC object outlived the client and the server";
}

}  // namespace
}  // namespace relaykv
