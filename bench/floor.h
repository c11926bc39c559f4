// The machine's physical floor for a commit, measured on the spot:
// fdatasync of a small append on the data dir's file system, and one gRPC
// streaming round trip over loopback. Also, for information, fdatasync of a
// small write into space already allocated (no size change to journal),
// which is what relaykv's preallocated binlog segments pay. With TLS files,
// the same round trip over mutual TLS: what gRPC and OpenSSL alone add to
// every hop of a commit (a semi-sync commit crosses four), no relaykv code.
#pragma once

#include <filesystem>

#include "relaykv/tls.h"

namespace relaykv::bench {

struct Floor {
  double fdatasync_p50_us = 0;
  double fdatasync_prealloc_p50_us = 0;
  double grpc_rtt_p50_us = 0;
  double grpc_tls_rtt_p50_us = 0;  // 0: not measured (no TLS files)
  // A semi-sync commit: primary fdatasync + replica fdatasync + round trip.
  double semisync_floor_us() const { return 2 * fdatasync_p50_us + grpc_rtt_p50_us; }
};

// `tls` (enabled, with CA, certificate and key): also the mTLS round trip.
Floor MeasureFloor(const std::filesystem::path& dir, int samples = 500,
                   const TlsOptions& tls = TlsOptions{});

// The lower of each part of two floors. On a shared VM noise only ever adds
// to a floor (a slow sync, a vCPU that was asleep), so the lower of the
// figures measured right before and right after a run is the better estimate
// of the floor during it — and the stricter one to compare against.
Floor LowerFloor(const Floor& a, const Floor& b);

}  // namespace relaykv::bench
