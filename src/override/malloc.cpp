// SPDX-License-Identifier: Apache-2.0
// The C allocation API: one-line forwards into the Allocator. Every glibc
// entry point that hands out or takes back heap memory is here (including
// the __libc_* aliases and long-removed cfree), because a program must never
// free through one allocator what another allocated.
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include <new>

#include "frontend/frontend.h"
#include "heapguard/heapguard.h"
#include "override/api_checks.h"
#include "platform/platform.h"

using heapguard::g_allocator;
using heapguard::ApiCall;
using heapguard::Origin;

extern "C" {

HEAPGUARD_EXPORT void* malloc(size_t n) noexcept { return g_allocator.allocate(n, Origin::Malloc); }

HEAPGUARD_EXPORT void free(void* p) noexcept { g_allocator.deallocate(p); }

HEAPGUARD_EXPORT void cfree(void* p) noexcept { g_allocator.deallocate(p); }

HEAPGUARD_EXPORT void* calloc(size_t n, size_t size) noexcept {
  size_t total;
  if (!heapguard::api::array_bytes(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return g_allocator.allocate_zeroed(total);
}

HEAPGUARD_EXPORT void* realloc(void* p, size_t n) noexcept { return g_allocator.reallocate(p, n); }

HEAPGUARD_EXPORT void* reallocarray(void* p, size_t n, size_t size) noexcept {
  size_t total;
  if (!heapguard::api::array_bytes(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return g_allocator.reallocate(p, total);
}

HEAPGUARD_EXPORT size_t malloc_usable_size(void* p) noexcept { return g_allocator.usable_size(p); }

// C23. The size and alignment are the program's promise; the hardening
// layer checks them against the header.
HEAPGUARD_EXPORT void free_sized(void* p, size_t n) noexcept { g_allocator.deallocate(p, ApiCall::FreeSized, n); }

HEAPGUARD_EXPORT void free_aligned_sized(void* p, size_t, size_t n) noexcept {
  g_allocator.deallocate(p, ApiCall::FreeSized, n);
}

HEAPGUARD_EXPORT int malloc_trim(size_t) noexcept { return g_allocator.trim() != 0 ? 1 : 0; }

// Return values follow glibc 2.36's __libc_mallopt, not the man page:
// unknown parameters are ignored and report success.
HEAPGUARD_EXPORT int mallopt(int param, int value) noexcept {
  switch (param) {
    case M_TRIM_THRESHOLD:
      // glibc's threshold is the free memory kept before trimming; ours is
      // kept per size class, so the same number bounds each class. glibc
      // reads a negative value as a huge size_t: keep everything.
      heapguard::set_retain_kb(value < 0 ? INT32_MAX : value / 1024);
      return 1;
    case M_MXFAST:
      // glibc rejects values above MAX_FAST_SIZE (160 on 64-bit).
      return value >= 0 && value <= 160 ? 1 : 0;
    default:
      // M_MMAP_THRESHOLD (glibc 2.36 takes any value), M_TOP_PAD,
      // M_MMAP_MAX, M_CHECK_ACTION, M_PERTURB, M_ARENA_TEST, M_ARENA_MAX and
      // unknown numbers: tuning of glibc's arenas and mmap threshold.
      // heapguard has no arenas and a fixed large-block threshold, so they
      // are accepted with no effect (docs/api.md).
      return 1;
  }
}

HEAPGUARD_EXPORT struct mallinfo2 mallinfo2() noexcept {
  heapguard::HeapFigures f = g_allocator.figures();
  struct mallinfo2 mi = {};
  mi.arena = f.small_backed_bytes;
  size_t free_slots = 0;
  for (const auto& pc : f.per_class) free_slots += pc.cached + pc.free;
  mi.ordblks = free_slots;
  mi.hblks = f.large.blocks;
  mi.hblkhd = f.large.live_mapped_bytes;
  mi.fsmblks = f.small_cached_bytes;
  mi.uordblks = f.small_in_use_bytes;
  mi.fordblks = f.small_backed_bytes > f.small_in_use_bytes ? f.small_backed_bytes - f.small_in_use_bytes : 0;
  mi.keepcost = f.small_empty_slab_bytes;
  return mi;
}

HEAPGUARD_EXPORT struct mallinfo mallinfo() noexcept {
  struct mallinfo2 m2 = mallinfo2();
  struct mallinfo mi = {};
  // glibc truncates to int the same way.
  mi.arena = int(m2.arena);
  mi.ordblks = int(m2.ordblks);
  mi.hblks = int(m2.hblks);
  mi.hblkhd = int(m2.hblkhd);
  mi.fsmblks = int(m2.fsmblks);
  mi.uordblks = int(m2.uordblks);
  mi.fordblks = int(m2.fordblks);
  mi.keepcost = int(m2.keepcost);
  return mi;
}

HEAPGUARD_EXPORT void malloc_stats() noexcept {
  heapguard::format_malloc_stats(
      g_allocator.figures(), [](void*, const char* s, size_t n) { heapguard::pal::Pal::write_all(2, s, n); }, nullptr);
}

HEAPGUARD_EXPORT int malloc_info(int options, FILE* stream) noexcept {
  // glibc returns the error number itself and leaves errno alone.
  if (options != 0) return EINVAL;
  heapguard::format_malloc_info(
      g_allocator.figures(), [](void* ctx, const char* s, size_t n) { heapguard::pal::Pal::write_stream(ctx, s, n); },
      stream);
  return 0;
}

HEAPGUARD_EXPORT void* __libc_malloc(size_t n) noexcept { return malloc(n); }
HEAPGUARD_EXPORT void __libc_free(void* p) noexcept { free(p); }
HEAPGUARD_EXPORT void* __libc_calloc(size_t n, size_t size) noexcept { return calloc(n, size); }
HEAPGUARD_EXPORT void* __libc_realloc(void* p, size_t n) noexcept { return realloc(p, n); }

}  // extern "C"

// A program that links libheapguard.a "first" (without --whole-archive)
// pulls in only the objects it references, so libc's own calls to, say,
// posix_memalign would reach glibc's allocator and its blocks would later be
// freed here. Referencing every entry point from this object, which any
// such program links, brings in the whole API.
namespace {
using AnyFn = void (*)();
[[gnu::used]] const AnyFn kLinkAnchors[] = {
    reinterpret_cast<AnyFn>(&posix_memalign), reinterpret_cast<AnyFn>(&memalign),
    reinterpret_cast<AnyFn>(&aligned_alloc),  reinterpret_cast<AnyFn>(&valloc),
    reinterpret_cast<AnyFn>(&pvalloc),        reinterpret_cast<AnyFn>(&heapguard_version),
    reinterpret_cast<AnyFn>(static_cast<void* (*)(size_t)>(&operator new)),
    reinterpret_cast<AnyFn>(static_cast<void (*)(void*) noexcept>(&operator delete)),
};
}  // namespace
