// SPDX-License-Identifier: Apache-2.0
// Fault diagnosis and the callback behind the SIGSEGV/SIGBUS handlers
// (see fault_handler.h). Runs in a signal handler on the alternate stack:
// no malloc, no allocator lock (the large table's shard locks are never
// held around program code, so the faulting thread cannot hold one).
#include "frontend/fault_handler.h"

#include <atomic>

#include "frontend/block_traces.h"
#include "platform/platform.h"
#include "report/report.h"

namespace heapguard {
namespace {

constinit FaultContext g_fault_context;
constinit std::atomic<bool> g_fault_context_set{false};

FaultRelation relation_of(uintptr_t addr, uintptr_t start, size_t size) {
  if (addr < start) return FaultRelation::Left;
  if (addr - start >= size) return FaultRelation::Right;
  return FaultRelation::Inside;
}

bool diagnose_pool(const GuardedPool& pool, uintptr_t addr, FaultDiagnosis* out) {
  GuardedBlock b;
  if (!pool.contains(addr) || !pool.lookup(addr, &b)) return false;
  const bool in_data = addr >= b.data_begin && addr < b.data_end;
  // A live block's data pages are accessible: a fault there comes from a
  // race (the slot was freed and reused meanwhile) and is not explained.
  if (in_data && b.live) return false;
  out->source = FaultSource::GuardedPool;
  out->kind = in_data ? ErrorKind::HeapUseAfterFree : ErrorKind::HeapBufferOverflow;
  out->region_start = b.user;
  out->region_size = b.requested;
  out->relation = relation_of(addr, b.user, b.requested);
  out->block_freed = !b.live;
  out->allocated = b.allocated;
  out->freed = b.live ? TraceRef{} : b.freed;
  return true;
}

bool diagnose_large(const LargeHeap& large, const BlockTraces* traces, uintptr_t addr, FaultDiagnosis* out) {
  LargeBlock b;
  if (!large.find_fault(addr, &b)) return false;
  const bool in_window = addr >= b.window_begin && addr < b.window_end;
  if (in_window && !b.quarantined) return false;
  out->source = FaultSource::LargeBlock;
  out->kind = in_window ? ErrorKind::HeapUseAfterFree : ErrorKind::HeapBufferOverflow;
  out->region_start = b.user;
  out->region_size = b.requested;
  out->relation = relation_of(addr, b.user, b.requested);
  out->block_freed = b.quarantined;
  if (traces != nullptr) {
    BlockHistory h = traces->get(b.user, kLargeClass);
    out->allocated = h.allocated;
    if (b.quarantined) out->freed = h.freed;
  }
  return true;
}

bool diagnose_slab(const SlabHeap& slabs, uintptr_t addr, FaultDiagnosis* out) {
  if (!slabs.contains(addr)) return false;
  unsigned c = slabs.class_of(addr);
  if (!slabs.in_guard_slab(addr, c)) return false;
  out->source = FaultSource::GuardSlab;
  out->kind = ErrorKind::HeapBufferOverflow;
  out->slab_class = c;
  return true;
}

Relation to_relation(FaultRelation r) {
  switch (r) {
    case FaultRelation::Inside:
      return Relation::Inside;
    case FaultRelation::Left:
      return Relation::Left;
    case FaultRelation::Right:
      return Relation::Right;
    case FaultRelation::None:
      break;
  }
  return Relation::None;
}

const char* access_text(pal::FaultAccess a) {
  switch (a) {
    case pal::FaultAccess::Read:
      return "READ of size ?";
    case pal::FaultAccess::Write:
      return "WRITE of size ?";
    case pal::FaultAccess::Unknown:
      break;
  }
  return "ACCESS of size ?";
}

bool on_fault(const pal::FaultInfo& fault) {
  if (!g_fault_context_set.load(std::memory_order_acquire)) return false;
  FaultDiagnosis d;
  if (!diagnose_fault(g_fault_context, fault.address, &d)) return false;

  MessageBuilder detail;
  if (d.source == FaultSource::GuardSlab) {
    const SizeClass& sc = kSizeClasses[d.slab_class];
    detail.hex(fault.address)
        .str(" is in a guard slab of class ")
        .dec(d.slab_class)
        .str(" (")
        .dec(sc.slot_size)
        .str("-byte slots): a linear overflow or underflow ran off its slab group");
  } else if (d.kind == ErrorKind::HeapBufferOverflow && d.block_freed) {
    // The nearest block to the guard page had been freed: still an access
    // out of its bounds, through a dangling pointer.
    detail.str("the block next to the guard page was already freed");
  }

  uintptr_t pcs[pal::kMaxStackFrames];
  unsigned n = pal::capture_stack_from_signal(fault.ucontext, pcs, pal::kMaxStackFrames);

  ReportInfo info{};
  info.kind = d.kind;
  info.address = fault.address;
  info.pc = fault.pc;
  info.current = n != 0 ? pcs : nullptr;
  info.current_n = n;
  info.access = access_text(fault.access);
  info.region_start = d.region_start;
  info.region_size = d.region_size;
  info.relation = to_relation(d.relation);
  info.detail = detail.size() != 0 ? &detail : nullptr;
  info.allocated = d.allocated;
  info.freed = d.freed;
  info.recoverable = false;  // the faulting instruction cannot be skipped
  info.thread = current_thread_number();
  report_error(info);
  // report_error does not return for a fatal error; if it ever did,
  // returning would re-execute the access: the caller aborts.
  return true;
}

}  // namespace

bool diagnose_fault(const FaultContext& ctx, uintptr_t addr, FaultDiagnosis* out) {
  *out = FaultDiagnosis{};
  if (ctx.pool != nullptr && ctx.pool->enabled() && diagnose_pool(*ctx.pool, addr, out)) return true;
  if (ctx.large != nullptr && diagnose_large(*ctx.large, ctx.traces, addr, out)) return true;
  if (ctx.slabs != nullptr && diagnose_slab(*ctx.slabs, addr, out)) return true;
  *out = FaultDiagnosis{};
  return false;
}

bool install_fault_handler(const FaultContext& ctx) {
  // Published before the handler can see it; a later call replaces it.
  g_fault_context_set.store(false, std::memory_order_release);
  g_fault_context = ctx;
  g_fault_context_set.store(true, std::memory_order_release);
  return pal::install_fault_signals(on_fault);
}

}  // namespace heapguard
