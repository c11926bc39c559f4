// Helpers for storage tests: events, opening and reading a binlog back.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/common/temp_dir.h"
#include "proto/event.pb.h"
#include "storage/binlog.h"
#include "storage/binlog_reader.h"

namespace relaykv::testing {

inline v1::Event PutEvent(const std::string& key, const std::string& value) {
  v1::Event e;
  e.set_timestamp_us(1);
  auto* m = e.add_mutations();
  m->set_op(v1::Mutation::PUT);
  m->set_key(key);
  m->set_value(value);
  return e;
}

inline std::unique_ptr<Binlog> OpenBinlog(const std::filesystem::path& dir,
                                          uint64_t max_size = 1ull << 30, uint32_t sync = 1) {
  BinlogOptions o;
  o.dir = dir;
  o.max_binlog_size = max_size;
  o.sync_binlog = sync;
  auto b = Binlog::Open(o);
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? *std::move(b) : nullptr;
}

// Every visible event's seq, read from `from`.
inline std::vector<uint64_t> ReadSeqs(Binlog& b, uint64_t from = 1) {
  std::vector<uint64_t> seqs;
  auto reader = b.NewReader(from);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return seqs;
  for (;;) {
    auto r = (*reader)->Next();
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || !r->has_value()) break;
    seqs.push_back((*r)->event.gtid().seq());
  }
  return seqs;
}

inline std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void WriteFile(const std::filesystem::path& p, const std::string& data) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
}

}  // namespace relaykv::testing
