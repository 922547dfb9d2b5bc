// SPDX-License-Identifier: Apache-2.0
// Fault diagnosis (layer frontend): turns a SIGSEGV or SIGBUS at a guard
// page or in freed memory into a report. The address is looked up in
//   the guarded pool: a guard page next to a block is heap-buffer-overflow
//     (right of it, or left with guard_below), its freed pages
//     heap-use-after-free, with the block's allocation and free stacks;
//   the large heap: a block's trailing or lead guard is heap-buffer-overflow,
//     a quarantined block heap-use-after-free;
//   the slab arena: a guard slab is heap-buffer-overflow with no block.
// Anything else is not heapguard's and goes to the program's own handler
// or the default action (platform/signals.h). Faults always halt.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ds/ds.h"
#include "guarded/guarded.h"
#include "large/large.h"
#include "slab/slab.h"

namespace heapguard {

class BlockTraces;

// The heaps a fault may belong to; null members are skipped. They must
// outlive the process (the allocator's members do).
struct FaultContext {
  const GuardedPool* pool = nullptr;
  const LargeHeap* large = nullptr;
  const SlabHeap* slabs = nullptr;
  // Allocation and free stacks of large blocks (debug, fuzz); may be null.
  const BlockTraces* traces = nullptr;
};

enum class FaultSource : uint8_t { None, GuardedPool, LargeBlock, GuardSlab };
enum class FaultRelation : uint8_t { None, Inside, Left, Right };

// What a fault at one address means; a pure function of the heaps' state.
struct FaultDiagnosis {
  FaultSource source = FaultSource::None;  // None: not heapguard's fault
  ErrorKind kind = ErrorKind::HeapBufferOverflow;
  uintptr_t region_start = 0;  // the block (size 0: none, e.g. a guard slab)
  size_t region_size = 0;
  FaultRelation relation = FaultRelation::None;
  bool block_freed = false;    // the block was freed (its free stack is known if recorded)
  unsigned slab_class = 0;     // GuardSlab: the size class of the region
  TraceRef allocated, freed;
};

// Classifies a fault at addr. Reads out-of-line metadata only, never the
// faulting memory; takes no lock but the large table's shard locks.
bool diagnose_fault(const FaultContext& ctx, uintptr_t addr, FaultDiagnosis* out);

// Installs the SIGSEGV/SIGBUS handlers (once; a later call only replaces
// the context) and gives the calling thread its alternate signal stack.
// Other threads get theirs from pal::ensure_alt_stack() when their thread
// cache is created. Call after init, once the heaps are set up.
bool install_fault_handler(const FaultContext& ctx);

}  // namespace heapguard
