// SPDX-License-Identifier: Apache-2.0
// SlabHeap: the central store of small blocks (layer slab). One huge
// reservation is split into one region per size class, so a pointer's class
// follows from its address alone; each region is carved into power-of-two
// slabs whose metadata (a free-slot bitmap and list links) lives out of line
// in a separate reservation, out of reach of a linear heap overflow.
// Thread caches take and return slots in batches (refill/release) under the
// class's own lock; empty slabs beyond the retain budget are purged
// (MADV_DONTNEED) so memory does not ratchet up.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/core.h"
#include "platform/platform.h"
#include "slab/size_class_map.h"

namespace heapguard {

struct SlabMeta {
  uint64_t free_bits[kMaxSlotsPerSlab / 64];  // 1 = slot is free (in this slab, not in a cache)
  uint32_t prev;                              // slab index + 1 within its list; 0 = none
  uint32_t next;
  uint16_t free_count;
  uint16_t high_water;                        // slots [0, high_water) have been handed out at least once
  uint16_t zero_from;                         // slots [zero_from, slots) still read as zero (fresh or purged pages)
  uint8_t list;                               // SlabList id, or kInFlight
  uint8_t reserved[1];
};
static_assert(sizeof(SlabMeta) == 80);

struct SlabClassStats {
  uint64_t slots_out = 0;        // slots handed to caches or to the program
  uint64_t backed_slabs = 0;     // used slabs not purged
  uint64_t empty_slabs = 0;      // dirty empty slabs kept for reuse
  uint64_t free_slots = 0;       // free slots inside backed slabs
};

class SlabHeap {
 public:
  constexpr SlabHeap() = default;

  // Reserves the regions. False when the OS refuses even the smallest size.
  bool init();

  HEAPGUARD_FAST_PATH bool contains(uintptr_t p) const { return p - base_ < span_; }
  // Precondition: contains(p).
  HEAPGUARD_FAST_PATH unsigned class_of(uintptr_t p) const { return unsigned((p - base_) >> region_shift_) + 1; }

  // True iff p is the block start of a slot in a slab that has been used.
  // Reads only out-of-line state and never touches the block, so it cannot
  // fault on a wild pointer. Precondition: contains(p), c == class_of(p).
  HEAPGUARD_FAST_PATH bool is_block_start(uintptr_t p, unsigned c) const {
    const SizeClass& sc = kSizeClasses[c];
    uintptr_t off = p - region_base(c);
    if ((off >> sc.slab_shift) >= used_slabs_[c].load(std::memory_order_acquire)) return false;
    uintptr_t in_slab = (off & ((uintptr_t{1} << sc.slab_shift) - 1)) - (kSlabLeadIn + kHeaderSize);
    size_t k = slot_index(sc, in_slab);
    return in_slab < (uintptr_t{1} << sc.slab_shift) && k < sc.slots && k * sc.slot_size == in_slab;
  }

  // The start of the block whose slot contains p (p may point anywhere into
  // the slot), or 0 if p is in no slot. Same preconditions as is_block_start.
  uintptr_t block_containing(uintptr_t p, unsigned c) const;

  HEAPGUARD_FAST_PATH uintptr_t region_base(unsigned c) const { return base_ + (uintptr_t(c - 1) << region_shift_); }

  // Moves up to `want` free slots of class c into out[0..n), lowest address
  // last (caches pop from the end). Returns n; 0 means out of memory.
  size_t refill(unsigned c, void** out, size_t want);

  // One free slot of class c, with whether its block still reads as zero
  // (never written since its slab's pages were fresh or purged), so calloc
  // need not touch those pages. nullptr when out of memory.
  void* take_one(unsigned c, bool* zeroed);

  // Returns slots (block starts of class c, each handed out and not yet
  // returned) to their slabs.
  void release(unsigned c, void* const* blocks, size_t n);

  // Whether the slot starting at p was ever handed out: tells a double free
  // of a block whose memory was purged from a pointer that never was a
  // block. Same preconditions as is_block_start, which must be true.
  bool slot_was_used(uintptr_t p, unsigned c) const;

  // Purges every empty slab (malloc_trim). Returns the bytes purged.
  size_t purge_all_empty();

  SlabClassStats class_stats(unsigned c);
  uint64_t purged_bytes_total() const { return purged_total_.load(std::memory_order_relaxed); }
  size_t region_size() const { return size_t{1} << region_shift_; }

  void lock_all();
  void unlock_all();
  void reset_locks_after_fork();

  // Gives the reservations back; the heap must not be used afterwards.
  void unmap_for_testing();

 private:
  struct SlabList {
    uint32_t head = 0;  // index + 1
    uint32_t tail = 0;
    uint32_t count = 0;
  };
  enum : uint8_t { kFull = 0, kPartial = 1, kEmpty = 2, kPurged = 3, kInFlight = 4 };

  struct alignas(64) Central {
    pal::Lock lock;
    SlabList lists[4];  // indexed by kPartial/kEmpty/kPurged; [0] unused
    uint32_t committed_slabs = 0;
    uint64_t slots_out = 0;
  };

  SlabMeta& meta(unsigned c, uint32_t index) const { return meta_[c][index]; }
  uintptr_t slab_base(unsigned c, uint32_t index) const {
    return region_base(c) + (uintptr_t(index) << kSizeClasses[c].slab_shift);
  }
  void push_front(unsigned c, uint8_t list, uint32_t index);
  void unlink(unsigned c, uint32_t index);
  bool take_slab(unsigned c, uint32_t* index);
  bool grow(unsigned c);
  // Returns the bytes actually purged (mlocked slabs fail and stay dirty).
  size_t purge_slabs(unsigned c, const uint32_t* indices, size_t n);
  // refill and take_one: up to `want` slots in address order; first_zeroed,
  // if given, says whether out[0] still reads as zero.
  size_t take_slots(unsigned c, void** out, size_t want, bool* first_zeroed);
  struct SlotRef {
    uint32_t slab;  // slab index within the class region
    size_t index;   // slot index within the slab
  };
  // Decodes a slot start (is_block_start true) into slab and slot indices.
  SlotRef locate_slot(uintptr_t p, unsigned c) const;
  size_t retain_slabs(unsigned c) const;

  uintptr_t base_ = 0;
  size_t span_ = 0;
  unsigned region_shift_ = 0;
  SlabMeta* meta_[kNumClasses] = {};
  size_t meta_reserved_[kNumClasses] = {};
  uintptr_t meta_base_ = 0;
  size_t meta_total_ = 0;
  std::atomic<uint32_t> used_slabs_[kNumClasses] = {};
  Central central_[kNumClasses];
  std::atomic<uint64_t> purged_total_{0};
  std::atomic<bool> purge_failed_{false};
};

}  // namespace heapguard
