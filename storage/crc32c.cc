#include "storage/crc32c.h"

#include <boost/crc.hpp>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace relaykv {
namespace {

// Polynomial 0x1EDC6F41, reflected, init and final xor all ones.
using Crc32cEngine = boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true>;

uint32_t Portable(std::string_view a, std::string_view b) {
  Crc32cEngine engine;
  engine.process_bytes(a.data(), a.size());
  engine.process_bytes(b.data(), b.size());
  return engine.checksum();
}

#if defined(__x86_64__)
// `state` is the un-inverted register, so calls chain over consecutive data.
__attribute__((target("sse4.2"))) uint64_t Sse42Update(uint64_t state, std::string_view d) {
  const char* p = d.data();
  size_t n = d.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    state = _mm_crc32_u64(state, word);
  }
  for (; n > 0; ++p, --n) {
    state = _mm_crc32_u8(static_cast<uint32_t>(state), static_cast<uint8_t>(*p));
  }
  return state;
}

const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
#endif

}  // namespace

uint32_t Crc32c(std::string_view a, std::string_view b) {
#if defined(__x86_64__)
  if (kHaveSse42) {
    uint64_t state = 0xFFFFFFFFu;
    state = Sse42Update(state, a);
    state = Sse42Update(state, b);
    return static_cast<uint32_t>(state) ^ 0xFFFFFFFFu;
  }
#endif
  return Portable(a, b);
}

}  // namespace relaykv
