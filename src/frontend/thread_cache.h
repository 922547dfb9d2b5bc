// SPDX-License-Identifier: Apache-2.0
// ThreadCache: per-thread arrays of free slots, one bin per size class
// (layer frontend). Arrays rather than free lists threaded through freed
// blocks: freed memory then holds no heap pointers for a use-after-free to
// leak or corrupt, and refilled slots are not touched (and so cost no RSS)
// until the program uses them.
// Each thread's cache pointer starts at a constinit sentinel whose bins are
// empty with capacity 0, so a thread's first malloc and first free both miss
// the fast path and set the cache up, with no separate "initialised?" test.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ds/ds.h"
#include "slab/slab.h"

namespace heapguard {

struct Bin {
  void** slots = nullptr;
  uint16_t count = 0;
  uint16_t cap = 0;
};

struct ThreadCache {
  Bin bins[kNumClasses];
  ListNode node;  // registry link; first member after bins so container_of is trivial
  uint32_t tid = 0;
  unsigned thread_key = 0;  // the pthread key to re-arm in early destructor rounds
  uint8_t destructor_rounds = 0;

  static ThreadCache* from_node(ListNode* n) {
    return reinterpret_cast<ThreadCache*>(reinterpret_cast<char*>(n) - offsetof(ThreadCache, node));
  }
  // Slot storage for all bins, laid out after the object.
  static size_t storage_slots();
};

// Before a thread's cache exists, and after it was torn down at thread exit.
extern constinit ThreadCache g_unset_cache;
extern constinit ThreadCache g_torn_down_cache;

extern constinit thread_local ThreadCache* t_cache;

}  // namespace heapguard
