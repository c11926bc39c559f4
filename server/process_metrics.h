// Process metrics of the calling process, read from /proc/self at scrape
// time, under the names Prometheus client libraries use (process_*), so
// standard dashboards work: resident and virtual memory, open and maximum
// file descriptors, threads, CPU seconds and start time.
//
// Threads: any; reads files only, keeps no state. A value /proc does not
// give (not Linux, a read failure) is left out of the exposition.
#pragma once

#include "server/metrics.h"

namespace relaykv {

void AppendProcessMetrics(Exposition* out);

}  // namespace relaykv
