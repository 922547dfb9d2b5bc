// SPDX-License-Identifier: Apache-2.0
// Argument checks of the C allocation API, as pure functions so that tests
// can cover every corner without allocating. Each mirrors glibc 2.36.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/core.h"

namespace heapguard::api {

// glibc refuses any request above PTRDIFF_MAX: pointer differences within
// a block must be representable.
inline constexpr size_t kMaxRequest = size_t(PTRDIFF_MAX);

// calloc(n, size) and reallocarray(p, n, size): false on overflow.
inline bool array_bytes(size_t n, size_t size, size_t* out) { return checked_mul(n, size, out); }

// posix_memalign: a power of two that is a multiple of sizeof(void*).
inline bool posix_alignment_ok(size_t align) { return is_pow2(align) && align % sizeof(void*) == 0; }

enum class AlignResult { Ok, Invalid };

// memalign, aligned_alloc (same in glibc 2.36): alignments above
// SIZE_MAX/2+1 are EINVAL; others that are not a power of two are rounded up.
inline AlignResult normalize_memalign(size_t align, size_t* out) {
  if (align > SIZE_MAX / 2 + 1) return AlignResult::Invalid;
  *out = align <= 1 ? 1 : next_pow2(align);
  return AlignResult::Ok;
}

// pvalloc rounds the size up to whole pages (0 becomes one page).
inline bool pvalloc_bytes(size_t n, size_t page, size_t* out) {
  if (n == 0) {
    *out = page;
    return true;
  }
  return checked_align_up(n, page, out);
}

}  // namespace heapguard::api
