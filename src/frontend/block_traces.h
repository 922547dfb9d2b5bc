// SPDX-License-Identifier: Apache-2.0
// Where each block was allocated and freed (layer frontend): the stacks a
// report shows under "allocated by" and "freed by". Kept out of line, so
// an overflow or a write after free cannot forge a block's history, and
// freed memory keeps its poison intact for the use-after-free check.
//   small blocks: a table per size class indexed by slot, reserved for the
//     whole class region and committed as the class's slabs are used (never
//     touched beyond that, so mlockall() does not fault in the reservation);
//   large blocks: a direct-mapped table keyed by address (a collision
//     forgets the older block's stacks: a report then omits them).
// The guarded pool keeps its blocks' traces itself.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "ds/ds.h"
#include "slab/slab.h"

namespace heapguard {

struct BlockHistory {
  TraceRef allocated;
  TraceRef freed;
};

// The number reports give the calling thread: T0 for the main thread
// (tid == pid), then 1, 2, ... in the order threads first ask.
// A fork child's caller keeps its number; its new threads continue the
// parent's count.
uint32_t current_thread_number();

// The stack of the current call as a depot id (malloc_context_size frames,
// the fast unwinder when fast_unwind=1), with the thread number.
TraceRef capture_trace();

class BlockTraces {
 public:
  constexpr BlockTraces() = default;
  // Reserves the tables for the slab heap's regions; false leaves traces
  // off (the OS refused the address space): reports then lack the
  // allocation and free stacks, nothing else changes.
  bool init(const SlabHeap& slabs);
  bool enabled() const { return slots_[1] != nullptr; }

  // `block` is a slot's block start (class c) or a large block's address
  // (c == kLargeClass).
  void set_allocated(uintptr_t block, unsigned c, TraceRef t);
  void set_freed(uintptr_t block, unsigned c, TraceRef t);
  BlockHistory get(uintptr_t block, unsigned c) const;

 private:
  struct LargeEntry {
    uintptr_t block;
    BlockHistory history;
  };
  static constexpr size_t kLargeEntries = size_t{1} << 16;

  BlockHistory* slot_entry(uintptr_t block, unsigned c) const;
  // Commits the table of class c up to and including e; false when the OS
  // refuses (the history is then not recorded).
  bool ensure_committed(unsigned c, const BlockHistory* e);
  LargeEntry& large_entry(uintptr_t block) const;

  uintptr_t region_base_[kNumClasses] = {};
  BlockHistory* slots_[kNumClasses] = {};
  size_t reserved_[kNumClasses] = {};
  // End of the committed prefix of each table. Commit is idempotent
  // (mprotect), so racing threads may both commit a range: no lock, and
  // nothing for fork to inherit half-taken.
  std::atomic<uintptr_t> committed_end_[kNumClasses] = {};
  LargeEntry* large_ = nullptr;
};

}  // namespace heapguard
