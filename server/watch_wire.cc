#include "server/watch_wire.h"

#include <cstdint>
#include <string_view>

#include "google/protobuf/io/coded_stream.h"

namespace relaykv {
namespace {

using google::protobuf::io::CodedOutputStream;

// Protobuf wire types.
constexpr uint32_t kVarint = 0;
constexpr uint32_t kLengthDelimited = 2;

// Field numbers (proto/watch.proto, proto/event.proto).
constexpr uint32_t kResponseEvents = 1, kResponseProgress = 2, kResponseHead = 3;
constexpr uint32_t kEventGtid = 1, kEventTimestamp = 2, kEventChanges = 3;
constexpr uint32_t kGtidEpoch = 1, kGtidSeq = 2;
constexpr uint32_t kMutationOp = 1, kMutationKey = 2, kMutationValue = 3;

size_t VarintSize(uint64_t v) { return CodedOutputStream::VarintSize64(v); }
size_t TagSize(uint32_t field) { return VarintSize(field << 3); }

void PutVarint(uint64_t v, std::string* out) {
  uint8_t buf[10];
  const uint8_t* end = CodedOutputStream::WriteVarint64ToArray(v, buf);
  out->append(reinterpret_cast<const char*>(buf), static_cast<size_t>(end - buf));
}
void PutTag(uint32_t field, uint32_t wire_type, std::string* out) {
  PutVarint(field << 3 | wire_type, out);
}

// proto3 leaves fields at their default (0, empty) out; parsers take
// either, and leaving them out keeps the bytes those of SerializeToString.
size_t VarintFieldSize(uint32_t field, uint64_t v) { return v == 0 ? 0 : TagSize(field) + VarintSize(v); }
void PutVarintField(uint32_t field, uint64_t v, std::string* out) {
  if (v == 0) return;
  PutTag(field, kVarint, out);
  PutVarint(v, out);
}
size_t BytesFieldSize(uint32_t field, size_t n) {
  return n == 0 ? 0 : TagSize(field) + VarintSize(n) + n;
}
void PutBytesField(uint32_t field, std::string_view b, std::string* out) {
  if (b.empty()) return;
  PutTag(field, kLengthDelimited, out);
  PutVarint(b.size(), out);
  out->append(b);
}
// A message field is written even when its body is empty, as protobuf
// writes a set submessage.
size_t MessageFieldSize(uint32_t field, size_t body) { return TagSize(field) + VarintSize(body) + body; }
void PutMessageHeader(uint32_t field, size_t body, std::string* out) {
  PutTag(field, kLengthDelimited, out);
  PutVarint(body, out);
}

size_t GtidBodySize(uint64_t epoch, uint64_t seq) {
  return VarintFieldSize(kGtidEpoch, epoch) + VarintFieldSize(kGtidSeq, seq);
}
void PutGtidField(uint32_t field, uint64_t epoch, uint64_t seq, std::string* out) {
  PutMessageHeader(field, GtidBodySize(epoch, seq), out);
  PutVarintField(kGtidEpoch, epoch, out);
  PutVarintField(kGtidSeq, seq, out);
}

bool IsDelete(const v1::Mutation& m) { return m.op() == v1::Mutation::DELETE; }
uint64_t WireOp(const v1::Mutation& m) { return IsDelete(m) ? v1::Mutation::DELETE : v1::Mutation::PUT; }
std::string_view WireValue(const v1::Mutation& m) {
  return IsDelete(m) ? std::string_view() : std::string_view(m.value());
}
size_t MutationBodySize(const v1::Mutation& m) {
  return VarintFieldSize(kMutationOp, WireOp(m)) + BytesFieldSize(kMutationKey, m.key().size()) +
         BytesFieldSize(kMutationValue, WireValue(m).size());
}

bool Inside(const v1::Mutation& m, const WatchBounds* bounds) {
  return bounds == nullptr || bounds->Contains(m.key());
}

}  // namespace

bool AllInside(const v1::Event& event, const WatchBounds& bounds) {
  if (event.mutations().empty()) return false;
  for (const v1::Mutation& m : event.mutations()) {
    if (!bounds.Contains(m.key())) return false;
  }
  return true;
}

bool AppendWatchEvent(const v1::Event& event, const WatchBounds* bounds, std::string* out) {
  // Sizes first: a length precedes each message.
  size_t changes = 0, body = 0;
  for (const v1::Mutation& m : event.mutations()) {
    if (!Inside(m, bounds)) continue;
    ++changes;
    body += MessageFieldSize(kEventChanges, MutationBodySize(m));
  }
  if (changes == 0) return false;
  const uint64_t epoch = event.gtid().epoch(), seq = event.gtid().seq();
  const uint64_t timestamp = static_cast<uint64_t>(event.timestamp_us());  // int64: two's complement
  body += MessageFieldSize(kEventGtid, GtidBodySize(epoch, seq)) +
          VarintFieldSize(kEventTimestamp, timestamp);

  PutMessageHeader(kResponseEvents, body, out);
  PutGtidField(kEventGtid, epoch, seq, out);
  PutVarintField(kEventTimestamp, timestamp, out);
  for (const v1::Mutation& m : event.mutations()) {
    if (!Inside(m, bounds)) continue;
    PutMessageHeader(kEventChanges, MutationBodySize(m), out);
    PutVarintField(kMutationOp, WireOp(m), out);
    PutBytesField(kMutationKey, m.key(), out);
    PutBytesField(kMutationValue, WireValue(m), out);
  }
  return true;
}

void AppendWatchPosition(const Gtid& progress, const Gtid& head, std::string* out) {
  PutGtidField(kResponseProgress, progress.epoch, progress.seq, out);
  PutGtidField(kResponseHead, head.epoch, head.seq, out);
}

}  // namespace relaykv
