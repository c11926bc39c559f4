// How the state machine stores a key: one RocksDB entry whose value is the
// key's version — the GTID of the event that last changed it, 16 bytes
// (epoch, seq, host order) — followed by the value the user wrote. One entry
// rather than a value and a version in two column families: every applied
// PUT is one memtable insert, not two (the insert was ~14% of the commit
// path's CPU), and value and version can never disagree.
#pragma once

#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "relaykv/gtid.h"
#include "storage/show_key.h"

namespace relaykv::stored_value {

inline constexpr size_t kVersionBytes = 16;

// Also the form of the applied GTID in the meta column family.
inline std::string EncodeGtid(const Gtid& g) {
  std::string out(kVersionBytes, '\0');
  std::memcpy(out.data(), &g.epoch, 8);
  std::memcpy(out.data() + 8, &g.seq, 8);
  return out;
}

// nullopt unless `bytes` is exactly 16 bytes long.
inline std::optional<Gtid> DecodeGtid(std::string_view bytes) {
  if (bytes.size() != kVersionBytes) return std::nullopt;
  Gtid g;
  std::memcpy(&g.epoch, bytes.data(), 8);
  std::memcpy(&g.seq, bytes.data() + 8, 8);
  return g;
}

struct View {
  Gtid version;
  std::string_view value;  // points into the stored bytes
};

// nullopt if `stored` is too short to hold a version (a damaged entry:
// Damaged() says so).
inline std::optional<View> Decode(std::string_view stored) {
  if (stored.size() < kVersionBytes) return std::nullopt;
  View v;
  v.version = *DecodeGtid(stored.substr(0, kVersionBytes));
  v.value = stored.substr(kVersionBytes);
  return v;
}

// DATA_LOSS naming the key whose stored entry Decode refused, and where.
inline absl::Status Damaged(std::string_view where, std::string_view key, size_t stored_size) {
  return absl::DataLossError(std::string(where) + ": the stored entry of key " + ShowKey(key) +
                             " is " + std::to_string(stored_size) +
                             " bytes, shorter than its 16-byte version");
}

}  // namespace relaykv::stored_value
