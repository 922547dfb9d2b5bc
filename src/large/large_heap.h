// SPDX-License-Identifier: Apache-2.0
// LargeHeap: blocks bigger than the largest size class (layer large), each in
// its own mapping, recorded in the RegionTable. Freed mappings are kept in a
// small bounded cache for reuse (programs that cycle big buffers would
// otherwise pay mmap, page faults and munmap every time) and unmapped past
// that bound, so memory does not ratchet up. Growth uses mremap, which moves
// page tables instead of copying bytes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "large/region_table.h"
#include "platform/platform.h"
#include "slab/slab.h"

namespace heapguard {

struct LargeStats {
  size_t blocks = 0;
  size_t live_mapped_bytes = 0;
  size_t cached_bytes = 0;
  size_t peak_blocks = 0;
  size_t peak_mapped_bytes = 0;
};

class LargeHeap {
 public:
  // Resident memory kept for reuse: freed mappings plus unused tails of live
  // blocks. glibc keeps up to 64 MiB at the top of its heap (twice its
  // largest mmap threshold) for the same reason; this is the same ceiling.
  static constexpr size_t kCacheBytes = size_t{64} << 20;

  constexpr LargeHeap() = default;

  // A block of `size` bytes aligned to `align` (a power of two), header
  // written with `origin`. zero: the caller needs zeroed memory (fresh
  // mappings already are). nullptr when the OS refuses.
  void* allocate(size_t size, size_t align, bool zero, Origin origin);

  // Looks p up in the table (the authority on what is a large block).
  bool lookup(uintptr_t user, LargeBlock* out) { return table_.find(user, out); }

  // Precondition: lookup(user) succeeded and the header was verified.
  void deallocate(uintptr_t user);

  // Resizes in place or by mremap. nullptr (block untouched) on failure.
  void* reallocate(uintptr_t user, size_t new_size);

  static size_t usable_size(const LargeBlock& b) { return b.map_base + b.map_size - b.user; }

  // Unmaps the reuse cache (malloc_trim). Returns bytes released.
  size_t release_cache();

  LargeStats stats();
  uint64_t unmapped_bytes_total() const { return unmapped_total_.load(std::memory_order_relaxed); }

  void lock_all();
  void unlock_all();
  void reset_locks_after_fork();
  // Unmaps the cache and the table; every block must have been freed.
  void unmap_for_testing();

 private:
  struct CachedMapping {
    uintptr_t base;
    size_t size;
  };
  static constexpr size_t kCacheEntries = 32;

  bool take_cached(size_t need, CachedMapping* out);
  void put_cached(uintptr_t base, size_t size);
  void unmap(uintptr_t base, size_t size);
  void account_map(size_t bytes);
  size_t fit_slack(uintptr_t base, size_t map_size, size_t need);
  static size_t slack_of(const LargeBlock& b);
  size_t cached_bytes_relaxed() const;

  RegionTable table_;
  pal::Lock cache_lock_;
  CachedMapping cache_[kCacheEntries] = {};
  size_t cache_count_ = 0;
  size_t cache_bytes_ = 0;
  std::atomic<size_t> live_mapped_{0};
  std::atomic<size_t> peak_mapped_{0};
  std::atomic<size_t> live_blocks_{0};
  std::atomic<size_t> peak_blocks_{0};
  std::atomic<uint64_t> unmapped_total_{0};
  std::atomic<size_t> slack_bytes_{0};
};

}  // namespace heapguard
