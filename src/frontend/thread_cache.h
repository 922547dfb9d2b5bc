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
#include "quarantine/quarantine.h"
#include "slab/slab.h"

namespace heapguard {

// Slots are stored encoded (g_bin_codec, keyed by each entry's address):
// the bins are the allocator's free lists, and a leak or overwrite of them
// must reveal or redirect nothing.
struct Bin {
  uintptr_t* slots = nullptr;
  uint16_t count = 0;
  uint16_t cap = 0;
};

struct ThreadCache {
  Bin bins[kNumClasses];
  ListNode node;  // registry link; first member after bins so container_of is trivial
  uint32_t tid = 0;
  unsigned thread_key = 0;  // the pthread key to re-arm in early destructor rounds
  uint8_t destructor_rounds = 0;
  QuarantineBatch quarantine;  // this thread's freed blocks on their way to the global quarantine
  // Small blocks this thread put into the quarantine minus those it took
  // out (either may be negative: any thread recycles). Per thread, not
  // shared atomics, so statistics cost the free path no contended write;
  // figures() sums them.
  int32_t quarantined[kNumClasses] = {};

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
