// What a primary and a replica accept from each other over a replication
// stream (server/replication_messages.h), fed arbitrary bytes. The first
// byte picks the side:
//   0: the bytes after it as a PrimaryMessage a replica received
//      (DecodeEventBatch: decode, limits);
//   1: as a replica's first ReplicaMessage (CheckReplicaHello);
//   2: a primary's ACK bookkeeping (SentBatches) driven by a script of
//      batches sent (consecutive seqs, as a sender sends) and ACKs received
//      (any GTID, as a hostile replica sends).
// They must return values, never crash, hang or take memory beyond the
// input; and keep their promises: an accepted batch holds events that pass
// the limits; an ACK is believed only up to what was sent, and one of the
// last batch sent leaves nothing un-ACKed.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "google/protobuf/stubs/logging.h"
#include "proto/replication.pb.h"
#include "server/limits.h"
#include "server/replication_messages.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void PrimaryMessage(const uint8_t* data, size_t size) {
  relaykv::v1::PrimaryMessage msg;
  if (!msg.ParseFromArray(data, static_cast<int>(size))) return;
  if (msg.has_heartbeat()) return;  // taken as is (its fields are numbers)
  std::vector<relaykv::v1::Event> events;
  if (!relaykv::DecodeEventBatch(msg, "fuzz:1", &events).ok()) return;
  Check(!events.empty() && events.size() == static_cast<size_t>(msg.batch().events_size()));
  for (const relaykv::v1::Event& e : events) Check(relaykv::ValidateEventMutations(e).ok());
}

void ReplicaHello(const uint8_t* data, size_t size) {
  relaykv::v1::ReplicaMessage msg;
  if (!msg.ParseFromArray(data, static_cast<int>(size))) return;
  constexpr uint32_t kOwn = 1;
  const bool ok = relaykv::CheckReplicaHello(msg, kOwn).ok();
  Check(ok == (msg.has_hello() && msg.hello().server_id() != kOwn));
}

void Acks(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const bool semi_sync = in.ConsumeBool();
  const relaykv::Gtid durable{in.ConsumeIntegralInRange<uint64_t>(0, 3),
                              in.ConsumeIntegralInRange<uint64_t>(0, 1000)};
  relaykv::SentBatches acks(semi_sync, durable);
  relaykv::Gtid last_sent = durable;
  uint64_t sent_bytes = 0;
  uint64_t acked_seq = durable.seq;
  while (in.remaining_bytes() > 0) {
    if (in.ConsumeBool()) {
      // A batch of 1..100 events after the last one, epoch never going back.
      const relaykv::Gtid last{last_sent.epoch + in.ConsumeIntegralInRange<uint64_t>(0, 1),
                               last_sent.seq + in.ConsumeIntegralInRange<uint64_t>(1, 100)};
      const size_t bytes = in.ConsumeIntegralInRange<size_t>(0, 1 << 20);
      acks.Sent(last, bytes);
      last_sent = last;
      sent_bytes += bytes;
    } else {
      relaykv::Gtid acked;
      if (in.ConsumeBool()) {
        acked = last_sent;  // the ACK an honest replica sends
        acked.epoch ^= in.ConsumeIntegralInRange<uint64_t>(0, 1);
      } else {
        acked = {in.ConsumeIntegral<uint64_t>(), in.ConsumeIntegral<uint64_t>()};
      }
      auto r = acks.Acked(acked);
      if (r.ok() && acked.seq > acked_seq) {
        Check(acked.seq <= last_sent.seq);
        acked_seq = acked.seq;
        if (acked == last_sent) Check(acks.Unacked(UINT64_MAX) == 0);
      }
    }
    Check(acks.Unacked(UINT64_MAX) == UINT64_MAX || acks.Unacked(UINT64_MAX) <= sent_bytes);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);  // "invalid UTF-8" per input: just slow
    return true;
  }();
  (void)quiet;
  if (size == 0) return 0;
  switch (data[0] % 3) {
    case 0:
      PrimaryMessage(data + 1, size - 1);
      break;
    case 1:
      ReplicaHello(data + 1, size - 1);
      break;
    default:
      Acks(data + 1, size - 1);
  }
  return 0;
}
