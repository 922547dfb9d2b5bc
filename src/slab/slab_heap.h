// SPDX-License-Identifier: Apache-2.0
// SlabHeap: the central store of small blocks (layer slab). One huge
// reservation is split into one region per size class, so a pointer's class
// follows from its address alone; each region is carved into power-of-two
// slabs whose metadata (free, used and dirty bitmaps, list links) lives out
// of line in a separate reservation, out of reach of a linear heap overflow.
// Thread caches take and return slots in batches (refill/release) under the
// class's own lock; empty slabs beyond the retain budget are purged
// (MADV_DONTNEED) so memory does not ratchet up.
// Hardening (configure): randomized slot and slab choice, so an overflow or
// a use-after-free cannot aim at a predictable neighbour; guard slabs that
// fault between groups of slabs, so a linear overflow cannot run from one
// group into the next.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/core.h"
#include "ds/ds.h"
#include "platform/platform.h"
#include "slab/size_class_map.h"

namespace heapguard {

namespace slab_detail {
constexpr size_t max_slots_per_slab() {
  size_t most = 0;
  for (size_t c = 1; c < kNumClasses; ++c) most = kSizeClasses[c].slots > most ? kSizeClasses[c].slots : most;
  return most;
}
}  // namespace slab_detail

// Words per slot bitmap: sized by the fullest class (255 slots), not
// kMaxSlotsPerSlab, so three bitmaps take 96 bytes rather than 192.
inline constexpr size_t kSlabWords = (slab_detail::max_slots_per_slab() + 63) / 64;

// Per-slot state is exact under any slot order (randomized choice hands
// slots out anywhere in a slab), which a high-water mark would not be.
struct SlabMeta {
  uint64_t free_bits[kSlabWords];   // 1 = slot is free (in this slab, not in a cache)
  // 1 = handed out at least once, never cleared: after a purge zeroed the
  // headers, tells a double free from a pointer that never was a block.
  uint64_t used_bits[kSlabWords];
  // 1 = handed out since the slab's pages were fresh or last purged; a slot
  // with 0 still reads as zero, so calloc need not clear it.
  uint64_t dirty_bits[kSlabWords];
  uint32_t prev;                    // slab index + 1 within its list; 0 = none
  uint32_t next;
  uint16_t free_count;
  uint8_t list;                     // SlabList id, or kInFlight
  uint8_t reserved[5];
};
static_assert(sizeof(SlabMeta) == 3 * 8 * kSlabWords + 16);

struct SlabClassStats {
  uint64_t slots_out = 0;        // slots handed to caches or to the program
  uint64_t backed_slabs = 0;     // used slabs not purged (guard slabs excluded)
  uint64_t empty_slabs = 0;      // dirty empty slabs kept for reuse
  uint64_t free_slots = 0;       // free slots inside backed slabs
  uint64_t guard_slabs = 0;      // guard slabs whose pages fault
  uint64_t thin_guard_slabs = 0; // guard slabs left accessible (map budget spent): never handed out
};

// Layout hardening, fixed once at init (configure). The default is the fast
// mode: slots in address order, no guard slabs.
struct SlabConfig {
  // Random slot choice within a slab, random choice among the first few
  // partial slabs, each refilled batch shuffled: a heap overflow or
  // use-after-free cannot count on which block sits next to its target.
  bool randomize = false;
  // Every Kth slab of a class is a guard slab (never handed out, pages
  // fault), so a linear overflow cannot run from one group of slabs into
  // the next. K per class makes a group about 128 KiB (at least one slab).
  bool guards = false;
  // Seed of the per-class generators; 0 = from getrandom. A nonzero seed
  // makes the whole layout reproducible (fuzz mode).
  uint64_t seed = 0;
};

class SlabHeap {
 public:
  constexpr SlabHeap() = default;

  // Reserves the regions. False when the OS refuses even the smallest size.
  bool init();
  // Called once at init, before the first refill (before or after init()).
  void configure(const SlabConfig& config);

  HEAPGUARD_FAST_PATH bool contains(uintptr_t p) const { return p - base_ < span_; }
  // Precondition: contains(p).
  HEAPGUARD_FAST_PATH unsigned class_of(uintptr_t p) const { return unsigned((p - base_) >> region_shift_) + 1; }

  // True iff p is the block start of a slot in a slab that has been used
  // (guard slabs never are). Reads only out-of-line state and never touches
  // the block, so it cannot fault on a wild pointer or a guard slab.
  // Precondition: contains(p), c == class_of(p).
  HEAPGUARD_FAST_PATH bool is_block_start(uintptr_t p, unsigned c) const {
    const SizeClass& sc = kSizeClasses[c];
    const ClassBounds& bounds = bounds_[c];
    uintptr_t off = p - region_base(c);
    uintptr_t slab = off >> sc.slab_shift;
    if (slab >= bounds.used_slabs.load(std::memory_order_acquire)) return false;
    // Fast mode's mask is all ones, which no slab index below used_slabs reaches.
    if ((uint32_t(slab) & bounds.guard_mask) == bounds.guard_mask) return false;
    uintptr_t in_slab = (off & ((uintptr_t{1} << sc.slab_shift) - 1)) - (kSlabLeadIn + kHeaderSize);
    size_t k = slot_index(sc, in_slab);
    return in_slab < (uintptr_t{1} << sc.slab_shift) && k < sc.slots && k * sc.slot_size == in_slab;
  }

  // The start of the block whose slot contains p (p may point anywhere into
  // the slot), or 0 if p is in no slot (guard slabs included). Same
  // preconditions as is_block_start.
  uintptr_t block_containing(uintptr_t p, unsigned c) const;

  // Whether p lies in a guard slab of class c (faulting, thinned, or not yet
  // committed): lets a report say so. Precondition: contains(p),
  // c == class_of(p).
  bool in_guard_slab(uintptr_t p, unsigned c) const {
    uint32_t mask = bounds_[c].guard_mask;
    return (uint32_t((p - region_base(c)) >> kSizeClasses[c].slab_shift) & mask) == mask;
  }
  // Slabs per group including its trailing guard slab (slab indices
  // K-1, 2K-1, ... are guards); 0 without guards.
  uint32_t guard_period(unsigned c) const {
    return bounds_[c].guard_mask == kNoGuards ? 0 : bounds_[c].guard_mask + 1;
  }

  HEAPGUARD_FAST_PATH uintptr_t region_base(unsigned c) const { return base_ + (uintptr_t(c - 1) << region_shift_); }

  // Moves up to `want` free slots of class c into out[0..n). Fast mode:
  // lowest address last (caches pop from the end); randomized: in random
  // order. Returns n; 0 means out of memory.
  size_t refill(unsigned c, void** out, size_t want);

  // One free slot of class c, with whether its block still reads as zero
  // (never handed out since its slab's pages were fresh or purged), so
  // calloc need not touch those pages. nullptr when out of memory.
  void* take_one(unsigned c, bool* zeroed);

  // Returns slots (block starts of class c, each handed out and not yet
  // returned) to their slabs.
  void release(unsigned c, void* const* blocks, size_t n);

  // Whether the slot starting at p was ever handed out: tells a double free
  // of a block whose memory was purged from a pointer that never was a
  // block. Same preconditions as is_block_start, which must be true.
  bool slot_was_used(uintptr_t p, unsigned c) const;

  // Leak check: calls f(block_start) for every slot of class c that is out
  // of its slab (live, or in a thread cache or the quarantine: the caller
  // tells them apart by the header), in address order. Takes no lock and
  // writes nothing, so it is safe with every other thread stopped anywhere,
  // a class lock holder included: a slab mid-refill shows slots that are
  // out but not yet Allocated, which the header test drops. Touches only
  // out-of-line metadata and never a guard slab; f may read the headers.
  template <typename F>
  void for_each_slot_out(unsigned c, F&& f) const {
    const SizeClass& sc = kSizeClasses[c];
    if (meta_[c] == nullptr) return;
    uint32_t used = bounds_[c].used_slabs.load(std::memory_order_acquire);
    for (uint32_t i = 0; i < used; ++i) {
      if (is_guard_index(c, i)) continue;
      const SlabMeta& m = meta(c, i);
      uintptr_t first = slab_base(c, i) + kSlabLeadIn + kHeaderSize;
      for (size_t w = 0; w < kSlabWords; ++w) {
        uint64_t out = __atomic_load_n(&m.used_bits[w], __ATOMIC_RELAXED) & ~m.free_bits[w];
        while (out != 0) {
          size_t k = w * 64 + size_t(__builtin_ctzll(out));
          out &= out - 1;
          if (k >= sc.slots) break;
          f(first + k * sc.slot_size);
        }
      }
    }
  }

  // Purges every empty slab (malloc_trim). Returns the bytes purged.
  size_t purge_all_empty();

  SlabClassStats class_stats(unsigned c);
  uint64_t purged_bytes_total() const { return purged_total_.load(std::memory_order_relaxed); }
  size_t region_size() const { return size_t{1} << region_shift_; }

  void lock_all();
  void unlock_all();
  void reset_locks_after_fork();
  // New generator seeds (0 = from getrandom), for the child of fork when
  // the layout is not seeded by option: otherwise a child's layout, which a
  // crashing child can leak, predicts the parent's and its siblings'.
  // Single-threaded use only (the fork child before it returns).
  void reseed_after_fork(uint64_t seed);

  // Gives the reservations back; the heap must not be used afterwards.
  void unmap_for_testing();
  // Makes every later guard installation fail as if the map-count budget
  // were spent, so tests reach the thinning path.
  void fail_guard_installs_for_testing(bool fail) { guard_installs_fail_for_testing_ = fail; }

 private:
  struct SlabList {
    uint32_t head = 0;  // index + 1
    uint32_t tail = 0;
    uint32_t count = 0;
  };
  enum : uint8_t { kFull = 0, kPartial = 1, kEmpty = 2, kPurged = 3, kInFlight = 4 };
  static constexpr uint32_t kNoGuards = ~uint32_t{0};

  // What is_block_start reads, packed so the free fast path touches one line.
  struct ClassBounds {
    std::atomic<uint32_t> used_slabs{0};  // slab indices [0, used) carved, guard slabs included
    uint32_t guard_mask = kNoGuards;      // index & mask == mask: a guard slab
  };

  struct alignas(64) Central {
    pal::Lock lock;
    SlabList lists[3];  // indexed by kPartial/kEmpty/kPurged - kPartial
    uint32_t committed_slabs = 0;
    uint64_t slots_out = 0;
    Prng prng;  // layout choices of this class
  };
  static_assert(sizeof(Central) == 64, "one cache line per class");

  SlabMeta& meta(unsigned c, uint32_t index) const { return meta_[c][index]; }
  SlabList& slab_list(unsigned c, uint8_t list) { return central_[c].lists[list - kPartial]; }
  uintptr_t slab_base(unsigned c, uint32_t index) const {
    return region_base(c) + (uintptr_t(index) << kSizeClasses[c].slab_shift);
  }
  bool is_guard_index(unsigned c, uint32_t index) const {
    return (index & bounds_[c].guard_mask) == bounds_[c].guard_mask;
  }
  void push_front(unsigned c, uint8_t list, uint32_t index);
  void unlink(unsigned c, uint32_t index);
  bool take_slab(unsigned c, uint32_t* index);
  bool grow(unsigned c);
  // Commits slabs [committed_slabs, end) and their metadata, turning the
  // guard slabs among them into guards.
  bool commit_slabs(unsigned c, uint32_t end);
  // Returns the bytes actually purged (mlocked slabs fail and stay dirty).
  size_t purge_slabs(unsigned c, const uint32_t* indices, size_t n);
  // refill and take_one: up to `want` slots (address order, or shuffled when
  // randomized); first_zeroed, if given, says whether out[0] reads as zero.
  size_t take_slots(unsigned c, void** out, size_t want, bool* first_zeroed);
  // Up to `want` free slots of one slab, scanning its bitmap from slot
  // `start` and wrapping around.
  size_t take_from_slab(unsigned c, uint32_t index, unsigned start, void** out, size_t want, bool* first_zeroed);
  struct SlotRef {
    uint32_t slab;  // slab index within the class region
    size_t index;   // slot index within the slab
  };
  // Decodes a slot start (is_block_start true) into slab and slot indices.
  SlotRef locate_slot(uintptr_t p, unsigned c) const;
  size_t retain_slabs(unsigned c) const;
  // Guard slabs below slab index `used`.
  uint32_t guards_below(unsigned c, uint32_t used) const {
    return bounds_[c].guard_mask == kNoGuards ? 0 : used / (bounds_[c].guard_mask + 1);
  }

  uintptr_t base_ = 0;
  size_t span_ = 0;
  unsigned region_shift_ = 0;
  bool randomize_ = false;
  bool guard_installs_fail_for_testing_ = false;
  SlabMeta* meta_[kNumClasses] = {};
  size_t meta_reserved_[kNumClasses] = {};
  uintptr_t meta_base_ = 0;
  size_t meta_total_ = 0;
  ClassBounds bounds_[kNumClasses];
  Central central_[kNumClasses];
  uint32_t thin_guards_[kNumClasses] = {};  // guards left accessible (map budget spent); under the class lock
  std::atomic<uint64_t> purged_total_{0};
  std::atomic<bool> purge_failed_{false};
};

}  // namespace heapguard
