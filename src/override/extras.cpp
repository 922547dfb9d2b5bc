// SPDX-License-Identifier: Apache-2.0
// The heapguard_* extras of include/heapguard/heapguard.h, and the library's
// constructor and destructor (fork handlers once libc is up; statistics at
// exit).
#include "heapguard/heapguard.h"

#include "frontend/frontend.h"
#include "platform/platform.h"

using heapguard::g_allocator;

extern "C" {

HEAPGUARD_EXPORT const char* heapguard_version(void) { return HEAPGUARD_VERSION_STRING; }

HEAPGUARD_EXPORT const char* heapguard_mode(void) { return heapguard::mode_name(g_allocator.mode()); }

HEAPGUARD_EXPORT int heapguard_get_stats(struct heapguard_stats* out) {
  if (out == nullptr) return -1;
  heapguard::HeapFigures f = g_allocator.figures();
  out->allocated_bytes = f.small_usable_bytes + f.large.live_mapped_bytes;
  out->live_blocks = f.small_live_blocks + f.large.blocks;
  out->small_mapped_bytes = f.small_backed_bytes;
  out->large_mapped_bytes = f.large.live_mapped_bytes + f.large.cached_bytes;
  out->cached_bytes = f.small_cached_bytes + f.small_empty_slab_bytes + f.large.cached_bytes;
  out->purged_bytes_total = f.released_bytes_total;
  out->thread_caches = f.thread_caches;
  return 0;
}

HEAPGUARD_EXPORT int heapguard_owns(const void* p) { return g_allocator.owns(p) ? 1 : 0; }

}  // extern "C"

namespace {

__attribute__((constructor)) void heapguard_library_init() { g_allocator.after_init(); }

__attribute__((destructor)) void heapguard_library_fini() {
  const heapguard::Options& o = heapguard::options();
  if (!o.print_stats && o.verbosity < 2) return;
  heapguard::MessageBuilder m;
  m.str("heap statistics at exit (mode ").str(heapguard::mode_name(o.mode)).ch(')');
  heapguard::print_line(m);
  heapguard::format_malloc_stats(
      g_allocator.figures(), [](void*, const char* s, size_t n) { heapguard::pal::Pal::write_all(2, s, n); }, nullptr);
}

}  // namespace
