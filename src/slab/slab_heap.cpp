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
// A guard slab ends each group of about this many bytes (at least one slab
// and its guard): a linear overflow crosses at most one group before it
// faults. Under mprotect a guard costs two mappings, so 128 KiB keeps about
// 2 GiB of small blocks guarded within half of the default vm.max_map_count.
constexpr size_t kGuardGroupBytes = size_t{128} << 10;
// Randomized refills pick among this many slabs at the head of a list:
// enough to break slab order, few enough to keep memory dense.
constexpr uint32_t kSlabChoices = 4;

// Fisher-Yates: every order of the batch equally likely. Each draw feeds
// two steps (Lemire's multiply-shift on each 32-bit half, as Prng::below):
// the shuffle is about half of what randomization adds to a refill.
void shuffle(void** a, size_t n, Prng& prng) {
  auto swap_below = [a](size_t i, uint32_t r) {
    size_t j = size_t((uint64_t(r) * i) >> 32);
    void* t = a[i - 1];
    a[i - 1] = a[j];
    a[j] = t;
  };
  size_t i = n;
  for (; i > 2; i -= 2) {
    uint64_t r = prng.next();
    swap_below(i, uint32_t(r));
    swap_below(i - 1, uint32_t(r >> 32));
  }
  if (i == 2) swap_below(2, uint32_t(prng.next()));
}

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

void SlabHeap::configure(const SlabConfig& config) {
  randomize_ = config.randomize;
  // Fast mode needs no seed: no getrandom call at start-up.
  if (randomize_) reseed_after_fork(config.seed);
  for (unsigned c = 1; c < kNumClasses; ++c) {
    HEAPGUARD_CHECK(bounds_[c].used_slabs.load(std::memory_order_relaxed) == 0);
    size_t period = kGuardGroupBytes >> kSizeClasses[c].slab_shift;
    if (period < 2) period = 2;
    bounds_[c].guard_mask = config.guards ? uint32_t(period - 1) : kNoGuards;
  }
}

void SlabHeap::reseed_after_fork(uint64_t seed) {
  if (seed == 0) seed = pal::Pal::entropy64();
  for (unsigned c = 1; c < kNumClasses; ++c) central_[c].prng.reseed(mix_seed(seed, c));
}

uintptr_t SlabHeap::block_containing(uintptr_t p, unsigned c) const {
  const SizeClass& sc = kSizeClasses[c];
  uintptr_t off = p - region_base(c);
  uintptr_t slab = off >> sc.slab_shift;
  if (slab >= bounds_[c].used_slabs.load(std::memory_order_acquire) || is_guard_index(c, uint32_t(slab))) return 0;
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
  uint64_t used = __atomic_load_n(&meta(c, slot.slab).used_bits[slot.index >> 6], __ATOMIC_RELAXED);
  return ((used >> (slot.index & 63)) & 1) != 0;
}

void SlabHeap::push_front(unsigned c, uint8_t list, uint32_t index) {
  SlabList& l = slab_list(c, list);
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
  SlabList& l = slab_list(c, m.list);
  if (m.prev != 0) meta(c, m.prev - 1).next = m.next;
  else l.head = m.next;
  if (m.next != 0) meta(c, m.next - 1).prev = m.prev;
  else l.tail = m.prev;
  --l.count;
  m.prev = m.next = 0;
  m.list = kFull;
}

bool SlabHeap::commit_slabs(unsigned c, uint32_t end) {
  const SizeClass& sc = kSizeClasses[c];
  Central& central = central_[c];
  uint32_t from = central.committed_slabs;
  if (uint64_t(end) << sc.slab_shift > region_size()) return false;
  size_t page = pal::Pal::page_size();
  size_t meta_old = align_up(size_t(from) * sizeof(SlabMeta), page);
  size_t meta_new = align_up(size_t(end) * sizeof(SlabMeta), page);
  if (meta_new > meta_reserved_[c]) return false;
  size_t slab_bytes = size_t{1} << sc.slab_shift;
  if (!pal::Pal::commit(reinterpret_cast<void*>(slab_base(c, from)), size_t(end - from) * slab_bytes)) return false;
  if (meta_new > meta_old && !pal::Pal::commit(reinterpret_cast<char*>(meta_[c]) + meta_old, meta_new - meta_old))
    return false;
  // Guards are committed with their group and then installed, rather than
  // left reserved: MADV_GUARD_INSTALL then costs no mapping at all, and the
  // mprotect fallback is charged to the shared map-count budget. Past that
  // budget a guard stays accessible (thin) but is still never handed out,
  // and is_block_start still rejects it.
  const uint32_t mask = bounds_[c].guard_mask;
  for (uint64_t g = from | mask; g < end; g += uint64_t(mask) + 1) {
    bool installed = !guard_installs_fail_for_testing_ &&
                     pal::Pal::guard_install(reinterpret_cast<void*>(slab_base(c, uint32_t(g))), slab_bytes);
    if (!installed) ++thin_guards_[c];
  }
  central.committed_slabs = end;
  return true;
}

bool SlabHeap::grow(unsigned c) {
  const SizeClass& sc = kSizeClasses[c];
  Central& central = central_[c];
  uint32_t next = bounds_[c].used_slabs.load(std::memory_order_relaxed);
  // Guard periods are at least 2, so the slab after a guard is never one.
  if (is_guard_index(c, next)) ++next;
  if (next >= central.committed_slabs) {
    size_t slab_bytes = size_t{1} << sc.slab_shift;
    size_t step = slab_bytes > kCommitStep ? slab_bytes : kCommitStep;
    uint32_t end = central.committed_slabs + uint32_t(step >> sc.slab_shift);
    if (end <= next) end = next + 1;
    if (!commit_slabs(c, end)) return false;
  }
  SlabMeta& m = meta(c, next);
  for (size_t w = 0; w < kSlabWords; ++w) {
    size_t lo = w * 64;
    m.free_bits[w] = sc.slots >= lo + 64 ? ~uint64_t{0} : sc.slots > lo ? (uint64_t{1} << (sc.slots - lo)) - 1 : 0;
    m.used_bits[w] = 0;
    m.dirty_bits[w] = 0;
  }
  m.free_count = sc.slots;
  m.prev = m.next = 0;
  m.list = kFull;
  bounds_[c].used_slabs.store(next + 1, std::memory_order_release);
  push_front(c, kPartial, next);
  return true;
}

// Prefers partially used slabs (denser memory), then recently emptied dirty
// slabs, then purged ones, then fresh ones.
// Randomized: any of the first kSlabChoices slabs of the list.
bool SlabHeap::take_slab(unsigned c, uint32_t* index) {
  Central& central = central_[c];
  for (uint8_t list : {kPartial, kEmpty, kPurged}) {
    const SlabList& l = slab_list(c, list);
    if (l.head == 0) continue;
    uint32_t pick = l.head - 1;
    if (randomize_ && l.count > 1) {
      for (uint32_t skip = central.prng.below(l.count < kSlabChoices ? l.count : kSlabChoices); skip > 0; --skip)
        pick = meta(c, pick).next - 1;
    }
    *index = pick;
    return true;
  }
  if (!grow(c)) return false;
  *index = slab_list(c, kPartial).head - 1;
  return true;
}

size_t SlabHeap::take_from_slab(unsigned c, uint32_t index, unsigned start, void** out, size_t want,
                                bool* first_zeroed) {
  const SizeClass& sc = kSizeClasses[c];
  SlabMeta& m = meta(c, index);
  const unsigned words = (sc.slots + 63u) / 64u;
  uintptr_t first = slab_base(c, index) + kSlabLeadIn + kHeaderSize;
  unsigned w = start >> 6;
  // The free slots below `start` in its word come last, after the wrap.
  const uint64_t before_start = (uint64_t{1} << (start & 63)) - 1;
  const unsigned passes = words + (before_start != 0 ? 1u : 0u);
  size_t n = 0;
  for (unsigned pass = 0; pass < passes && n < want; ++pass) {
    uint64_t bits = m.free_bits[w];
    if (pass == 0) bits &= ~before_start;
    else if (pass == words) bits &= before_start;
    uint64_t taken = 0;
    while (bits != 0 && n < want) {
      uint64_t low = bits & (~bits + 1);
      bits ^= low;
      taken |= low;
      out[n++] = reinterpret_cast<void*>(first + (w * 64 + unsigned(__builtin_ctzll(low))) * sc.slot_size);
    }
    if (taken != 0) {
      if (first_zeroed != nullptr) {
        // out[0] is the lowest slot taken from the first word that gave any.
        *first_zeroed = (m.dirty_bits[w] & taken & (~taken + 1)) == 0;
        first_zeroed = nullptr;
      }
      m.free_bits[w] &= ~taken;
      m.dirty_bits[w] |= taken;
      // slot_was_used reads this word without the lock.
      __atomic_store_n(&m.used_bits[w], m.used_bits[w] | taken, __ATOMIC_RELAXED);
    }
    w = w + 1 == words ? 0 : w + 1;
  }
  m.free_count = uint16_t(m.free_count - n);
  return n;
}

size_t SlabHeap::take_slots(unsigned c, void** out, size_t want, bool* first_zeroed) {
  const SizeClass& sc = kSizeClasses[c];
  Central& central = central_[c];
  pal::LockGuard guard(central.lock);
  size_t n = 0;
  uint32_t index;
  while (n < want && take_slab(c, &index)) {
    unsigned start = randomize_ ? central.prng.below(sc.slots) : 0;
    n += take_from_slab(c, index, start, out + n, want - n, n == 0 ? first_zeroed : nullptr);
    unlink(c, index);
    if (meta(c, index).free_count != 0) push_front(c, kPartial, index);
  }
  // The random start picks which free slots go; the shuffle hides their
  // address order, which a scan from any start would otherwise keep.
  if (randomize_) shuffle(out, n, central.prng);
  central.slots_out += n;
  return n;
}

size_t SlabHeap::refill(unsigned c, void** out, size_t want) {
  size_t n = take_slots(c, out, want, nullptr);
  if (randomize_) return n;
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
    SlabList& empty = slab_list(c, kEmpty);
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
      for (uint64_t& word : meta(c, indices[i]).dirty_bits) word = 0;
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
      remaining = slab_list(c, kEmpty).count;
    }
    while (remaining > 0) {
      uint32_t batch[kPurgeBatch];
      size_t n = 0;
      {
        pal::LockGuard guard(central_[c].lock);
        SlabList& empty = slab_list(c, kEmpty);
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
  uint32_t used = bounds_[c].used_slabs.load(std::memory_order_relaxed);
  s.slots_out = central.slots_out;
  s.backed_slabs = used - guards_below(c, used) - slab_list(c, kPurged).count;
  s.empty_slabs = slab_list(c, kEmpty).count;
  s.free_slots = s.backed_slabs * kSizeClasses[c].slots - s.slots_out;
  // Every guard index in the committed range was installed or thinned.
  s.thin_guard_slabs = thin_guards_[c];
  s.guard_slabs = guards_below(c, central.committed_slabs) - s.thin_guard_slabs;
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
