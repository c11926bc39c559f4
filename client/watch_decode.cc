#include "client/watch_decode.h"

#include <climits>
#include <cstdint>
#include <string>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"  // wire types and tags only

namespace relaykv {
namespace {

using google::protobuf::io::CodedInputStream;
using google::protobuf::internal::WireFormatLite;

constexpr uint32_t Tag(uint32_t field, WireFormatLite::WireType type) {
  return field << 3 | static_cast<uint32_t>(type);
}
constexpr auto kVarint = WireFormatLite::WIRETYPE_VARINT;
constexpr auto kBytes = WireFormatLite::WIRETYPE_LENGTH_DELIMITED;

// Field numbers (proto/watch.proto, proto/event.proto).
constexpr uint32_t kResponseEvents = Tag(1, kBytes), kResponseProgress = Tag(2, kBytes),
                   kResponseHead = Tag(3, kBytes);
constexpr uint32_t kEventGtid = Tag(1, kBytes), kEventTimestamp = Tag(2, kVarint),
                   kEventChanges = Tag(3, kBytes);
constexpr uint32_t kGtidEpoch = Tag(1, kVarint), kGtidSeq = Tag(2, kVarint);
constexpr uint32_t kMutationOp = Tag(1, kVarint), kMutationKey = Tag(2, kBytes),
                   kMutationValue = Tag(3, kBytes);
constexpr int32_t kOpDelete = 2;  // Mutation.Op.DELETE

// One answer's decoding; the first problem met is kept in `error`.
class Decoder {
 public:
  explicit Decoder(CodedInputStream* in) : in_(in) {}

  bool ReadResponse(WatchBatch* batch) {
    size_t taken = 0;  // events decoded: batch->events' first ones
    batch->progress = {};
    batch->head = {};
    const bool ok = Fields("the answer", [&](uint32_t tag) {
      switch (tag) {
        case kResponseEvents:
          if (taken == batch->events.size()) batch->events.emplace_back();
          return Message("an event", [&] { return ReadEvent(&batch->events[taken++]); });
        case kResponseProgress:
          return Message("progress", [&] { return ReadGtid(&batch->progress); });
        case kResponseHead:
          return Message("head", [&] { return ReadGtid(&batch->head); });
        default:
          return Skip(tag);
      }
    });
    batch->events.resize(taken);
    return ok;
  }

  const std::string& error() const { return error_; }

 private:
  bool ReadEvent(WatchEvent* e) {
    size_t taken = 0;  // changes decoded: e->changes' first ones
    e->gtid = {};
    e->timestamp_us = 0;
    const bool ok = Fields("an event", [&](uint32_t tag) {
      switch (tag) {
        case kEventGtid:
          return Message("an event's gtid", [&] { return ReadGtid(&e->gtid); });
        case kEventTimestamp: {
          uint64_t v;
          if (!in_->ReadVarint64(&v)) return Fail("an event's timestamp is cut short");
          e->timestamp_us = static_cast<int64_t>(v);  // int64: two's complement
          return true;
        }
        case kEventChanges:
          if (taken == e->changes.size()) e->changes.emplace_back();
          return Message("a change", [&] { return ReadChange(&e->changes[taken++]); });
        default:
          return Skip(tag);
      }
    });
    e->changes.resize(taken);
    return ok;
  }

  bool ReadChange(Mutation* m) {
    m->op = Mutation::Op::kPut;
    m->key.clear();
    m->value.clear();
    const bool ok = Fields("a change", [&](uint32_t tag) {
      switch (tag) {
        case kMutationOp: {
          uint64_t v;  // an enum: an int32 on the wire as a varint
          if (!in_->ReadVarint64(&v)) return Fail("a change's op is cut short");
          m->op = static_cast<int32_t>(v) == kOpDelete ? Mutation::Op::kDelete : Mutation::Op::kPut;
          return true;
        }
        case kMutationKey:
          return Bytes("a change's key", &m->key);
        case kMutationValue:
          return Bytes("a change's value", &m->value);
        default:
          return Skip(tag);
      }
    });
    // Reusing bytes, but giving back what one big value left behind.
    for (std::string* s : {&m->key, &m->value}) {
      if (s->capacity() > 4096 && s->capacity() > 2 * s->size()) s->shrink_to_fit();
    }
    return ok;
  }

  // Fields given again overwrite: protobuf merges a submessage given twice.
  bool ReadGtid(Gtid* g) {
    return Fields("a gtid", [&](uint32_t tag) {
      switch (tag) {
        case kGtidEpoch:
          return in_->ReadVarint64(&g->epoch) || Fail("a gtid's epoch is cut short");
        case kGtidSeq:
          return in_->ReadVarint64(&g->seq) || Fail("a gtid's seq is cut short");
        default:
          return Skip(tag);
      }
    });
  }

  // Calls `field(tag)` for each field up to the current limit; true once
  // the limit is reached exactly, false on a malformed tag or when `field`
  // fails.
  template <class F>
  bool Fields(const char* what, F&& field) {
    for (;;) {
      uint32_t tag;
      if (!ReadFieldTag(what, &tag)) return false;
      if (tag == 0) return true;
      if (!field(tag)) return false;
    }
  }

  // The next field's tag, 0 at the limit. A tag is at most 5 bytes to
  // protobuf's parser (CodedInputStream would read 10).
  bool ReadFieldTag(const char* what, uint32_t* tag) {
    *tag = 0;
    // The end, known by the limit and checked first: a tag cut short by
    // the limit also leaves ReadTag() at it, returning 0.
    if (in_->BytesUntilLimit() == 0) return true;
    const int at = in_->CurrentPosition();
    *tag = in_->ReadTag();
    if (*tag == 0) return Fail(std::string(what) + " has a zero or cut-short field tag");
    return in_->CurrentPosition() - at <= 5 ||
           Fail(std::string(what) + " has a field tag longer than 5 bytes");
  }

  // A length-delimited submessage, its fields read by `body`.
  template <class F>
  bool Message(const char* what, F&& body) {
    int length;
    if (!Length(what, &length)) return false;
    const CodedInputStream::Limit outer = in_->PushLimit(length);
    const bool ok = body();
    in_->PopLimit(outer);
    return ok;
  }

  bool Bytes(const char* what, std::string* to) {
    int length;
    return Length(what, &length) &&
           (in_->ReadString(to, length) || Fail(std::string(what) + " is cut short"));
  }

  // A length that fits in what is left (every decode has a limit), in at
  // most 5 bytes as protobuf's parser reads one.
  bool Length(const char* what, int* length) {
    const int at = in_->CurrentPosition();
    uint64_t n;
    if (!in_->ReadVarint64(&n)) return Fail(std::string(what) + "'s length is cut short");
    if (in_->CurrentPosition() - at > 5) return Fail(std::string(what) + "'s length is too long");
    if (in_->BytesUntilLimit() < 0 || n > static_cast<uint64_t>(in_->BytesUntilLimit())) {
      return Fail(std::string(what) + " is " + std::to_string(n) + " bytes, more than the " +
                  std::to_string(in_->BytesUntilLimit()) + " left");
    }
    *length = static_cast<int>(n);
    return true;
  }

  // An unknown field (a newer server's): skipped, as protobuf's parser
  // skips it — and refuses what it refuses: field number 0, an end-group
  // with no group, wire types 6 and 7, groups nested past its depth.
  bool Skip(uint32_t tag, int depth = 0) {
    const std::string what = "field " + std::to_string(tag >> 3);
    if (tag >> 3 == 0) return Fail("field number 0");
    switch (WireFormatLite::GetTagWireType(tag)) {
      case WireFormatLite::WIRETYPE_VARINT: {
        uint64_t v;
        return in_->ReadVarint64(&v) || Fail(what + " is cut short");
      }
      case WireFormatLite::WIRETYPE_FIXED64:
        return in_->Skip(8) || Fail(what + " is cut short");
      case WireFormatLite::WIRETYPE_FIXED32:
        return in_->Skip(4) || Fail(what + " is cut short");
      case WireFormatLite::WIRETYPE_LENGTH_DELIMITED: {
        int length;
        return Length(what.c_str(), &length) && (in_->Skip(length) || Fail(what + " is cut short"));
      }
      case WireFormatLite::WIRETYPE_START_GROUP:
        if (depth >= kMaxGroupDepth) return Fail(what + ": groups nested too deep");
        for (;;) {
          uint32_t inner;
          if (!ReadFieldTag(what.c_str(), &inner)) return false;
          if (inner == 0) return Fail(what + ": a group with no end");
          if (WireFormatLite::GetTagWireType(inner) == WireFormatLite::WIRETYPE_END_GROUP) {
            return inner >> 3 == tag >> 3 || Fail(what + ": a group ends with another's tag");
          }
          if (!Skip(inner, depth + 1)) return false;
        }
      default:
        return Fail(what + " has wire type " + std::to_string(tag & 7));
    }
  }
  static constexpr int kMaxGroupDepth = 90;  // under protobuf's 100, with our 3 levels above

  bool Fail(std::string why) {
    if (error_.empty()) {
      error_ = std::move(why) + " (at byte " + std::to_string(in_->CurrentPosition()) + ")";
    }
    return false;
  }

  CodedInputStream* const in_;
  std::string error_;
};

absl::Status TooLarge(size_t length) {
  return absl::DataLossError("watch answer of " + std::to_string(length) +
                             " bytes is larger than a protobuf message can be");
}

}  // namespace

absl::Status DecodeWatchResponse(google::protobuf::io::ZeroCopyInputStream* in, size_t length,
                                 WatchBatch* batch) {
  // INT_MAX itself would set no limit (CodedInputStream's "none").
  if (length >= static_cast<size_t>(INT_MAX)) return TooLarge(length);
  CodedInputStream coded(in);
  coded.PushLimit(static_cast<int>(length));  // Fields() knows the end by it
  Decoder d(&coded);
  if (d.ReadResponse(batch)) return absl::OkStatus();
  return absl::DataLossError("watch answer is malformed: " + d.error());
}

absl::Status DecodeWatchResponse(std::string_view bytes, WatchBatch* batch) {
  if (bytes.size() >= static_cast<size_t>(INT_MAX)) return TooLarge(bytes.size());
  google::protobuf::io::ArrayInputStream in(bytes.data(), static_cast<int>(bytes.size()));
  return DecodeWatchResponse(&in, bytes.size(), batch);
}

}  // namespace relaykv
