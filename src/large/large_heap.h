// SPDX-License-Identifier: Apache-2.0
// LargeHeap: blocks bigger than the largest size class (layer large), each in
// its own mapping, recorded in the RegionTable. With guards, every block sits
// between inaccessible pages: a linear overflow or underflow faults at the
// first byte past the mapping's window instead of reaching a neighbour, and
// with place_at_end the block ends at the trailing guard so the first byte
// past its 16-byte rounding faults. Freed mappings are kept, guards and all,
// in a small bounded cache for reuse (programs that cycle big buffers would
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
  size_t blocks = 0;             // live blocks, not counting quarantined ones
  size_t live_mapped_bytes = 0;  // windows of live blocks and resident slack (guards are address space only)
  size_t cached_bytes = 0;
  size_t quarantined_blocks = 0;
  size_t quarantined_bytes = 0;  // windows of quarantined blocks (still mapped and resident)
  size_t peak_blocks = 0;
  size_t peak_mapped_bytes = 0;
  size_t guard_splits = 0;  // kernel mappings added by mprotect guards (see pal::Pal::try_guard)
};

// How the large heap lays blocks out; fixed at init (see configure()).
struct LargeConfig {
  // Guard pages before and after every block (one page each; more with
  // randomize). Off: each block still has its own mapping, without guards.
  bool guards = true;
  // The block ends at the trailing guard (user + round_up(n, 16) == guard
  // for alignments up to 16; the slack left is the frontend's canary).
  // Off: the block starts the window, so realloc grows it with mremap and
  // never copies; the guard follows the page-rounded end.
  bool place_at_end = false;
  // 0 to 15 extra leading guard pages, drawn per fresh mapping, so the
  // distance between blocks is not predictable. Address space only.
  bool randomize = false;
  // Seed of that randomness; 0: from the OS.
  uint64_t seed = 0;
  // With place_at_end, what realloc does when the 16-byte rounding changes.
  // false: resize in place by whole pages, as front placement does (mremap
  // when the mapping must grow): no copy, but the slack after the block
  // becomes up to a page, which the frontend's canary has to cover until
  // the block is allocated afresh. true: move the block to a new one
  // against its guard, copying it (O(n) per realloc; a loop of small
  // appends becomes quadratic).
  bool exact_realloc = false;
};

class LargeHeap {
 public:
  // Resident memory kept for reuse: cached mappings and the unused parts
  // of live blocks' mappings. glibc keeps up to 64 MiB at the top of its
  // heap (twice its largest mmap threshold) for the same reason; this is
  // the same ceiling.
  static constexpr size_t kCacheBytes = size_t{64} << 20;
  static constexpr size_t kMaxRandomLeadPages = 15;

  // The default configuration is LargeConfig{} (guards on, front placement,
  // no randomization): what fast mode runs.
  constexpr LargeHeap() = default;

  // Once, at init, before the first allocation; not thread-safe.
  void configure(const LargeConfig& config);
  const LargeConfig& config() const { return config_; }

  // A block of `size` bytes aligned to `align` (a power of two), header
  // written with `origin`. zero: the caller needs zeroed memory (fresh
  // mappings already are). nullptr when the OS refuses.
  void* allocate(size_t size, size_t align, bool zero, Origin origin);

  // Looks p up in the table (the authority on what is a large block). A
  // quarantined block is reported with out->quarantined set: its pages,
  // header included, are inaccessible, so check that before reading them.
  bool lookup(uintptr_t user, LargeBlock* out) { return table_.find(user, out); }

  // For a fault at addr: the live or quarantined block whose mapping
  // (guards included) holds addr, so the fault handler can tell an
  // overflow past the trailing guard, an underflow into the lead guard and
  // a touch of a quarantined block. False when addr is in no block's
  // mapping. Takes no lock (safe in a signal handler) and touches no block
  // memory.
  bool find_fault(uintptr_t addr, LargeBlock* out) const;

  // The table of live and quarantined blocks (the leak check enumerates
  // it with the world stopped).
  const RegionTable& region_table() const { return table_; }

  // Marks a live block quarantined and makes its pages inaccessible (a read
  // or write after free faults; the bytes are kept). Reserve pages of a
  // bigger reused mapping are unmapped first, so a waiting block holds only
  // its own memory. False, with nothing changed, when user is not a live
  // block or is already quarantined: a racing double free. If the kernel
  // refuses the protection the block is still marked.
  // Precondition: the header was verified and, if wanted, rewritten.
  bool quarantine(uintptr_t user);

  // Releases a live or quarantined block. scrub: no later allocation may
  // read its bytes (they are cleared when the mapping is reused, which
  // measured cheaper than purging them here; an unmapped one is gone
  // anyway). False when user is not in the table.
  bool deallocate(uintptr_t user, bool scrub = false);

  // Resizes without copying bytes: in place, or by mremap (which may move
  // the block). nullptr, block untouched, when that is impossible: with
  // place_at_end and exact_realloc unless the rounded size is unchanged
  // (the block would have to move against the guard), or when the OS
  // refuses.
  void* resize_without_copy(uintptr_t user, size_t new_size);
  // resize_without_copy, else (place_at_end with exact_realloc) a new block,
  // the old one's bytes copied (up to the smaller requested size) and the
  // old one released scrubbed. nullptr (block untouched) when out of memory.
  void* reallocate(uintptr_t user, size_t new_size);

  // Bytes from user to the trailing guard (to the end of the window).
  static size_t usable_size(const LargeBlock& b) { return b.window_end - b.user; }

  // Unmaps the reuse cache (malloc_trim). Returns bytes released.
  size_t release_cache();

  LargeStats stats();
  uint64_t unmapped_bytes_total() const { return unmapped_total_.load(std::memory_order_relaxed); }

  void lock_all();
  void unlock_all();
  void reset_locks_after_fork();
  // Unmaps the cache and the table; every block must have been freed.
  void unmap_for_testing();
  // Scrub by purging at release instead of clearing at reuse (measurement).
  void set_scrub_by_purge_for_testing(bool purge) { scrub_by_purge_ = purge; }

 private:
  static constexpr size_t kCacheEntries = 32;

  // Window size and lead/trail guard sizes for a request.
  struct Shape {
    size_t window = 0;
    size_t lead = 0;   // minimum lead guard
    size_t trail = 0;  // trailing guard
  };
  bool shape_for(size_t size, size_t align, Shape* out) const;
  uintptr_t place(const LargeBlock& m, size_t size, size_t align) const;
  size_t random_lead_pages();

  bool map_fresh(const Shape& shape, size_t align, LargeBlock* out);
  void guard_fresh(LargeBlock* m);
  bool take_cached(const Shape& shape, bool zero, LargeBlock* out);
  void put_cached(const LargeBlock& m);
  bool reshape(LargeBlock* m, uintptr_t window_begin, uintptr_t window_end);
  bool grow_mapping(LargeBlock* m, size_t new_size, size_t window_end_offset);
  void keep_slack_in_budget(LargeBlock* m);
  void trim(LargeBlock* m);
  void unmap(const LargeBlock& m);
  void account_window(ptrdiff_t delta);
  void write_header(uintptr_t user, Origin origin);

  LargeConfig config_;
  std::atomic<uint64_t> rng_counter_{0};
  bool scrub_by_purge_ = false;
  RegionTable table_;
  pal::Lock cache_lock_;
  LargeBlock cache_[kCacheEntries] = {};
  size_t cache_count_ = 0;
  size_t cache_bytes_ = 0;    // dirty bytes of cached mappings (resident at most)
  size_t cache_windows_ = 0;  // their window bytes
  std::atomic<size_t> windows_{0};       // window bytes of every mapping
  std::atomic<size_t> peak_windows_{0};
  std::atomic<size_t> slack_bytes_{0};   // dirty bytes outside the windows of blocks in the table
  std::atomic<size_t> live_blocks_{0};
  std::atomic<size_t> peak_blocks_{0};
  std::atomic<uint64_t> unmapped_total_{0};
  std::atomic<size_t> splits_{0};
  std::atomic<size_t> quarantined_blocks_{0};
  std::atomic<size_t> quarantined_bytes_{0};
};

}  // namespace heapguard
