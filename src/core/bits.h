// SPDX-License-Identifier: Apache-2.0
// Bit operations and overflow-checked arithmetic. Allocation sizes come from
// the program and may be hostile, so every size computation that can wrap
// goes through a checked helper here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heapguard {

constexpr bool is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

constexpr size_t align_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }

constexpr uintptr_t align_down(uintptr_t x, size_t a) { return x & ~(uintptr_t(a) - 1); }

constexpr unsigned log2_floor(size_t x) { return 63u - unsigned(__builtin_clzll(x)); }

constexpr unsigned log2_ceil(size_t x) { return x <= 1 ? 0 : log2_floor(x - 1) + 1; }

constexpr size_t next_pow2(size_t x) { return size_t{1} << log2_ceil(x); }

// Returns false instead of wrapping.
inline bool checked_mul(size_t a, size_t b, size_t* out) { return !__builtin_mul_overflow(a, b, out); }

inline bool checked_add(size_t a, size_t b, size_t* out) { return !__builtin_add_overflow(a, b, out); }

// Rounds x up to a multiple of the power of two a, failing instead of wrapping.
inline bool checked_align_up(size_t x, size_t a, size_t* out) {
  size_t sum;
  if (!checked_add(x, a - 1, &sum)) return false;
  *out = sum & ~(a - 1);
  return true;
}

}  // namespace heapguard
