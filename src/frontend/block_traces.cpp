// SPDX-License-Identifier: Apache-2.0
// Block histories and thread numbers; see block_traces.h.
#include "frontend/block_traces.h"

#include <atomic>

#include "config/config.h"
#include "platform/platform.h"

namespace heapguard {
namespace {

constinit std::atomic<uint32_t> g_next_thread_number{1};
constinit thread_local uint32_t t_thread_number = kUnknownThread;

}  // namespace

uint32_t current_thread_number() {
  uint32_t n = t_thread_number;
  if (HEAPGUARD_LIKELY(n != kUnknownThread)) return n;
  n = pal::Pal::thread_id() == uint32_t(pal::Pal::process_id()) ? 0
                                                                : g_next_thread_number.fetch_add(1, std::memory_order_relaxed);
  t_thread_number = n;
  return n;
}

TraceRef capture_trace() {
  TraceRef t;
  t.thread = current_thread_number();
  uintptr_t pcs[pal::kMaxStackFrames];
  unsigned want = unsigned(options().malloc_context_size);
  if (want == 0) return t;
  if (want > pal::kMaxStackFrames) want = pal::kMaxStackFrames;
  unsigned n = pal::capture_stack(pcs, want);
  t.stack = g_stack_depot.put(pcs, n);
  return t;
}

namespace {
// Commit granule: 4096 histories of 16 bytes.
constexpr size_t kCommitGranule = size_t{64} << 10;
}  // namespace

bool BlockTraces::init(const SlabHeap& slabs) {
  if (enabled()) return true;
  const size_t region = slabs.region_size();
  const size_t large_bytes = kLargeEntries * sizeof(LargeEntry);
  LargeEntry* large = static_cast<LargeEntry*>(pal::Pal::map(large_bytes));
  if (large == nullptr) return false;
  BlockHistory* tables[kNumClasses] = {};
  size_t sizes[kNumClasses] = {};
  for (unsigned c = 1; c < kNumClasses; ++c) {
    const SizeClass& sc = kSizeClasses[c];
    sizes[c] = align_up((region >> sc.slab_shift) * sc.slots * sizeof(BlockHistory), kCommitGranule);
    tables[c] = static_cast<BlockHistory*>(pal::Pal::reserve(sizes[c]));
    if (tables[c] == nullptr) {
      for (unsigned d = 1; d < c; ++d) pal::Pal::unmap(tables[d], sizes[d]);
      pal::Pal::unmap(large, large_bytes);
      return false;
    }
  }
  for (unsigned c = 1; c < kNumClasses; ++c) {
    region_base_[c] = slabs.region_base(c);
    reserved_[c] = sizes[c];
    committed_end_[c].store(reinterpret_cast<uintptr_t>(tables[c]), std::memory_order_relaxed);
    slots_[c] = tables[c];
  }
  large_ = large;
  return true;
}

BlockHistory* BlockTraces::slot_entry(uintptr_t block, unsigned c) const {
  const SizeClass& sc = kSizeClasses[c];
  uintptr_t off = block - region_base_[c];
  size_t slab = off >> sc.slab_shift;
  size_t in_slab = (off & ((uintptr_t{1} << sc.slab_shift) - 1)) - kSlabLeadIn - kHeaderSize;
  return &slots_[c][slab * sc.slots + slot_index(sc, in_slab)];
}

bool BlockTraces::ensure_committed(unsigned c, const BlockHistory* e) {
  uintptr_t need = reinterpret_cast<uintptr_t>(e + 1);
  uintptr_t end = committed_end_[c].load(std::memory_order_acquire);
  if (HEAPGUARD_LIKELY(need <= end)) return true;
  uintptr_t table = reinterpret_cast<uintptr_t>(slots_[c]);
  uintptr_t new_end = table + align_up(need - table, kCommitGranule);
  if (!pal::Pal::commit(reinterpret_cast<void*>(end), new_end - end)) return false;
  while (end < new_end && !committed_end_[c].compare_exchange_weak(end, new_end, std::memory_order_release)) {
  }
  return true;
}

BlockTraces::LargeEntry& BlockTraces::large_entry(uintptr_t block) const {
  // Large blocks are page-aligned give or take their 16-byte placement:
  // mix the page number so neighbours spread over the table.
  uint64_t h = (uint64_t(block) >> 4) * 0x9E3779B97F4A7C15ULL;
  return large_[h >> (64 - 16)];
}

void BlockTraces::set_allocated(uintptr_t block, unsigned c, TraceRef t) {
  if (!enabled()) return;
  if (c == kLargeClass) {
    LargeEntry& e = large_entry(block);
    e.block = block;
    e.history = {t, TraceRef{}};
    return;
  }
  BlockHistory* e = slot_entry(block, c);
  if (ensure_committed(c, e)) *e = {t, TraceRef{}};
}

void BlockTraces::set_freed(uintptr_t block, unsigned c, TraceRef t) {
  if (!enabled()) return;
  if (c == kLargeClass) {
    LargeEntry& e = large_entry(block);
    if (e.block == block) e.history.freed = t;
    return;
  }
  BlockHistory* e = slot_entry(block, c);
  if (ensure_committed(c, e)) e->freed = t;
}

BlockHistory BlockTraces::get(uintptr_t block, unsigned c) const {
  if (!enabled()) return {};
  if (c == kLargeClass) {
    const LargeEntry& e = large_entry(block);
    return e.block == block ? e.history : BlockHistory{};
  }
  const BlockHistory* e = slot_entry(block, c);
  if (reinterpret_cast<uintptr_t>(e + 1) > committed_end_[c].load(std::memory_order_acquire)) return {};
  return *e;
}

}  // namespace heapguard
