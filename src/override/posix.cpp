// SPDX-License-Identifier: Apache-2.0
// The aligned-allocation API (posix_memalign, memalign, aligned_alloc,
// valloc, pvalloc and their __libc_ aliases), with glibc 2.36's argument
// rules from api_checks.h.
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include "frontend/frontend.h"
#include "override/api_checks.h"
#include "platform/platform.h"

using heapguard::g_allocator;
using heapguard::Origin;
namespace api = heapguard::api;

namespace {

void* memalign_impl(size_t align, size_t n) {
  size_t normalized;
  if (api::normalize_memalign(align, &normalized) != api::AlignResult::Ok) {
    errno = EINVAL;
    return nullptr;
  }
  if (n > api::kMaxRequest) {
    errno = ENOMEM;
    return nullptr;
  }
  return g_allocator.allocate_aligned(normalized, n, Origin::Malloc);
}

}  // namespace

extern "C" {

HEAPGUARD_EXPORT int posix_memalign(void** out, size_t align, size_t n) noexcept {
  if (!api::posix_alignment_ok(align)) return EINVAL;
  // posix_memalign reports through its return value; errno stays as it was.
  heapguard::pal::ScopedErrno keep;
  if (n > api::kMaxRequest) return ENOMEM;
  void* p = g_allocator.allocate_aligned(align, n, Origin::Malloc);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

HEAPGUARD_EXPORT void* memalign(size_t align, size_t n) noexcept { return memalign_impl(align, n); }

HEAPGUARD_EXPORT void* aligned_alloc(size_t align, size_t n) noexcept { return memalign_impl(align, n); }

HEAPGUARD_EXPORT void* valloc(size_t n) noexcept { return memalign_impl(heapguard::pal::Pal::page_size(), n); }

HEAPGUARD_EXPORT void* pvalloc(size_t n) noexcept {
  size_t page = heapguard::pal::Pal::page_size();
  size_t rounded;
  if (!api::pvalloc_bytes(n, page, &rounded)) {
    errno = ENOMEM;
    return nullptr;
  }
  return memalign_impl(page, rounded);
}

HEAPGUARD_EXPORT void* __libc_memalign(size_t align, size_t n) noexcept { return memalign_impl(align, n); }
HEAPGUARD_EXPORT void* __libc_valloc(size_t n) noexcept { return valloc(n); }
HEAPGUARD_EXPORT void* __libc_pvalloc(size_t n) noexcept { return pvalloc(n); }

}  // extern "C"
