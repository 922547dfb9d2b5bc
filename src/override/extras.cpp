// SPDX-License-Identifier: Apache-2.0
// The heapguard_* extras of include/heapguard/heapguard.h.
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
