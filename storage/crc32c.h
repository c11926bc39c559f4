// CRC32C (Castagnoli), the checksum of binlog records and segment headers.
// Uses the CPU's crc32 instruction (SSE4.2) when it has one — Boost.CRC's
// byte-table version cost a third of the binlog writer's instructions — and
// Boost.CRC otherwise. Both give the same values.
#pragma once

#include <cstdint>
#include <string_view>

namespace relaykv {

// CRC32C of `a` followed by `b`.
uint32_t Crc32c(std::string_view a, std::string_view b = {});

}  // namespace relaykv
