// SPDX-License-Identifier: Apache-2.0
// LargeHeap implementation. A mapping is
//   [map_base | reserve | lead guard | window (header, block, slack) | trailing guard | reserve]
// Front placement: user = window_begin + 16 (or the alignment). place_at_end:
// user = window_end - round_up(n, align), header in the same or previous
// page. Over-aligned blocks (beyond a page) get a header page and start the
// second page of the window in both placements.
// Invariant: outside [dirty_begin, dirty_end) every page of a mapping reads
// as zero, so reuse clears only what that range and the new window share,
// and only when zeroes or a scrub are needed.
#include "large/large_heap.h"

#include <cstring>

#include "core/core.h"
#include "ds/ds.h"

namespace heapguard {
namespace {

constexpr size_t kLargeHeaderRoom = 16;

void update_peak(std::atomic<size_t>& peak, size_t value) {
  size_t old = peak.load(std::memory_order_relaxed);
  while (value > old && !peak.compare_exchange_weak(old, value, std::memory_order_relaxed)) {
  }
}

size_t page() { return pal::Pal::page_size(); }

// Guard pages: markers (which zap the page) or mprotect.
void mark_guard(uintptr_t from, uintptr_t to, pal::GuardKind kind) {
  if (from >= to || kind == pal::GuardKind::None) return;
  if (kind == pal::GuardKind::Marker) {
    pal::Pal::guard_set(reinterpret_cast<void*>(from), to - from, kind);
  } else {
    pal::Pal::protect(reinterpret_cast<void*>(from), to - from, false);
  }
}

bool unmark_guard(uintptr_t from, uintptr_t to, pal::GuardKind kind) {
  if (from >= to || kind == pal::GuardKind::None) return true;
  if (kind == pal::GuardKind::Marker) return pal::Pal::guard_clear(reinterpret_cast<void*>(from), to - from, kind);
  return pal::Pal::protect(reinterpret_cast<void*>(from), to - from, true);
}

// Reserve pages keep their bytes; with mprotect guards they are as
// inaccessible as the guards (and merge with them into one mapping).
void conceal(uintptr_t from, uintptr_t to, pal::GuardKind kind) {
  if (from < to && kind == pal::GuardKind::Protect) pal::Pal::protect(reinterpret_cast<void*>(from), to - from, false);
}

bool reveal(uintptr_t from, uintptr_t to, pal::GuardKind kind) {
  return from >= to || kind != pal::GuardKind::Protect ||
         pal::Pal::protect(reinterpret_cast<void*>(from), to - from, true);
}

void add_dirty(LargeBlock* m, uintptr_t from, uintptr_t to) {
  if (from >= to) return;
  size_t b = from - m->map_base, e = to - m->map_base;
  if (m->dirty_begin == m->dirty_end) {
    m->dirty_begin = b;
    m->dirty_end = e;
    return;
  }
  if (b < m->dirty_begin) m->dirty_begin = b;
  if (e > m->dirty_end) m->dirty_end = e;
}

// Zeroes what [from, to) shares with the dirty range.
void clear_dirty(const LargeBlock& m, uintptr_t from, uintptr_t to) {
  uintptr_t b = m.map_base + m.dirty_begin, e = m.map_base + m.dirty_end;
  if (b < from) b = from;
  if (e > to) e = to;
  if (b < e) memset(reinterpret_cast<void*>(b), 0, e - b);
}

// Dirty bytes outside the window: resident memory the block does not use.
size_t slack_of(const LargeBlock& m) {
  size_t b = m.dirty_begin, e = m.dirty_end;
  size_t wb = m.window_begin - m.map_base, we = m.window_end - m.map_base;
  size_t overlap_b = b > wb ? b : wb, overlap_e = e < we ? e : we;
  size_t overlap = overlap_b < overlap_e ? overlap_e - overlap_b : 0;
  return e - b - overlap;
}

}  // namespace

void LargeHeap::configure(const LargeConfig& config) {
  config_ = config;
  uint64_t seed = config.seed != 0 ? config.seed : pal::Pal::entropy64();
  rng_counter_.store(mix_seed(seed, 0x6c61726765), std::memory_order_relaxed);
}

// A counter hashed by mix_seed (splitmix64): lock-free across threads and,
// for one seed and one sequence of fresh mappings, the same every run.
size_t LargeHeap::random_lead_pages() {
  if (!config_.randomize) return 0;
  uint64_t x = mix_seed(rng_counter_.fetch_add(1, std::memory_order_relaxed), 1);
  return size_t(x % (kMaxRandomLeadPages + 1));
}

void LargeHeap::account_window(ptrdiff_t delta) {
  if (delta >= 0) {
    update_peak(peak_windows_, windows_.fetch_add(size_t(delta), std::memory_order_relaxed) + size_t(delta));
  } else {
    windows_.fetch_sub(size_t(-delta), std::memory_order_relaxed);
  }
}

bool LargeHeap::shape_for(size_t size, size_t align, Shape* out) const {
  const size_t pg = page();
  const size_t a = align < kMinAlign ? kMinAlign : align;
  size_t w;
  bool ok;
  if (a > pg) {
    ok = checked_align_up(size, pg, &w) && checked_add(w, pg, &w);
  } else if (config_.place_at_end) {
    ok = checked_align_up(size, a, &w) && checked_add(w, kHeaderSize, &w) && checked_align_up(w, pg, &w);
  } else {
    ok = checked_add(size, a > kLargeHeaderRoom ? a : kLargeHeaderRoom, &w) && checked_align_up(w, pg, &w);
  }
  if (!ok || w > (SIZE_MAX >> 2)) return false;
  out->window = w;
  out->lead = config_.guards ? pg : 0;
  out->trail = config_.guards ? pg : 0;
  return true;
}

uintptr_t LargeHeap::place(const LargeBlock& m, size_t size, size_t align) const {
  const size_t a = align < kMinAlign ? kMinAlign : align;
  if (a > page()) return m.window_begin + page();
  if (config_.place_at_end) return align_down(m.window_end - size, a);
  return m.window_begin + (a > kLargeHeaderRoom ? a : kLargeHeaderRoom);
}

void LargeHeap::guard_fresh(LargeBlock* m) {
  m->guard = pal::GuardKind::None;
  m->splits = 0;
  m->lead_guard = uint32_t(m->window_begin - m->map_base);
  if (!config_.guards) return;
  // One charge of two splits covers both guards: each sits at an end of
  // the mapping, where mprotect adds one mapping.
  m->guard = pal::Pal::try_guard(reinterpret_cast<void*>(m->map_base), m->lead_guard, 2);
  if (m->guard == pal::GuardKind::None) return;
  if (m->guard == pal::GuardKind::Protect) {
    m->splits = 2;
    splits_.fetch_add(2, std::memory_order_relaxed);
  }
  mark_guard(m->window_end, m->map_base + m->map_size, m->guard);
}

bool LargeHeap::map_fresh(const Shape& shape, size_t align, LargeBlock* out) {
  const size_t pg = page();
  const size_t a = align < kMinAlign ? kMinAlign : align;
  size_t lead = shape.lead + random_lead_pages() * pg;
  size_t total;
  if (!checked_add(lead, shape.window, &total) || !checked_add(total, shape.trail, &total)) return false;
  LargeBlock m;
  if (a <= pg) {
    void* p = pal::Pal::map(total);
    if (p == nullptr) return false;
    m.map_base = reinterpret_cast<uintptr_t>(p);
  } else {
    // Over-map by the alignment, then give back what lies outside.
    size_t over;
    if (!checked_add(total, a, &over)) return false;
    void* p = pal::Pal::map(over);
    if (p == nullptr) return false;
    uintptr_t raw = reinterpret_cast<uintptr_t>(p);
    uintptr_t user = align_up(raw + lead + pg, a);
    m.map_base = user - pg - lead;
    if (m.map_base > raw) pal::Pal::unmap(p, m.map_base - raw);
    uintptr_t end = m.map_base + total;
    if (raw + over > end) pal::Pal::unmap(reinterpret_cast<void*>(end), raw + over - end);
  }
  m.map_size = total;
  m.window_begin = m.map_base + lead;
  m.window_end = m.window_begin + shape.window;
  guard_fresh(&m);
  account_window(ptrdiff_t(shape.window));
  *out = m;
  return true;
}

void LargeHeap::unmap(const LargeBlock& m) {
  pal::Pal::unmap(reinterpret_cast<void*>(m.map_base), m.map_size);
  if (m.splits != 0) {
    pal::Pal::guard_uncharge(m.splits);
    splits_.fetch_sub(m.splits, std::memory_order_relaxed);
  }
  size_t window = m.window_end - m.window_begin;
  account_window(-ptrdiff_t(window));
  unmapped_total_.fetch_add(window, std::memory_order_relaxed);
}

// Moves the window of m to [window_begin, window_end) inside the mapping,
// its guards with it. The bytes that were in the window stay (as dirty
// reserve); the caller clears what the new window takes, if it must.
// False if the kernel refused to lift a guard: then m may only be unmapped
// (or, when only the trailing guard moved, nothing has changed).
bool LargeHeap::reshape(LargeBlock* m, uintptr_t window_begin, uintptr_t window_end) {
  const uintptr_t ob = m->window_begin, oe = m->window_end;
  if (ob == window_begin && oe == window_end) return true;
  const pal::GuardKind kind = m->guard;
  if (kind == pal::GuardKind::Marker) {
    // Only guard pages carry markers: lift the old ones (their pages may
    // join the window), then mark the new ones.
    const size_t pg = page(), lead = m->lead_guard;
    const bool lead_moves = ob != window_begin, trail_moves = oe != window_end;
    if (lead_moves && !unmark_guard(ob - lead, ob, kind)) return false;
    if (trail_moves && !unmark_guard(oe, oe + pg, kind)) return false;
    if (lead_moves) mark_guard(window_begin - lead, window_begin, kind);
    if (trail_moves) mark_guard(window_end, window_end + pg, kind);
  } else if (kind == pal::GuardKind::Protect) {
    // Everything outside the window is inaccessible: pages leave first, so
    // that mprotect'ed runs merge before any split.
    conceal(ob, oe < window_begin ? oe : window_begin, kind);
    conceal(ob > window_end ? ob : window_end, oe, kind);
    if (!reveal(window_begin, window_end < ob ? window_end : ob, kind) ||
        !reveal(window_begin > oe ? window_begin : oe, window_end, kind))
      return false;
  }
  add_dirty(m, ob, oe);
  account_window(ptrdiff_t(window_end - window_begin) - ptrdiff_t(oe - ob));
  m->window_begin = window_begin;
  m->window_end = window_end;
  return true;
}

// Grows the mapping to new_size bytes with mremap (page tables move, bytes
// do not; the block may change address) and extends the window to end at
// map_base + window_end_offset, keeping its start; new_size leaves room for
// the trailing guard. False: m is unchanged.
bool LargeHeap::grow_mapping(LargeBlock* m, size_t new_size, size_t window_end_offset) {
  const size_t old_size = m->map_size;
  const size_t begin_off = m->window_begin - m->map_base, end_off = m->window_end - m->map_base;
  const pal::GuardKind kind = m->guard;
  // mremap works within one kernel mapping; mprotect guards make three.
  if (kind == pal::GuardKind::Protect && !pal::Pal::protect(reinterpret_cast<void*>(m->map_base), old_size, true))
    return false;
  void* moved = pal::Pal::remap(reinterpret_cast<void*>(m->map_base), old_size, new_size);
  if (moved == nullptr) {
    if (kind == pal::GuardKind::Protect) {
      conceal(m->map_base, m->window_begin, kind);
      conceal(m->window_end, m->map_base + old_size, kind);
    }
    return false;
  }
  const uintptr_t base = reinterpret_cast<uintptr_t>(moved), end = base + new_size;
  const uintptr_t window_end = base + window_end_offset, old_window_end = base + end_off;
  if (kind == pal::GuardKind::Protect) {
    conceal(base, base + begin_off, kind);
    conceal(window_end, end, kind);
  } else if (kind == pal::GuardKind::Marker) {
    // The markers moved with the page tables; the trailing one moves on.
    unmark_guard(old_window_end, old_window_end + page(), kind);
    mark_guard(window_end, window_end + page(), kind);
  }
  account_window(ptrdiff_t(window_end_offset) - ptrdiff_t(end_off));
  m->map_base = base;
  m->map_size = new_size;
  m->window_begin = base + begin_off;
  m->window_end = window_end;
  return true;
}

// Gives back the reserve on both sides (the guards stay).
void LargeHeap::trim(LargeBlock* m) {
  const uintptr_t lo = m->window_begin - m->lead_guard;
  const uintptr_t hi = m->window_end + (config_.guards ? page() : 0);
  const uintptr_t end = m->map_base + m->map_size;
  if (lo > m->map_base) pal::Pal::unmap(reinterpret_cast<void*>(m->map_base), lo - m->map_base);
  if (end > hi) pal::Pal::unmap(reinterpret_cast<void*>(hi), end - hi);
  const size_t shift = lo - m->map_base, size = hi - lo;
  size_t b = m->dirty_begin > shift ? m->dirty_begin - shift : 0;
  size_t e = m->dirty_end > shift ? m->dirty_end - shift : 0;
  m->dirty_begin = b < size ? b : size;
  m->dirty_end = e < size ? e : size;
  m->map_base = lo;
  m->map_size = size;
}

// Resident reserve of blocks in use shares one budget with the cache; past
// it, the reserve is unmapped.
void LargeHeap::keep_slack_in_budget(LargeBlock* m) {
  size_t slack = slack_of(*m);
  if (slack == 0) return;
  size_t cached = __atomic_load_n(&cache_bytes_, __ATOMIC_RELAXED);
  if (slack_bytes_.load(std::memory_order_relaxed) + cached + slack > kCacheBytes) trim(m);
}

// Reuse keeps pages that are already resident, which is what makes a cache
// worth having: page faults, not syscalls, dominate the cost of big blocks.
// A mapping whose window already has the size is taken first (no system
// call), else the smallest that fits, its window moved only as far as the
// block needs; if none fits, the largest is grown with mremap, so only its
// new tail faults in. What the new window shares with the dirty range is
// cleared when zeroes were asked for or a block left it with scrub.
bool LargeHeap::take_cached(const Shape& shape, bool zero, LargeBlock* out) {
  LargeBlock m;
  bool fits;
  {
    pal::LockGuard guard(cache_lock_);
    if (cache_count_ == 0) return false;
    size_t best = kCacheEntries, largest = 0;
    for (size_t i = 0; i < cache_count_; ++i) {
      const LargeBlock& e = cache_[i];
      if (e.map_size >= e.lead_guard + shape.window + shape.trail) {
        if (e.window_end - e.window_begin == shape.window) {
          best = i;
          break;
        }
        if (best == kCacheEntries || e.map_size < cache_[best].map_size) best = i;
      }
      if (e.map_size > cache_[largest].map_size) largest = i;
    }
    fits = best != kCacheEntries;
    size_t pick = fits ? best : largest;
    m = cache_[pick];
    cache_bytes_ -= m.dirty_end - m.dirty_begin;
    cache_windows_ -= m.window_end - m.window_begin;
    for (size_t i = pick + 1; i < cache_count_; ++i) cache_[i - 1] = cache_[i];
    --cache_count_;
  }
  const size_t w = shape.window;
  bool ok;
  if (!fits) {
    size_t begin_off = m.window_begin - m.map_base;
    ok = grow_mapping(&m, begin_off + w + shape.trail, begin_off + w);
  } else {
    // The window keeps its start when it can: the reserve after it is room
    // for realloc to grow in place, in either placement.
    const uintptr_t end = m.map_base + m.map_size;
    uintptr_t wb = m.window_begin + w + shape.trail <= end ? m.window_begin : end - shape.trail - w;
    ok = reshape(&m, wb, wb + w);
  }
  if (!ok) {
    unmap(m);
    return false;
  }
  if (zero || m.scrub) {
    clear_dirty(m, m.window_begin, m.window_end);
    const uintptr_t db = m.map_base + m.dirty_begin, de = m.map_base + m.dirty_end;
    if (db >= m.window_begin && de <= m.window_end) {
      m.dirty_begin = m.dirty_end = 0;
      m.scrub = false;
    }
  }
  keep_slack_in_budget(&m);
  slack_bytes_.fetch_add(slack_of(m), std::memory_order_relaxed);
  *out = m;
  return true;
}

void LargeHeap::put_cached(const LargeBlock& m) {
  LargeBlock evicted[kCacheEntries + 1];
  size_t n_evicted = 0;
  const size_t bytes = m.dirty_end - m.dirty_begin;
  // The cache and the slack of live blocks share one budget.
  size_t slack = slack_bytes_.load(std::memory_order_relaxed);
  size_t budget = slack < kCacheBytes ? kCacheBytes - slack : 0;
  if (bytes <= kCacheBytes / 2 && bytes <= budget && m.map_size <= kCacheBytes) {
    pal::LockGuard guard(cache_lock_);
    // Evict the oldest entries (front of the array) until the new one fits.
    while (cache_count_ == kCacheEntries || cache_bytes_ + bytes > budget) {
      evicted[n_evicted++] = cache_[0];
      cache_bytes_ -= cache_[0].dirty_end - cache_[0].dirty_begin;
      cache_windows_ -= cache_[0].window_end - cache_[0].window_begin;
      for (size_t i = 1; i < cache_count_; ++i) cache_[i - 1] = cache_[i];
      --cache_count_;
    }
    cache_[cache_count_++] = m;
    cache_bytes_ += bytes;
    cache_windows_ += m.window_end - m.window_begin;
  } else {
    evicted[n_evicted++] = m;
  }
  for (size_t i = 0; i < n_evicted; ++i) unmap(evicted[i]);
}

void LargeHeap::write_header(uintptr_t user, Origin origin) {
  ChunkHeader h;
  h.class_id = kLargeClass;
  h.state = ChunkState::Allocated;
  h.origin = origin;
  HeaderCodec::store(user, g_header_codec.pack(h, user - kHeaderSize));
}

void* LargeHeap::allocate(size_t size, size_t align, bool zero, Origin origin) {
  Shape shape;
  if (!shape_for(size, align, &shape)) return nullptr;
  LargeBlock m;
  if (!(align <= page() && take_cached(shape, zero, &m)) && !map_fresh(shape, align, &m)) return nullptr;
  m.user = place(m, size, align);
  m.requested = size;
  if (!table_.insert(m)) {
    slack_bytes_.fetch_sub(slack_of(m), std::memory_order_relaxed);
    m.user = 0;
    add_dirty(&m, m.window_begin, m.window_end);
    put_cached(m);
    return nullptr;
  }
  update_peak(peak_blocks_, live_blocks_.fetch_add(1, std::memory_order_relaxed) + 1);
  write_header(m.user, origin);
  return reinterpret_cast<void*>(m.user);
}

// Whole mapping for markers (one kernel mapping stays one; markers survive
// mprotect), the window alone for mprotect guards (it merges with them).
bool LargeHeap::quarantine(uintptr_t user) {
  LargeBlock b;
  if (!table_.mark_quarantined(user, &b)) return false;
  live_blocks_.fetch_sub(1, std::memory_order_relaxed);
  quarantined_blocks_.fetch_add(1, std::memory_order_relaxed);
  quarantined_bytes_.fetch_add(b.window_end - b.window_begin, std::memory_order_relaxed);
  // A block in a reused, bigger mapping would hold the whole reserve out
  // of the cache (and out of the budget) while it waits: give it back.
  size_t slack = slack_of(b);
  if (slack != 0) {
    trim(&b);
    slack_bytes_.fetch_sub(slack - slack_of(b), std::memory_order_relaxed);
    table_.replace(b);
  }
  if (b.guard == pal::GuardKind::Protect) {
    pal::Pal::protect(reinterpret_cast<void*>(b.window_begin), b.window_end - b.window_begin, false);
  } else {
    pal::Pal::protect(reinterpret_cast<void*>(b.map_base), b.map_size, false);
  }
  return true;
}

bool LargeHeap::deallocate(uintptr_t user, bool scrub) {
  LargeBlock b;
  if (!table_.erase(user, &b)) return false;
  const size_t window = b.window_end - b.window_begin;
  if (b.quarantined) {
    quarantined_blocks_.fetch_sub(1, std::memory_order_relaxed);
    quarantined_bytes_.fetch_sub(window, std::memory_order_relaxed);
  } else {
    live_blocks_.fetch_sub(1, std::memory_order_relaxed);
  }
  slack_bytes_.fetch_sub(slack_of(b), std::memory_order_relaxed);
  add_dirty(&b, b.window_begin, b.window_end);
  if (b.dirty_end - b.dirty_begin > kCacheBytes / 2 || b.map_size > kCacheBytes) {
    unmap(b);
    return true;
  }
  if (b.quarantined) {
    bool back = b.guard == pal::GuardKind::Protect
                    ? pal::Pal::protect(reinterpret_cast<void*>(b.window_begin), window, true)
                    : pal::Pal::protect(reinterpret_cast<void*>(b.map_base), b.map_size, true);
    if (!back) {
      unmap(b);
      return true;
    }
  } else {
    ChunkHeader h;
    h.class_id = kLargeClass;
    h.state = ChunkState::Free;
    HeaderCodec::store(user, g_header_codec.pack(h, user - kHeaderSize));
  }
  b.user = 0;
  b.requested = 0;
  b.quarantined = false;
  b.scrub = b.scrub || scrub;
  if (scrub && scrub_by_purge_ &&
      pal::Pal::purge(reinterpret_cast<void*>(b.map_base + b.dirty_begin), b.dirty_end - b.dirty_begin)) {
    b.dirty_begin = b.dirty_end = 0;
    b.scrub = false;
  }
  put_cached(b);
  return true;
}

void* LargeHeap::resize_without_copy(uintptr_t user, size_t new_size) {
  LargeBlock b;
  if (!table_.find(user, &b) || b.quarantined) return nullptr;
  if (config_.place_at_end) {
    // The block stays against the guard only if its rounding is unchanged;
    // otherwise, unless exactness is worth a copy, the guard moves by pages.
    size_t rounded = b.window_end - user;
    if (new_size <= rounded && rounded - new_size < kMinAlign) {
      b.requested = new_size;
      table_.replace(b);
      return reinterpret_cast<void*>(user);
    }
    if (config_.exact_realloc) return nullptr;
  }
  const size_t pg = page();
  const size_t offset = user - b.window_begin;
  size_t w;
  if (!checked_add(new_size, offset, &w) || !checked_align_up(w, pg, &w) || w > (SIZE_MAX >> 2)) return nullptr;
  const size_t begin_off = b.window_begin - b.map_base;
  const size_t trail = config_.guards ? pg : 0;
  const uintptr_t old_end = b.window_end;
  const size_t old_slack = slack_of(b);
  if (begin_off + w + trail <= b.map_size) {
    // Fits the mapping: move the trailing guard, no copy.
    if (!reshape(&b, b.window_begin, b.window_begin + w)) return nullptr;
    if (b.scrub) clear_dirty(b, old_end, b.window_end);
    keep_slack_in_budget(&b);
    slack_bytes_.fetch_add(slack_of(b), std::memory_order_relaxed);
    slack_bytes_.fetch_sub(old_slack, std::memory_order_relaxed);
    b.requested = new_size;
    table_.replace(b);
    return reinterpret_cast<void*>(user);
  }
  // Out of the table before the pages move: once mremap has moved them, the
  // old range is free address space another thread may map and record.
  LargeBlock old;
  table_.erase(user, &old);
  if (!grow_mapping(&b, begin_off + w + trail, begin_off + w)) {
    table_.insert(old);  // cannot fail: the entry's slot was just freed
    return nullptr;
  }
  if (b.scrub) clear_dirty(b, b.window_begin + (old_end - old.window_begin), b.window_end);
  slack_bytes_.fetch_add(slack_of(b), std::memory_order_relaxed);
  slack_bytes_.fetch_sub(old_slack, std::memory_order_relaxed);
  b.user = b.window_begin + offset;
  b.requested = new_size;
  if (!table_.insert(b)) {
    // The table cannot grow: the block stays valid only if it stays known.
    MessageBuilder detail;
    detail.str("large-block table could not grow while moving a block");
    report_fatal(ErrorKind::MetadataCorruption, b.user, detail);
  }
  // The header moved with the pages, but its checksum covers its old
  // address: verify it there, then re-key it to the new one.
  ChunkHeader h;
  if (!g_header_codec.unpack(HeaderCodec::load(b.user), user - kHeaderSize, &h)) {
    MessageBuilder detail;
    detail.str("chunk header of a large block failed its integrity check while the block was moved by realloc");
    report_fatal(ErrorKind::MetadataCorruption, b.user, detail);
  }
  HeaderCodec::store(b.user, g_header_codec.pack(h, b.user - kHeaderSize));
  return reinterpret_cast<void*>(b.user);
}

void* LargeHeap::reallocate(uintptr_t user, size_t new_size) {
  void* q = resize_without_copy(user, new_size);
  if (q != nullptr) return q;
  LargeBlock b;
  if (!table_.find(user, &b) || b.quarantined) return nullptr;
  // Only exact end placement ever moves bytes; otherwise a failed resize
  // means the OS refused memory.
  if (!config_.place_at_end || !config_.exact_realloc) return nullptr;
  ChunkHeader h;
  if (!g_header_codec.unpack(HeaderCodec::load(user), user - kHeaderSize, &h)) {
    MessageBuilder detail;
    detail.str("chunk header of a large block failed its integrity check while the block was moved by realloc");
    report_fatal(ErrorKind::MetadataCorruption, user, detail);
  }
  void* moved = allocate(new_size, kMinAlign, false, h.origin);
  if (moved == nullptr) return nullptr;
  memcpy(moved, reinterpret_cast<void*>(user), b.requested < new_size ? b.requested : new_size);
  deallocate(user, true);
  return moved;
}

size_t LargeHeap::release_cache() {
  LargeBlock all[kCacheEntries];
  size_t n;
  {
    pal::LockGuard guard(cache_lock_);
    n = cache_count_;
    for (size_t i = 0; i < n; ++i) all[i] = cache_[i];
    cache_count_ = 0;
    cache_bytes_ = 0;
    cache_windows_ = 0;
  }
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    unmap(all[i]);
    total += all[i].dirty_end - all[i].dirty_begin;
  }
  return total;
}

LargeStats LargeHeap::stats() {
  LargeStats s;
  size_t cached_windows;
  {
    pal::LockGuard guard(cache_lock_);
    s.cached_bytes = cache_bytes_;
    cached_windows = cache_windows_;
  }
  s.blocks = live_blocks_.load(std::memory_order_relaxed);
  s.quarantined_blocks = quarantined_blocks_.load(std::memory_order_relaxed);
  s.quarantined_bytes = quarantined_bytes_.load(std::memory_order_relaxed);
  size_t windows = windows_.load(std::memory_order_relaxed);
  size_t other = cached_windows + s.quarantined_bytes;
  // Read apart from each other, so a concurrent eviction can make the
  // difference negative for a moment.
  s.live_mapped_bytes = (windows > other ? windows - other : 0) + slack_bytes_.load(std::memory_order_relaxed);
  s.peak_blocks = peak_blocks_.load(std::memory_order_relaxed);
  s.peak_mapped_bytes = peak_windows_.load(std::memory_order_relaxed);
  s.guard_splits = splits_.load(std::memory_order_relaxed);
  return s;
}

bool LargeHeap::find_fault(uintptr_t addr, LargeBlock* out) const {
  // A linear scan without the shard locks: a fault is rare, and the
  // faulting thread may be anywhere. A record moved by a concurrent insert
  // or erase may be missed; the fault is then passed on unexplained.
  bool found = false;
  table_.for_each_unlocked([&](const LargeBlock& b) {
    if (!found && addr - b.map_base < b.map_size) {
      *out = b;
      found = true;
    }
  });
  return found;
}

void LargeHeap::unmap_for_testing() {
  release_cache();
  table_.unmap_for_testing();
}

void LargeHeap::lock_all() {
  cache_lock_.lock();
  table_.lock_all();
}

void LargeHeap::unlock_all() {
  table_.unlock_all();
  cache_lock_.unlock();
}

void LargeHeap::reset_locks_after_fork() {
  table_.reset_locks_after_fork();
  cache_lock_.reset_after_fork();
}

}  // namespace heapguard
