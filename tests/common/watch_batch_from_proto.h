// What Client::Watch delivered for a WatchResponse when it parsed answers
// with protobuf (before client/watch_decode.h): the oracle the hand-written
// decoder is checked against (tests/client/watch_decode_test.cc, and the
// fuzzer tests/fuzz/watch_decode_fuzzer.cc).
#pragma once

#include "proto/watch.pb.h"
#include "relaykv/watch.h"

namespace relaykv {

inline WatchBatch WatchBatchFromProto(const v1::WatchResponse& msg) {
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

}  // namespace relaykv
