// Arbitrary bytes as the last binlog segment, scanned as recovery scans it
// at open (ScanLastSegment: every record CRC-checked, torn tail or
// corruption decided). It must return a value, never crash, hang or
// allocate beyond the input; and what it keeps must be a binlog that opens:
// the prefix [0, valid_end) it truncates to scans again to the same end and
// events, as the next open will.
//
// Input: a segment file. One whose header does not decode gets a good one
// (first_seq 1) prepended, so the fuzzer reaches the records without
// forging a header CRC; the header alone goes through DecodeSegmentHeader
// and UnsupportedSegmentVersion as well.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "spdlog/spdlog.h"
#include "storage/binlog_format.h"
#include "storage/binlog_segments.h"
#include "storage/record.h"

namespace {

// Violations of a documented property: a crash the fuzzer reports.
void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);  // truncation warnings, per input
    return true;
  }();
  (void)quiet;
  using relaykv::binlog_format::kSegmentHeaderSize;
  const std::string_view input(reinterpret_cast<const char*>(bytes), size);

  uint64_t first_seq = 0;
  uint32_t prev_epoch = 0;
  std::string segment;
  if (relaykv::DecodeSegmentHeader(input, &first_seq, &prev_epoch)) {
    segment.assign(input);
  } else {
    (void)relaykv::UnsupportedSegmentVersion(input);
    first_seq = 1;
    // Odd-sized inputs get a keyed (format 3, whitened) header: both
    // decoding paths are fuzzed.
    segment = relaykv::EncodeSegmentHeader(first_seq, 0, size % 2 == 1 ? 0x5eed5eed : 0) +
              std::string(input);
  }

  for (const bool unsynced : {false, true}) {
    auto scan = relaykv::ScanLastSegment("fuzz/binlog.000001", segment, first_seq, unsynced);
    if (!scan.ok()) continue;  // DATA_LOSS naming file and offset: fine
    Check(scan->valid_end >= kSegmentHeaderSize && scan->valid_end <= segment.size());
    auto again = relaykv::ScanLastSegment("fuzz/binlog.000001",
                                          std::string_view(segment).substr(0, scan->valid_end),
                                          first_seq, unsynced);
    Check(again.ok());
    Check(again->valid_end == scan->valid_end && again->events == scan->events &&
          again->last == scan->last && again->dropped_events == 0);
  }
  return 0;
}
