// SPDX-License-Identifier: Apache-2.0
// Byte patterns for the api and stress tests. Every byte depends on a seed and on its
// offset, so a block that was overwritten by a neighbour, handed out twice, or moved
// by realloc without its contents shows up at the first differing byte.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heapguard::test {

// The offset term keeps the pattern from repeating every 256 bytes, so a copy that
// is shifted by a multiple of 256 (a wrong realloc offset) is still caught.
inline unsigned char pattern_byte(unsigned seed, size_t i) {
  return static_cast<unsigned char>(seed * 167u + i + (i >> 8) * 7u);
}

inline void fill_pattern(void* p, size_t n, unsigned seed) {
  auto* b = static_cast<unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) b[i] = pattern_byte(seed, i);
}

// Returns n when all n bytes match, else the offset of the first mismatch.
inline size_t first_mismatch(const void* p, size_t n, unsigned seed) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != pattern_byte(seed, i)) return i;
  }
  return n;
}

inline bool all_zero(const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != 0) return false;
  }
  return true;
}

inline bool is_aligned(const void* p, size_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

// Keeps the compiler from proving a pointer unused and deleting the allocation
// that produced it (GCC pairs new/delete and malloc/free away otherwise).
inline void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

// Sizes that no allocator can satisfy, read through a volatile so that the compiler
// neither warns about nor folds the call.
inline size_t opaque_size(size_t n) {
  volatile size_t v = n;
  return v;
}

// A pointer the compiler cannot track, for calls that legitimately keep a block alive
// on failure (realloc family) where -Wuse-after-free would otherwise misfire.
template <typename T>
T* opaque_ptr(T* p) {
  T* volatile v = p;
  return v;
}

}  // namespace heapguard::test
