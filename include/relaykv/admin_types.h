// Types of the administration calls shared by relaykv::Node (embedded) and
// relaykv::Client (over the network), so both speak the same vocabulary.
#pragma once

#include <cstdint>
#include <string>

namespace relaykv {

// A row of SHOW BINARY LOGS.
struct BinaryLogInfo {
  std::string name;
  uint64_t size_bytes = 0;
  uint64_t first_seq = 0;
};

// The threads STOP/START SLAVE [IO_THREAD | SQL_THREAD] acts on.
enum class ReplicaThreads { kBoth, kIo, kSql };

}  // namespace relaykv
