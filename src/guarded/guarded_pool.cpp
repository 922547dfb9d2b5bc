// SPDX-License-Identifier: Apache-2.0
// GuardedPool implementation. The reservation is split into kTiers equal
// shares; tier t is
//   [guard | data 0 | guard | data 1 | guard | ... | data n-1 | guard | unused]
// so every data run has a guard page on both sides. Two mechanisms keep
// pages that are not a live block's data inaccessible, chosen once at init:
//   markers (MADV_GUARD_INSTALL, Linux 6.13+): fresh slots are prepared in
//     batches (markers over their pages, then read-write, so the tier stays
//     one kernel mapping); allocation removes the markers of the data pages,
//     free installs them again (which also discards the bytes);
//   mprotect (older kernels): the reservation is PROT_NONE; allocation makes
//     the data pages read-write, charging the two mapping splits that adds
//     to the process's guard budget (pal::Pal::try_guard), free discards
//     and hides them again and gives the charge back. Past the budget the
//     pool refuses blocks (the ordinary heap serves them).
#include "guarded/guarded_pool.h"

#include <cstring>

namespace heapguard {
namespace {

// Fresh slots prepared per marker batch (two system calls per batch).
constexpr uint32_t kPrepareBatch = 64;

// Data pages per tier for a page size: 1, 2, 4, 8, 16, then enough for
// kMaxSmallSize.
size_t tier_data_pages(unsigned t, size_t page) {
  size_t last = (kMaxSmallSize + page - 1) / page;
  size_t pages = size_t{1} << (t < 5 ? t : 0);
  if (t == GuardedPool::kTiers - 1 || pages > last) pages = last;
  return pages;
}

template <typename T>
T load_relaxed(const T& v) {
  return __atomic_load_n(&v, __ATOMIC_RELAXED);
}

}  // namespace

bool GuardedPool::init(size_t pool_bytes, bool guard_below, uint64_t seed) {
  page_ = pal::Pal::page_size();
  guard_below_ = guard_below;
  size_t share = align_down(pool_bytes / kTiers, page_);
  if (share < page_ * (tier_data_pages(kTiers - 1, page_) + 2)) return false;
  size_t total = share * kTiers;
  size_t meta_count = 0;
  for (unsigned t = 0; t < kTiers; ++t) {
    size_t stride = (tier_data_pages(t, page_) + 1) * page_;
    size_t slots = (share - page_) / stride;
    if (slots > 0xfffffffeu) slots = 0xfffffffeu;
    meta_count += slots;
  }
  size_t meta_bytes = align_up(meta_count * sizeof(SlotMeta), page_);
  void* pool = pal::Pal::reserve(total);
  if (pool == nullptr) return false;
  // Metadata: reserved (no commit charge) then made read-write; pages
  // become resident only as slots are used.
  void* meta = pal::Pal::reserve(meta_bytes);
  if (meta == nullptr || !pal::Pal::commit(meta, meta_bytes)) {
    if (meta != nullptr) pal::Pal::unmap(meta, meta_bytes);
    pal::Pal::unmap(pool, total);
    return false;
  }
  pal::Pal::name_region(pool, total, "heapguard guarded pool");
  pal::Pal::name_region(meta, meta_bytes, "heapguard guarded pool metadata");
  base_ = reinterpret_cast<uintptr_t>(pool);
  share_ = share;
  meta_base_ = reinterpret_cast<uintptr_t>(meta);
  meta_bytes_ = meta_bytes;
  markers_ = pal::Pal::has_lightweight_guards();
  // Nonzero bytes, so that the commonest overflow, a NUL written one past
  // the end, never matches the pattern.
  uint64_t key = mix_seed(seed != 0 ? seed : pal::Pal::entropy64(), 0x6775617264);
  for (unsigned i = 0; i < 8; ++i) {
    if (((key >> (i * 8)) & 0xff) == 0) key |= uint64_t{0xa5} << (i * 8);
  }
  slack_key_ = key;
  SlotMeta* next_meta = static_cast<SlotMeta*>(meta);
  for (unsigned t = 0; t < kTiers; ++t) {
    Tier& tier = tiers_[t];
    tier.base = base_ + t * share;
    tier.data_bytes = tier_data_pages(t, page_) * page_;
    tier.stride = tier.data_bytes + page_;
    size_t slots = (share - page_) / tier.stride;
    tier.slots = uint32_t(slots > 0xfffffffeu ? 0xfffffffeu : slots);
    tier.meta = next_meta;
    next_meta += tier.slots;
  }
  span_ = total;
  return true;
}

bool GuardedPool::prepare_fresh(Tier& t, uint32_t upto) {
  if (upto <= t.prepared) return true;
  // Slot k's range is its data and its trailing guard; slot 0 also owns
  // the tier's leading guard.
  uintptr_t from = t.prepared == 0 ? t.base : data_of(t, t.prepared);
  uintptr_t to = data_of(t, upto - 1) + t.stride;
  void* p = reinterpret_cast<void*>(from);
  if (pal::Pal::try_guard(p, to - from, 0) != pal::GuardKind::Marker) {
    // Markers refused here (an mlockall'd process): leave the range
    // inaccessible and stop using fresh slots of this tier.
    return false;
  }
  if (!pal::Pal::commit(p, to - from)) return false;
  t.prepared = upto;
  return true;
}

bool GuardedPool::open_slot(Tier& t, uint32_t k) {
  SlotMeta& m = t.meta[k];
  void* data = reinterpret_cast<void*>(data_of(t, k));
  if (markers_) {
    if (k >= t.prepared) {
      uint32_t upto = k + kPrepareBatch < t.slots ? k + kPrepareBatch : t.slots;
      if (!prepare_fresh(t, upto)) return false;
    }
    m.charged = 0;
    return pal::Pal::guard_clear(data, t.data_bytes, pal::GuardKind::Marker);
  }
  // try_guard on the slot's trailing guard page, already inaccessible,
  // charges the two splits that opening the data run between two
  // inaccessible runs adds, and refuses past the budget.
  void* guard = reinterpret_cast<void*>(data_of(t, k) + t.data_bytes);
  pal::GuardKind kind = pal::Pal::try_guard(guard, page_, 2);
  if (kind == pal::GuardKind::None) return false;
  m.charged = kind == pal::GuardKind::Protect ? 2 : 0;
  if (!pal::Pal::commit(data, t.data_bytes)) {
    if (m.charged != 0) pal::Pal::guard_uncharge(m.charged);
    m.charged = 0;
    return false;
  }
  return true;
}

void GuardedPool::close_slot(Tier& t, uint32_t k) {
  SlotMeta& m = t.meta[k];
  void* data = reinterpret_cast<void*>(data_of(t, k));
  if (markers_) {
    // Discards the bytes too; an mlocked range refuses markers and then
    // stays accessible (the bytes are still discarded).
    pal::Pal::guard_set(data, t.data_bytes, pal::GuardKind::Marker);
    return;
  }
  // Hidden again, it merges with its guards: the charge is given back.
  if (pal::Pal::guard_set(data, t.data_bytes, pal::GuardKind::Protect) && m.charged != 0) {
    pal::Pal::guard_uncharge(m.charged);
    m.charged = 0;
  }
}

uintptr_t GuardedPool::slack_end(const Tier& t, uintptr_t data, uintptr_t block_end) const {
  if (!guard_below_) return data + t.data_bytes;
  uintptr_t end = align_up(block_end, page_);
  return end < data + t.data_bytes ? end : data + t.data_bytes;
}

void GuardedPool::fill_slack(uintptr_t from, uintptr_t to) const {
  for (uintptr_t a = from; a < to; ++a) *reinterpret_cast<uint8_t*>(a) = slack_byte(a);
}

uintptr_t GuardedPool::check_slack(uintptr_t from, uintptr_t to) const {
  for (uintptr_t a = from; a < to; ++a) {
    if (*reinterpret_cast<const uint8_t*>(a) != slack_byte(a)) return a;
  }
  return 0;
}

void* GuardedPool::allocate(size_t n, size_t align, Origin origin, TraceRef allocated) {
  if (!enabled()) return nullptr;
  if (align < kMinAlign) align = kMinAlign;
  if (!is_pow2(align) || align > page_ || n > kMaxSmallSize) return nullptr;
  size_t need = align_up(n == 0 ? 1 : n, align);
  unsigned ti = 0;
  while (ti < kTiers && tiers_[ti].data_bytes < need) ++ti;
  if (ti == kTiers) return nullptr;
  Tier& t = tiers_[ti];
  pal::LockGuard guard(t.lock);
  // Never-used slots first, then the oldest freed one: a freed slot stays
  // inaccessible for as long as the pool allows.
  uint32_t k;
  bool fresh;
  if (t.next_fresh < t.slots) {
    k = t.next_fresh;
    fresh = true;
  } else if (t.freed_head != 0) {
    k = t.freed_head - 1;
    fresh = false;
  } else {
    ++t.refused;
    return nullptr;
  }
  if (!open_slot(t, k)) {
    ++t.refused;
    return nullptr;
  }
  SlotMeta& m = t.meta[k];
  if (fresh) {
    ++t.next_fresh;
  } else {
    t.freed_head = m.next;
    if (t.freed_head == 0) t.freed_tail = 0;
    --t.freed;
  }
  uintptr_t data = data_of(t, k);
  uintptr_t user = guard_below_ ? data : align_down(data + t.data_bytes - (n == 0 ? 1 : n), align);
  fill_slack(user + n, slack_end(t, data, user + n));
  m.requested = uint32_t(n);
  m.origin = origin;
  m.allocated = allocated;
  m.freed = TraceRef{};
  m.next = 0;
  __atomic_store_n(&m.user, user, __ATOMIC_RELAXED);
  __atomic_store_n(&m.state, uint8_t(kLive), __ATOMIC_RELEASE);
  ++t.live;
  return reinterpret_cast<void*>(user);
}

void GuardedPool::copy_out(const SlotMeta& m, GuardedBlock* out) {
  out->user = m.user;
  out->requested = m.requested;
  out->origin = m.origin;
  out->live = m.state == kLive;
  out->allocated = m.allocated;
  out->freed = m.freed;
}

void GuardedPool::copy_out_racy(const SlotMeta& m, GuardedBlock* out) {
  out->live = load_relaxed(m.state) == kLive;
  out->user = load_relaxed(m.user);
  out->requested = load_relaxed(m.requested);
  out->origin = Origin(load_relaxed(reinterpret_cast<const uint8_t&>(m.origin)));
  out->allocated.stack = load_relaxed(m.allocated.stack);
  out->allocated.thread = load_relaxed(m.allocated.thread);
  out->freed.stack = load_relaxed(m.freed.stack);
  out->freed.thread = load_relaxed(m.freed.thread);
}

GuardedPool::FreeResult GuardedPool::deallocate(uintptr_t p, TraceRef freed, GuardedBlock* out,
                                                uintptr_t* first_damaged) {
  if (out != nullptr) *out = GuardedBlock{};
  if (!contains(p)) return FreeResult::InvalidFree;
  Tier& t = tiers_[tier_of(p)];
  uintptr_t off = p - t.base;
  if (off < page_) return FreeResult::InvalidFree;
  size_t k64 = (off - page_) / t.stride;
  if (k64 >= t.slots || (off - page_) % t.stride >= t.data_bytes) return FreeResult::InvalidFree;
  uint32_t k = uint32_t(k64);
  pal::LockGuard guard(t.lock);
  SlotMeta& m = t.meta[k];
  if (m.state == kFresh) return FreeResult::InvalidFree;
  uintptr_t data = data_of(t, k);
  if (out != nullptr) {
    copy_out(m, out);
    out->data_begin = data;
    out->data_end = data + t.data_bytes;
  }
  if (m.user != p) return FreeResult::InvalidFree;
  if (m.state == kFreed) return FreeResult::DoubleFree;
  uintptr_t damaged = check_slack(p + m.requested, slack_end(t, data, p + m.requested));
  if (first_damaged != nullptr) *first_damaged = damaged;
  m.freed = freed;
  __atomic_store_n(&m.state, uint8_t(kFreed), __ATOMIC_RELEASE);
  close_slot(t, k);
  m.next = 0;
  if (t.freed_tail != 0) {
    t.meta[t.freed_tail - 1].next = k + 1;
  } else {
    t.freed_head = k + 1;
  }
  t.freed_tail = k + 1;
  --t.live;
  ++t.freed;
  if (out != nullptr) {
    out->live = false;
    out->freed = freed;
  }
  return damaged != 0 ? FreeResult::Overflow : FreeResult::Ok;
}

bool GuardedPool::lookup(uintptr_t p, GuardedBlock* out) const {
  if (!contains(p)) return false;
  const Tier& t = tiers_[tier_of(p)];
  uintptr_t off = p - t.base;
  // Candidate slots: the one whose data holds p, or the two around the
  // guard page that does (the leading guard of the tier has only slot 0).
  int64_t left = -1, right = -1;
  if (off < page_) {
    right = 0;
  } else {
    size_t k = (off - page_) / t.stride;
    if ((off - page_) % t.stride < t.data_bytes) {
      left = int64_t(k);
    } else {
      left = int64_t(k);
      right = int64_t(k) + 1;
    }
  }
  GuardedBlock a, b;
  bool have_a = false, have_b = false;
  if (left >= 0 && uint64_t(left) < t.slots && load_relaxed(t.meta[left].state) != kFresh) {
    copy_out_racy(t.meta[left], &a);
    have_a = true;
  }
  if (right >= 0 && uint64_t(right) < t.slots && load_relaxed(t.meta[right].state) != kFresh) {
    copy_out_racy(t.meta[right], &b);
    have_b = true;
  }
  if (!have_a && !have_b) return false;
  bool pick_b;
  if (have_a && have_b) {
    // The block whose nearer edge is closer to p (a linear overflow or
    // underflow crosses the fewest bytes); a tie goes to a live block.
    uintptr_t a_end = a.user + a.requested;
    uintptr_t da = p >= a_end ? p - a_end : 0;
    uintptr_t db = b.user > p ? b.user - p : 0;
    pick_b = db < da || (db == da && b.live && !a.live);
  } else {
    pick_b = have_b;
  }
  *out = pick_b ? b : a;
  uint32_t k = uint32_t(pick_b ? right : left);
  out->data_begin = data_of(t, k);
  out->data_end = out->data_begin + t.data_bytes;
  return true;
}

bool GuardedPool::find_live(uintptr_t p, GuardedBlock* out) const {
  if (!contains(p)) return false;
  const Tier& t = tiers_[tier_of(p)];
  uintptr_t off = p - t.base;
  if (off < page_) return false;
  size_t k = (off - page_) / t.stride;
  if (k >= t.slots) return false;
  const SlotMeta& m = t.meta[k];
  if (load_relaxed(m.state) != kLive || load_relaxed(m.user) != p) return false;
  if (out != nullptr) {
    copy_out_racy(m, out);
    out->data_begin = data_of(t, uint32_t(k));
    out->data_end = out->data_begin + t.data_bytes;
  }
  return true;
}

size_t GuardedPool::usable_size(uintptr_t p) const {
  GuardedBlock b;
  return find_live(p, &b) ? b.requested : 0;
}

GuardedStats GuardedPool::stats() const {
  GuardedStats s;
  if (!enabled()) return s;
  for (const Tier& t : tiers_) {
    s.slots += t.slots;
    s.live += load_relaxed(t.live);
    s.freed += load_relaxed(t.freed);
    s.fresh += t.slots - load_relaxed(t.next_fresh);
    s.refused += load_relaxed(t.refused);
  }
  return s;
}

void GuardedPool::for_each_live_block(void (*fn)(uintptr_t user, size_t requested, void* ctx), void* ctx) const {
  if (!enabled()) return;
  for (const Tier& t : tiers_) {
    uint32_t used = load_relaxed(t.next_fresh);
    for (uint32_t k = 0; k < used; ++k) {
      const SlotMeta& m = t.meta[k];
      if (load_relaxed(m.state) == kLive) fn(load_relaxed(m.user), load_relaxed(m.requested), ctx);
    }
  }
}

void GuardedPool::lock_all() {
  for (Tier& t : tiers_) t.lock.lock();
}

void GuardedPool::unlock_all() {
  for (unsigned i = kTiers; i-- > 0;) tiers_[i].lock.unlock();
}

void GuardedPool::reset_after_fork() {
  for (Tier& t : tiers_) t.lock.reset_after_fork();
}

void GuardedPool::unmap_for_testing() {
  if (!enabled()) return;
  for (Tier& t : tiers_) {
    for (uint32_t k = 0; k < t.next_fresh; ++k) {
      if (t.meta[k].charged != 0) pal::Pal::guard_uncharge(t.meta[k].charged);
    }
    t.base = 0;
    t.slots = t.next_fresh = t.prepared = t.freed_head = t.freed_tail = t.live = t.freed = 0;
    t.refused = 0;
    t.meta = nullptr;
  }
  pal::Pal::unmap(reinterpret_cast<void*>(base_), span_);
  pal::Pal::unmap(reinterpret_cast<void*>(meta_base_), meta_bytes_);
  base_ = 0;
  span_ = 0;
  meta_base_ = 0;
  meta_bytes_ = 0;
}

}  // namespace heapguard
