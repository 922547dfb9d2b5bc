// SPDX-License-Identifier: Apache-2.0
// GuardedPool (layer guarded): Electric Fence / GWP-ASan style blocks. Each
// block has a run of pages to itself between two guard pages and is placed
// against one of them (the trailing one by default, the leading one with
// guard_below), so an overflow (or underflow) faults at the instruction that
// makes it, and a freed block's pages are made inaccessible, so a read or
// write after free faults too. Freed slots are reused oldest first and only
// once no never-used slot is left, so a dangling pointer keeps faulting as
// long as possible. Metadata (user pointer, size, state, origin, alloc and
// free traces) lives out of line in its own mapping: an overflow of a block
// cannot reach it. Never calls malloc.
//
// Serves two frontend uses: guard=all (debug, fuzz: every small block, a big
// reservation) and hardened sampling (1 in sample_rate blocks, a small one).
// Slow path by design: a system call per allocation and per free.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/core.h"
#include "ds/ds.h"
#include "platform/platform.h"
#include "slab/slab.h"

namespace heapguard {

// A copy of one slot's metadata.
struct GuardedBlock {
  uintptr_t user = 0;        // the block's pointer; 0: no slot known
  size_t requested = 0;      // bytes the program asked for
  Origin origin = Origin::Malloc;
  bool live = false;         // allocated (false: freed, its pages inaccessible)
  TraceRef allocated, freed; // freed.stack == 0 while live
  // The slot's data pages: a fault inside them (outside a live block's
  // bytes) is a use after free; a fault outside them, in a guard page, is
  // an overflow or underflow of this block.
  uintptr_t data_begin = 0, data_end = 0;
};

struct GuardedStats {
  size_t slots = 0;        // capacity over all size tiers
  size_t live = 0;         // blocks allocated now
  size_t freed = 0;        // freed slots waiting (inaccessible) for reuse
  size_t fresh = 0;        // slots never used yet
  size_t refused = 0;      // allocations refused: tier full, too big, or map budget spent
};

class GuardedPool {
 public:
  // Size tiers: slots of 1, 2, 4, 8 and 16 data pages and one that holds
  // kMaxSmallSize; each tier gets an equal share of the reservation. A
  // request goes to the smallest tier whose data run holds it.
  static constexpr unsigned kTiers = 6;

  constexpr GuardedPool() = default;

  // Reserves pool_bytes of address space (inaccessible) and the metadata
  // for its slots. guard_below: blocks start right after their leading
  // guard page instead of ending at the trailing one. seed keys the slack
  // pattern (0: from the OS). False (pool unusable, enabled() stays false)
  // when the OS refuses or pool_bytes is too small for one slot.
  // Once, before any other call; not thread-safe.
  bool init(size_t pool_bytes, bool guard_below, uint64_t seed);
  bool enabled() const { return span_ != 0; }

  // p within the reservation (guard pages and unused slots included).
  HEAPGUARD_FAST_PATH bool contains(uintptr_t p) const { return p - base_ < span_; }

  // A zero-filled block of n bytes (0 is placed like 1) aligned to align
  // (a power of two up to a page; below 16 means 16). The bytes between
  // the block's end and the trailing guard (or, with guard_below, the end
  // of the block's last page) hold a keyed pattern checked by deallocate. nullptr when n is too big for every tier, align is above a
  // page, the tier is full, or the kernel map-count budget is spent: the
  // caller then uses the ordinary heap.
  void* allocate(size_t n, size_t align, Origin origin, TraceRef allocated);

  enum class FreeResult : uint8_t {
    Ok,           // freed
    Overflow,     // freed, but the slack after the block was written (first_damaged)
    DoubleFree,   // p is a freed block's pointer (its slot not reused yet)
    InvalidFree,  // p is not a live block's pointer
  };
  // Frees the block at p. out (may be null) receives the slot's metadata
  // whenever p lies in a used slot (out->user == 0 otherwise), with the
  // free trace for Ok/Overflow. On Overflow, *first_damaged (may be null)
  // is the first slack byte that lost its pattern. Only Ok and Overflow
  // change anything.
  FreeResult deallocate(uintptr_t p, TraceRef freed, GuardedBlock* out, uintptr_t* first_damaged = nullptr);

  // The block nearest p, for a fault at p: the block of the slot whose data
  // pages hold p, or for a guard page between two slots the neighbour whose
  // block edge is nearer to p (a tie goes to a live block). False for addresses
  // outside the pool or with no used slot next to them. Takes no lock and
  // writes nothing: safe in a signal handler (a block changing state at
  // that moment may be seen half updated).
  bool lookup(uintptr_t p, GuardedBlock* out) const;

  // Requested size of the live block whose pointer is p; 0 if none.
  size_t usable_size(uintptr_t p) const;
  // The live block whose pointer is p (for realloc, mismatch checks).
  bool find_live(uintptr_t p, GuardedBlock* out) const;

  GuardedStats stats() const;

  // Leak check: fn(user, requested, ctx) for every live block. Takes no
  // lock: only with every other thread stopped.
  void for_each_live_block(void (*fn)(uintptr_t user, size_t requested, void* ctx), void* ctx) const;

  // Fork protocol, as SlabHeap: every tier lock taken before fork, released
  // in the parent, reset in the child.
  void lock_all();
  void unlock_all();
  void reset_after_fork();

  // Gives the reservations back; the pool must not be used afterwards.
  void unmap_for_testing();

 private:
  enum : uint8_t { kFresh = 0, kLive = 1, kFreed = 2 };

  // Out-of-line record of one slot; written under the tier lock, read
  // without it by lookup (signal handler) through relaxed atomic loads.
  struct SlotMeta {
    uintptr_t user;
    uint32_t requested;
    uint8_t state;
    Origin origin;
    uint8_t charged;  // map-count splits charged while its pages are accessible
    uint8_t reserved;
    TraceRef allocated;
    TraceRef freed;
    uint32_t next;    // freed FIFO link: slot index + 1, 0 = end
    uint32_t reserved2;
  };
  static_assert(sizeof(SlotMeta) == 40);

  struct alignas(64) Tier {
    pal::Lock lock;
    uintptr_t base = 0;        // leading guard page of slot 0
    size_t data_bytes = 0;     // data pages per slot, in bytes
    size_t stride = 0;         // data + one guard page
    uint32_t slots = 0;
    uint32_t next_fresh = 0;   // slots below are used at least once
    uint32_t prepared = 0;     // marker mode: slots below have markers and are committed
    uint32_t freed_head = 0;   // index + 1
    uint32_t freed_tail = 0;
    uint32_t live = 0;
    uint32_t freed = 0;
    uint64_t refused = 0;
    SlotMeta* meta = nullptr;
  };

  uintptr_t data_of(const Tier& t, uint32_t k) const { return t.base + page_ + size_t(k) * t.stride; }
  // Tier of p; precondition contains(p).
  unsigned tier_of(uintptr_t p) const { return unsigned((p - base_) / share_); }
  // Slot k of tier t made accessible for a new block; false when the
  // kernel refused (marker removal, map budget).
  bool open_slot(Tier& t, uint32_t k);
  // Marker mode: markers installed over fresh slots [prepared, upto) and
  // the range made read-write (merging with the prepared prefix, so the
  // tier stays one kernel mapping).
  bool prepare_fresh(Tier& t, uint32_t upto);
  void close_slot(Tier& t, uint32_t k);
  void fill_slack(uintptr_t from, uintptr_t to) const;
  uintptr_t check_slack(uintptr_t from, uintptr_t to) const;
  uint8_t slack_byte(uintptr_t a) const { return uint8_t(slack_key_ >> ((a & 7) * 8)); }
  // End of the slack checked after a block: the slot's data end when the
  // block ends at the trailing guard; with guard_below, the end of the page
  // holding the block's last byte.
  uintptr_t slack_end(const Tier& t, uintptr_t data, uintptr_t block_end) const;
  static void copy_out(const SlotMeta& m, GuardedBlock* out);
  static void copy_out_racy(const SlotMeta& m, GuardedBlock* out);

  uintptr_t base_ = 0;
  size_t span_ = 0;       // 0 until init succeeds
  size_t share_ = 0;      // bytes per tier
  size_t page_ = 0;
  bool guard_below_ = false;
  bool markers_ = false;  // MADV_GUARD_INSTALL mode; else mprotect charged to the budget
  uint64_t slack_key_ = 0;
  uintptr_t meta_base_ = 0;
  size_t meta_bytes_ = 0;
  Tier tiers_[kTiers];
};

}  // namespace heapguard
