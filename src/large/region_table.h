// SPDX-License-Identifier: Apache-2.0
// RegionTable: the out-of-line record of every live large block (layer
// large), keyed by the block's user address. It is what makes free() of a
// large block trustworthy: a pointer is a large block only if it is here,
// whatever its header says. Open addressing with linear probing and
// backward-shift deletion; storage comes from the platform layer and grows
// by doubling. Sharded by address hash, one lock per shard.
#pragma once

#include <cstddef>
#include <cstdint>

#include "platform/platform.h"

namespace heapguard {

// One mapping and the block in it:
//   [map_base | reserve | lead guard | window | trailing guard | reserve | end)
// The window (window_begin .. window_end) is the only part in use. The lead
// guard is lead_guard bytes, the trailing guard one page. Reserve pages are
// what a reused or shrunk mapping does not need; they keep their contents
// (resident memory is what makes reuse cheap), are inaccessible with
// mprotect guards and plain with markers (a marker costs a page-table write
// per page, so only guard pages get them). Without guards (guards off, or
// past the budget) the guards are plain pages too. Cached mappings use the
// same record with user == 0.
struct LargeBlock {
  uintptr_t user = 0;      // block start; 0 marks an empty table slot
  uintptr_t map_base = 0;  // the mapping that holds it, guards included
  size_t map_size = 0;
  size_t requested = 0;
  uintptr_t window_begin = 0;
  uintptr_t window_end = 0;  // where the trailing guard starts
  // Offsets from map_base of the pages that may hold bytes of an earlier
  // block of this mapping (or of this block before a resize); every other
  // page reads as zero.
  size_t dirty_begin = 0;
  size_t dirty_end = 0;
  uint32_t lead_guard = 0;
  pal::GuardKind guard = pal::GuardKind::None;
  uint8_t splits = 0;        // guard splits charged for this mapping
  bool quarantined = false;  // freed, waiting in quarantine, inaccessible
  // Dirty pages must be cleared before the window takes them, even when
  // zeroes were not asked for: a block was released with scrub.
  bool scrub = false;
};

class RegionTable {
 public:
  constexpr RegionTable() = default;

  bool insert(const LargeBlock& block);
  bool find(uintptr_t user, LargeBlock* out);
  bool erase(uintptr_t user, LargeBlock* out);
  // Replaces the record of block.user (a resize done in place).
  bool replace(const LargeBlock& block);
  // Marks a live block quarantined; false when user is not a live block
  // (absent or already quarantined). Atomic against concurrent calls.
  bool mark_quarantined(uintptr_t user, LargeBlock* out);
  size_t count();
  // Leak check: calls f(const LargeBlock&) for every record, live and
  // quarantined, without the shard locks: only with every other thread
  // stopped. A thread stopped inside an insert or erase may leave a record
  // missing or, mid backward-shift, shown twice; grow() publishes the new
  // array before unmapping the old, so the reader never touches unmapped
  // memory. Allocates nothing.
  template <typename F>
  void for_each_unlocked(F&& f) const {
    for (const Shard& s : shards_) {
      // Capacity first: grow() publishes the array before the capacity, so
      // whatever array is read next holds at least that many entries.
      size_t capacity = __atomic_load_n(&s.capacity, __ATOMIC_ACQUIRE);
      const LargeBlock* slots = __atomic_load_n(&s.slots, __ATOMIC_ACQUIRE);
      for (size_t i = 0; slots != nullptr && i < capacity; ++i)
        if (slots[i].user != 0) f(slots[i]);
    }
  }

  void lock_all();
  void unlock_all();
  void reset_locks_after_fork();
  void unmap_for_testing();

 private:
  static constexpr unsigned kShardBits = 4;
  static constexpr size_t kShards = size_t{1} << kShardBits;

  struct alignas(64) Shard {
    pal::Lock lock;
    LargeBlock* slots = nullptr;
    size_t capacity = 0;  // power of two
    size_t used = 0;
  };

  static uint64_t hash(uintptr_t user) { return (uint64_t(user) >> 4) * 0x9E3779B97F4A7C15ULL; }
  Shard& shard_for(uintptr_t user) { return shards_[hash(user) >> (64 - kShardBits)]; }
  static bool grow(Shard& s);
  static size_t find_index(const Shard& s, uintptr_t user);

  Shard shards_[kShards];
};

}  // namespace heapguard
