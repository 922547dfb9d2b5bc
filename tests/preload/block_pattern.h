// SPDX-License-Identifier: Apache-2.0
//
// A byte pattern written into test blocks and checked before they are freed,
// so that a block handed out twice, a stale large mapping or a stray write by
// the allocator shows up as a wrong byte. Large blocks are probed at both
// ends and every 512th byte in between, which keeps the tests' time in the
// allocator rather than in memset-like loops.

#ifndef HEAPGUARD_TESTS_PRELOAD_BLOCK_PATTERN_H
#define HEAPGUARD_TESTS_PRELOAD_BLOCK_PATTERN_H

#include <cstddef>

namespace heapguard::test {

inline constexpr std::size_t kProbeEdge = 4096;
inline constexpr std::size_t kProbeStride = 512;

inline char pattern_byte(std::size_t i, std::size_t seed) {
  return static_cast<char>(i * 5 + seed * 131 + (i >> 8));
}

// Calls f(i) for each probed offset of an n-byte block until f returns false.
template <typename F>
bool for_each_probe(std::size_t n, F f) {
  if (n <= 2 * kProbeEdge) {
    for (std::size_t i = 0; i < n; ++i) {
      if (!f(i)) return false;
    }
    return true;
  }
  for (std::size_t i = 0; i < kProbeEdge; ++i) {
    if (!f(i)) return false;
  }
  for (std::size_t i = kProbeEdge; i < n - kProbeEdge; i += kProbeStride) {
    if (!f(i)) return false;
  }
  for (std::size_t i = n - kProbeEdge; i < n; ++i) {
    if (!f(i)) return false;
  }
  return true;
}

inline void fill_block(void* p, std::size_t n, std::size_t seed) {
  auto* b = static_cast<char*>(p);
  for_each_probe(n, [&](std::size_t i) {
    b[i] = pattern_byte(i, seed);
    return true;
  });
}

inline bool block_intact(const void* p, std::size_t n, std::size_t seed) {
  const auto* b = static_cast<const char*>(p);
  return for_each_probe(n, [&](std::size_t i) { return b[i] == pattern_byte(i, seed); });
}

}  // namespace heapguard::test

#endif  // HEAPGUARD_TESTS_PRELOAD_BLOCK_PATTERN_H
