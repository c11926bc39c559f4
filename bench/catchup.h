// The replication catch-up benchmark: a replica that is `events` behind
// joins a primary; how fast does it catch up (events/s, MB/s of binlog),
// next to the disk's sequential write rate, and how much memory does the
// primary's sender use meanwhile (peak RSS)?
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace relaykv::bench {

struct CatchupResult {
  uint64_t events = 0;
  uint64_t binlog_bytes = 0;
  double seconds = 0;
  double events_per_s = 0;
  double mb_per_s = 0;
  double disk_seq_write_mb_per_s = 0;
  long primary_rss_before_kb = 0;
  long primary_rss_peak_kb = 0;
};

// Builds a primary data dir holding `events` events (written straight into
// its binlog), starts it and a fresh replica, and times the catch-up.
CatchupResult RunCatchup(const std::string& relaykvd, const std::string& work_dir, uint64_t events,
                         size_t value_size);
void PrintCatchup(const CatchupResult& r, std::ostream& out);

}  // namespace relaykv::bench
