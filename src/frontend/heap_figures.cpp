// SPDX-License-Identifier: Apache-2.0
// Heap figures for mallinfo, malloc_stats, malloc_info and heapguard_get_stats,
// and malloc_trim. Figures are gathered class by class under each class's
// lock; other threads' cache counts are read without their cooperation, so
// the totals are exact only when no other thread allocates meanwhile.
#include "frontend/allocator.h"

namespace heapguard {

HeapFigures Allocator::figures() {
  HeapFigures f;
  if (!ensure_ready()) return f;
  size_t cached[kNumClasses] = {};
  int64_t quarantined[kNumClasses] = {};
  {
    pal::LockGuard guard(registry_lock_);
    for (ListNode* n = registry_.front(); n != nullptr; n = n->next) {
      ThreadCache* tc = ThreadCache::from_node(n);
      for (unsigned c = 1; c < kNumClasses; ++c) {
        cached[c] += __atomic_load_n(&tc->bins[c].count, __ATOMIC_RELAXED);
        quarantined[c] += __atomic_load_n(&tc->quarantined[c], __ATOMIC_RELAXED);
      }
    }
    f.thread_caches = live_caches_;
  }
  for (unsigned c = 1; c < kNumClasses; ++c) {
    const SizeClass& sc = kSizeClasses[c];
    SlabClassStats s = slabs_.class_stats(c);
    int64_t q = quarantined[c] + quarantined_elsewhere_[c].load(std::memory_order_relaxed);
    size_t in_quarantine = q > 0 ? size_t(q) : 0;
    size_t out = s.slots_out >= cached[c] ? s.slots_out - cached[c] : 0;
    size_t live = out >= in_quarantine ? out - in_quarantine : 0;
    f.small_quarantined_blocks += in_quarantine;
    f.small_quarantined_bytes += in_quarantine * sc.slot_size;
    f.per_class[c] = {sc.slot_size, live, cached[c], s.free_slots, in_quarantine};
    f.small_live_blocks += live;
    f.small_in_use_bytes += live * sc.slot_size;
    f.small_usable_bytes += live * sc.usable;
    f.small_cached_bytes += cached[c] * sc.slot_size;
    f.small_free_bytes += s.free_slots * sc.slot_size;
    f.small_backed_bytes += s.backed_slabs << sc.slab_shift;
    f.small_empty_slab_bytes += s.empty_slabs << sc.slab_shift;
  }
  f.large = large_.stats();
  f.released_bytes_total = slabs_.purged_bytes_total() + large_.unmapped_bytes_total();
  f.metadata_bytes = arena_.mapped_bytes();
  if (guarded_.enabled()) f.guarded_live_blocks = guarded_.stats().live;
  return f;
}

size_t Allocator::trim() {
  if (!ensure_ready()) return 0;
  // The calling thread's own cached slots go back first, so their slabs can
  // empty and be purged too.
  ThreadCache* tc = t_cache;
  // Quarantined blocks leave first (each verified on the way), so their
  // slots can join the purge; tests use this to force the checks.
  drain_quarantine_checked();
  if (tc != &g_unset_cache && tc != &g_torn_down_cache) flush_all(tc);
  return slabs_.purge_all_empty() + large_.release_cache();
}

}  // namespace heapguard
