// Gtid (include/relaykv/gtid.h) and its protobuf form.
#pragma once

#include "proto/event.pb.h"
#include "relaykv/gtid.h"

namespace relaykv {

inline Gtid GtidFromProto(const v1::Gtid& p) { return {p.epoch(), p.seq()}; }
inline void GtidToProto(const Gtid& g, v1::Gtid* p) {
  p->set_epoch(g.epoch);
  p->set_seq(g.seq);
}

}  // namespace relaykv
