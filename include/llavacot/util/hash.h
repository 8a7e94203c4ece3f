// Small non-cryptographic hashes shared by the code that derives seeds and cache keys: FNV-1a over bytes and
// the splitmix64 finaliser.
#pragma once

#include <cstdint>
#include <string_view>

namespace llavacot::util {

inline constexpr uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ULL;

/// FNV-1a (64-bit) of `bytes`, continuing from `h` (the offset basis for a fresh hash).
inline uint64_t fnv1a64(std::string_view bytes, uint64_t h = kFnvOffsetBasis) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

/// The splitmix64 finaliser: a well-mixed 64-bit value from any 64-bit input.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace llavacot::util
