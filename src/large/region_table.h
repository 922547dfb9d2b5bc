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

struct LargeBlock {
  uintptr_t user = 0;      // block start; 0 marks an empty table slot
  uintptr_t map_base = 0;  // the mapping that holds it
  size_t map_size = 0;
  size_t requested = 0;
};

class RegionTable {
 public:
  constexpr RegionTable() = default;

  bool insert(const LargeBlock& block);
  bool find(uintptr_t user, LargeBlock* out);
  bool erase(uintptr_t user, LargeBlock* out);
  // Records a resize done in place (same user address and mapping base).
  bool update_extent(uintptr_t user, size_t map_size, size_t requested);
  size_t count();

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
