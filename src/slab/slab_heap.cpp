// SPDX-License-Identifier: Apache-2.0
// SlabHeap implementation; see slab_heap.h for the design. Every function
// that touches a class's lists holds that class's lock; purging (a syscall)
// happens outside the lock on slabs marked in flight, which no list holds.
#include "slab/slab_heap.h"

#include "config/config.h"
#include "ds/ds.h"

namespace heapguard {
namespace {

// Address space per class: tried from the largest down, so a process under
// a tight RLIMIT_AS still starts (with less room per class; a class that
// fills its region is then served by the large heap, see allocate_slow).
constexpr unsigned kMaxRegionShift = 34;  // 16 GiB per class
constexpr unsigned kMinRegionShift = 20;  // 1 MiB per class
constexpr size_t kCommitStep = size_t{256} << 10;
constexpr size_t kPurgeBatch = 16;

[[noreturn]] HEAPGUARD_COLD void slab_corrupted(uintptr_t address, const char* what) {
  MessageBuilder detail;
  detail.str("slab metadata: ").str(what);
  report_fatal(ErrorKind::MetadataCorruption, address, detail);
}

}  // namespace

bool SlabHeap::init() {
  const size_t page = pal::Pal::page_size();
  for (unsigned shift = kMaxRegionShift; shift >= kMinRegionShift; --shift) {
    size_t region = size_t{1} << shift;
    size_t span = region * (kNumClasses - 1);
    size_t meta_total = 0;
    for (unsigned c = 1; c < kNumClasses; ++c)
      meta_total += align_up((region >> kSizeClasses[c].slab_shift) * sizeof(SlabMeta), page);
    void* heap = pal::Pal::reserve(span);
    if (heap == nullptr) continue;
    void* meta = pal::Pal::reserve(meta_total);
    if (meta == nullptr) {
      pal::Pal::unmap(heap, span);
      continue;
    }
    base_ = reinterpret_cast<uintptr_t>(heap);
    span_ = span;
    meta_base_ = reinterpret_cast<uintptr_t>(meta);
    meta_total_ = meta_total;
    region_shift_ = shift;
    uintptr_t m = reinterpret_cast<uintptr_t>(meta);
    for (unsigned c = 1; c < kNumClasses; ++c) {
      meta_[c] = reinterpret_cast<SlabMeta*>(m);
      meta_reserved_[c] = align_up((region >> kSizeClasses[c].slab_shift) * sizeof(SlabMeta), page);
      m += meta_reserved_[c];
    }
    return true;
  }
  return false;
}

uintptr_t SlabHeap::block_containing(uintptr_t p, unsigned c) const {
  const SizeClass& sc = kSizeClasses[c];
  uintptr_t off = p - region_base(c);
  if ((off >> sc.slab_shift) >= used_slabs_[c].load(std::memory_order_acquire)) return 0;
  uintptr_t in_slab = off & ((uintptr_t{1} << sc.slab_shift) - 1);
  if (in_slab < kSlabLeadIn) return 0;
  size_t k = slot_index(sc, in_slab - kSlabLeadIn);
  if (k >= sc.slots) return 0;
  return p - in_slab + kSlabLeadIn + kHeaderSize + k * sc.slot_size;
}

SlabHeap::SlotRef SlabHeap::locate_slot(uintptr_t p, unsigned c) const {
  const SizeClass& sc = kSizeClasses[c];
  uintptr_t off = p - region_base(c);
  size_t in_slab = off & ((uintptr_t{1} << sc.slab_shift) - 1);
  return {uint32_t(off >> sc.slab_shift), slot_index(sc, in_slab - kSlabLeadIn - kHeaderSize)};
}

bool SlabHeap::slot_was_used(uintptr_t p, unsigned c) const {
  SlotRef slot = locate_slot(p, c);
  return slot.index < __atomic_load_n(&meta(c, slot.slab).high_water, __ATOMIC_RELAXED);
}

void SlabHeap::push_front(unsigned c, uint8_t list, uint32_t index) {
  SlabList& l = central_[c].lists[list];
  SlabMeta& m = meta(c, index);
  m.list = list;
  m.prev = 0;
  m.next = l.head;
  if (l.head != 0) meta(c, l.head - 1).prev = index + 1;
  else l.tail = index + 1;
  l.head = index + 1;
  ++l.count;
}

void SlabHeap::unlink(unsigned c, uint32_t index) {
  SlabMeta& m = meta(c, index);
  if (m.list == kFull || m.list == kInFlight) return;
  SlabList& l = central_[c].lists[m.list];
  if (m.prev != 0) meta(c, m.prev - 1).next = m.next;
  else l.head = m.next;
  if (m.next != 0) meta(c, m.next - 1).prev = m.prev;
  else l.tail = m.prev;
  --l.count;
  m.prev = m.next = 0;
  m.list = kFull;
}

bool SlabHeap::grow(unsigned c) {
  const SizeClass& sc = kSizeClasses[c];
  Central& central = central_[c];
  uint32_t used = used_slabs_[c].load(std::memory_order_relaxed);
  if (used == central.committed_slabs) {
    size_t slab_bytes = size_t{1} << sc.slab_shift;
    size_t step = slab_bytes > kCommitStep ? slab_bytes : kCommitStep;
    uint32_t add = uint32_t(step >> sc.slab_shift);
    if ((uint64_t(central.committed_slabs) + add) << sc.slab_shift > region_size()) return false;
    size_t page = pal::Pal::page_size();
    size_t meta_old = align_up(size_t(central.committed_slabs) * sizeof(SlabMeta), page);
    size_t meta_new = align_up(size_t(central.committed_slabs + add) * sizeof(SlabMeta), page);
    if (meta_new > meta_reserved_[c]) return false;
    if (!pal::Pal::commit(reinterpret_cast<void*>(slab_base(c, central.committed_slabs)), step)) return false;
    if (meta_new > meta_old &&
        !pal::Pal::commit(reinterpret_cast<char*>(meta_[c]) + meta_old, meta_new - meta_old))
      return false;
    central.committed_slabs += add;
  }
  SlabMeta& m = meta(c, used);
  for (size_t w = 0; w < kMaxSlotsPerSlab / 64; ++w) {
    size_t lo = w * 64;
    m.free_bits[w] = sc.slots >= lo + 64 ? ~uint64_t{0} : sc.slots > lo ? (uint64_t{1} << (sc.slots - lo)) - 1 : 0;
  }
  m.free_count = sc.slots;
  m.high_water = 0;
  m.zero_from = 0;
  m.prev = m.next = 0;
  m.list = kFull;
  used_slabs_[c].store(used + 1, std::memory_order_release);
  push_front(c, kPartial, used);
  return true;
}

// Prefers partially used slabs (denser memory), then recently emptied dirty
// slabs, then purged ones, then fresh ones.
bool SlabHeap::take_slab(unsigned c, uint32_t* index) {
  Central& central = central_[c];
  for (uint8_t list : {kPartial, kEmpty, kPurged}) {
    if (central.lists[list].head != 0) {
      *index = central.lists[list].head - 1;
      return true;
    }
  }
  if (!grow(c)) return false;
  *index = central.lists[kPartial].head - 1;
  return true;
}

size_t SlabHeap::take_slots(unsigned c, void** out, size_t want, bool* first_zeroed) {
  const SizeClass& sc = kSizeClasses[c];
  Central& central = central_[c];
  size_t n = 0;
  {
    pal::LockGuard guard(central.lock);
    uint32_t index;
    while (n < want && take_slab(c, &index)) {
      SlabMeta& m = meta(c, index);
      uintptr_t first = slab_base(c, index) + kSlabLeadIn + kHeaderSize;
      for (size_t w = 0; w < kMaxSlotsPerSlab / 64 && n < want; ++w) {
        uint64_t bits = m.free_bits[w];
        while (bits != 0 && n < want) {
          unsigned b = unsigned(__builtin_ctzll(bits));
          bits &= bits - 1;
          size_t k = w * 64 + b;
          if (n == 0 && first_zeroed != nullptr) *first_zeroed = k >= m.zero_from;
          out[n++] = reinterpret_cast<void*>(first + k * sc.slot_size);
          --m.free_count;
          if (k >= m.high_water) __atomic_store_n(&m.high_water, uint16_t(k + 1), __ATOMIC_RELAXED);
          if (k >= m.zero_from) m.zero_from = uint16_t(k + 1);
        }
        m.free_bits[w] = bits;
      }
      unlink(c, index);
      if (m.free_count != 0) push_front(c, kPartial, index);
    }
    central.slots_out += n;
  }
  return n;
}

size_t SlabHeap::refill(unsigned c, void** out, size_t want) {
  size_t n = take_slots(c, out, want, nullptr);
  for (size_t i = 0, j = n; i + 1 < j; ++i, --j) {
    void* t = out[i];
    out[i] = out[j - 1];
    out[j - 1] = t;
  }
  return n;
}

void* SlabHeap::take_one(unsigned c, bool* zeroed) {
  void* slot;
  return take_slots(c, &slot, 1, zeroed) == 1 ? slot : nullptr;
}

size_t SlabHeap::retain_slabs(unsigned c) const {
  size_t bytes = size_t(retain_kb()) << 10;
  size_t slabs = bytes >> kSizeClasses[c].slab_shift;
  // A nonzero budget always keeps one slab, so the biggest classes do not
  // purge and refault a slab on every free/malloc pair.
  return slabs == 0 && bytes != 0 ? 1 : slabs;
}

void SlabHeap::release(unsigned c, void* const* blocks, size_t n) {
  const SizeClass& sc = kSizeClasses[c];
  Central& central = central_[c];
  uint32_t to_purge[kPurgeBatch];
  size_t purge_count = 0;
  {
    pal::LockGuard guard(central.lock);
    for (size_t i = 0; i < n; ++i) {
      uintptr_t p = reinterpret_cast<uintptr_t>(blocks[i]);
      SlotRef slot = locate_slot(p, c);
      uint32_t index = slot.slab;
      size_t k = slot.index;
      SlabMeta& m = meta(c, index);
      uint64_t bit = uint64_t{1} << (k & 63);
      if ((m.free_bits[k >> 6] & bit) != 0 || m.list == kInFlight) slab_corrupted(p, "slot released twice");
      m.free_bits[k >> 6] |= bit;
      ++m.free_count;
      if (m.free_count == sc.slots) {
        unlink(c, index);
        push_front(c, kEmpty, index);
      } else if (m.free_count == 1) {
        push_front(c, kPartial, index);
      }
    }
    central.slots_out -= n;
    size_t keep = retain_slabs(c);
    SlabList& empty = central.lists[kEmpty];
    // After a failed purge (mlockall), stop asking on every release.
    bool can_purge = !purge_failed_.load(std::memory_order_relaxed);
    while (can_purge && empty.count > keep && purge_count < kPurgeBatch) {
      uint32_t index = empty.tail - 1;
      unlink(c, index);
      meta(c, index).list = kInFlight;
      to_purge[purge_count++] = index;
    }
  }
  if (purge_count != 0) purge_slabs(c, to_purge, purge_count);
}

size_t SlabHeap::purge_slabs(unsigned c, const uint32_t* indices, size_t n) {
  size_t slab_bytes = size_t{1} << kSizeClasses[c].slab_shift;
  bool zeroed[kPurgeBatch];
  size_t purged = 0;
  for (size_t i = 0; i < n; ++i) {
    zeroed[i] = pal::Pal::purge(reinterpret_cast<void*>(slab_base(c, indices[i])), slab_bytes);
    purged += zeroed[i] ? 1 : 0;
  }
  if (purged != n) purge_failed_.store(true, std::memory_order_relaxed);
  purged_total_.fetch_add(purged * slab_bytes, std::memory_order_relaxed);
  pal::LockGuard guard(central_[c].lock);
  for (size_t i = 0; i < n; ++i) {
    // Only a slab whose pages were really dropped reads as zero (calloc
    // trusts this); an mlocked one keeps its contents and stays dirty.
    if (zeroed[i]) {
      meta(c, indices[i]).zero_from = 0;
      push_front(c, kPurged, indices[i]);
    } else {
      push_front(c, kEmpty, indices[i]);
    }
  }
  return purged * slab_bytes;
}

size_t SlabHeap::purge_all_empty() {
  size_t total = 0;
  for (unsigned c = 1; c < kNumClasses; ++c) {
    // Each slab empty at the start is tried once: one that cannot be purged
    // (mlocked) goes back on the empty list and must not be retried forever.
    size_t remaining;
    {
      pal::LockGuard guard(central_[c].lock);
      remaining = central_[c].lists[kEmpty].count;
    }
    while (remaining > 0) {
      uint32_t batch[kPurgeBatch];
      size_t n = 0;
      {
        pal::LockGuard guard(central_[c].lock);
        SlabList& empty = central_[c].lists[kEmpty];
        while (empty.count > 0 && n < kPurgeBatch && n < remaining) {
          uint32_t index = empty.tail - 1;
          unlink(c, index);
          meta(c, index).list = kInFlight;
          batch[n++] = index;
        }
      }
      if (n == 0) break;
      remaining -= n;
      total += purge_slabs(c, batch, n);
    }
  }
  return total;
}

SlabClassStats SlabHeap::class_stats(unsigned c) {
  SlabClassStats s;
  pal::LockGuard guard(central_[c].lock);
  const Central& central = central_[c];
  uint32_t used = used_slabs_[c].load(std::memory_order_relaxed);
  s.slots_out = central.slots_out;
  s.backed_slabs = used - central.lists[kPurged].count;
  s.empty_slabs = central.lists[kEmpty].count;
  s.free_slots = s.backed_slabs * kSizeClasses[c].slots - s.slots_out;
  return s;
}

void SlabHeap::unmap_for_testing() {
  pal::Pal::unmap(reinterpret_cast<void*>(base_), span_);
  pal::Pal::unmap(reinterpret_cast<void*>(meta_base_), meta_total_);
  base_ = 0;
  span_ = 0;
}

void SlabHeap::lock_all() {
  for (unsigned c = 1; c < kNumClasses; ++c) central_[c].lock.lock();
}

void SlabHeap::unlock_all() {
  for (unsigned c = kNumClasses - 1; c >= 1; --c) central_[c].lock.unlock();
}

void SlabHeap::reset_locks_after_fork() {
  for (unsigned c = 1; c < kNumClasses; ++c) central_[c].lock.reset_after_fork();
}

}  // namespace heapguard
