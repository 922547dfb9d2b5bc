// SPDX-License-Identifier: Apache-2.0
// LargeHeap implementation. Layout of a large block's mapping:
//   [map_base ... user-8: header][user ... user+size][slack to page end]
// with user = map_base + 16 for ordinary blocks, or the first suitably
// aligned address past map_base + 16 for over-aligned ones.
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

}  // namespace

void LargeHeap::account_map(size_t bytes) {
  update_peak(peak_mapped_, live_mapped_.fetch_add(bytes, std::memory_order_relaxed) + bytes);
}

void LargeHeap::unmap(uintptr_t base, size_t size) {
  pal::Pal::unmap(reinterpret_cast<void*>(base), size);
  live_mapped_.fetch_sub(size, std::memory_order_relaxed);
  unmapped_total_.fetch_add(size, std::memory_order_relaxed);
}

// Reuse keeps pages that are already resident, which is what makes a cache
// worth having: page faults, not syscalls, dominate the cost of fresh big
// blocks. The smallest cached mapping that fits is taken whole; if none
// fits, the largest is grown with mremap, so only its new tail faults in.
bool LargeHeap::take_cached(size_t need, CachedMapping* out) {
  CachedMapping grown;
  {
    pal::LockGuard guard(cache_lock_);
    if (cache_count_ == 0) return false;
    size_t best = kCacheEntries, largest = 0;
    for (size_t i = 0; i < cache_count_; ++i) {
      if (cache_[i].size >= need && (best == kCacheEntries || cache_[i].size < cache_[best].size)) best = i;
      if (cache_[i].size > cache_[largest].size) largest = i;
    }
    size_t pick = best != kCacheEntries ? best : largest;
    *out = cache_[pick];
    cache_bytes_ -= out->size;
    for (size_t i = pick + 1; i < cache_count_; ++i) cache_[i - 1] = cache_[i];
    --cache_count_;
    if (best != kCacheEntries) return true;
    grown = *out;
  }
  void* moved = pal::Pal::remap(reinterpret_cast<void*>(grown.base), grown.size, need);
  if (moved == nullptr) {
    unmap(grown.base, grown.size);
    return false;
  }
  account_map(need - grown.size);
  *out = {reinterpret_cast<uintptr_t>(moved), need};
  return true;
}

// A block may sit in a mapping bigger than it needs (reused whole, or
// shrunk by realloc). That slack is resident memory the program does not
// use, so it shares one budget with the cache; past it, tails are unmapped.
size_t LargeHeap::fit_slack(uintptr_t base, size_t map_size, size_t need) {
  size_t slack = map_size - need;
  if (slack == 0) return map_size;
  size_t total = slack_bytes_.load(std::memory_order_relaxed) + cached_bytes_relaxed();
  if (total + slack > kCacheBytes) {
    unmap(base + need, slack);
    return need;
  }
  slack_bytes_.fetch_add(slack, std::memory_order_relaxed);
  return map_size;
}

size_t LargeHeap::cached_bytes_relaxed() const { return __atomic_load_n(&cache_bytes_, __ATOMIC_RELAXED); }

size_t LargeHeap::slack_of(const LargeBlock& b) {
  return b.map_size - align_up(b.user - b.map_base + b.requested, pal::Pal::page_size());
}

void LargeHeap::put_cached(uintptr_t base, size_t size) {
  CachedMapping evicted[kCacheEntries + 1];
  size_t n_evicted = 0;
  // The cache and the slack of live blocks share one budget.
  size_t slack = slack_bytes_.load(std::memory_order_relaxed);
  size_t budget = slack < kCacheBytes ? kCacheBytes - slack : 0;
  if (size <= kCacheBytes / 2 && size <= budget) {
    pal::LockGuard guard(cache_lock_);
    // Evict the oldest entries (front of the array) until the new one fits.
    while (cache_count_ == kCacheEntries || cache_bytes_ + size > budget) {
      evicted[n_evicted++] = cache_[0];
      cache_bytes_ -= cache_[0].size;
      for (size_t i = 1; i < cache_count_; ++i) cache_[i - 1] = cache_[i];
      --cache_count_;
    }
    cache_[cache_count_++] = {base, size};
    cache_bytes_ += size;
  } else {
    evicted[n_evicted++] = {base, size};
  }
  for (size_t i = 0; i < n_evicted; ++i) unmap(evicted[i].base, evicted[i].size);
}

void* LargeHeap::allocate(size_t size, size_t align, bool zero, Origin origin) {
  const size_t page = pal::Pal::page_size();
  size_t lead = align <= kMinAlign ? kLargeHeaderRoom : (align < kLargeHeaderRoom ? kLargeHeaderRoom : align);
  size_t need;
  if (!checked_add(size, lead, &need) || !checked_align_up(need, page, &need) || need > (SIZE_MAX >> 2)) return nullptr;

  uintptr_t base = 0;
  size_t map_size = 0;
  bool fresh = true;
  CachedMapping cached;
  if (align <= page && take_cached(need, &cached)) {
    base = cached.base;
    map_size = fit_slack(cached.base, cached.size, need);
    fresh = false;
  } else if (align <= page) {
    void* m = pal::Pal::map(need);
    if (m == nullptr) return nullptr;
    base = reinterpret_cast<uintptr_t>(m);
    map_size = need;
    account_map(map_size);
  } else {
    // Over-map by the alignment, then give back the misaligned head and the tail.
    size_t over;
    if (!checked_add(need, align, &over)) return nullptr;
    void* m = pal::Pal::map(over);
    if (m == nullptr) return nullptr;
    uintptr_t raw = reinterpret_cast<uintptr_t>(m);
    uintptr_t user = align_up(raw + kLargeHeaderRoom, align);
    base = align_down(user - kLargeHeaderRoom, page);
    map_size = align_up(user + size, page) - base;
    if (base > raw) pal::Pal::unmap(m, base - raw);
    if (raw + over > base + map_size) pal::Pal::unmap(reinterpret_cast<void*>(base + map_size), raw + over - base - map_size);
    account_map(map_size);
  }

  uintptr_t user = align <= kMinAlign ? base + kLargeHeaderRoom : align_up(base + kLargeHeaderRoom, align);
  LargeBlock block{user, base, map_size, size};
  if (!table_.insert(block)) {
    slack_bytes_.fetch_sub(slack_of(block), std::memory_order_relaxed);
    put_cached(base, map_size);
    return nullptr;
  }
  update_peak(peak_blocks_, live_blocks_.fetch_add(1, std::memory_order_relaxed) + 1);
  if (!fresh) {
    if (zero) memset(reinterpret_cast<void*>(user), 0, size);
  }
  ChunkHeader h;
  h.class_id = kLargeClass;
  h.state = ChunkState::Allocated;
  h.origin = origin;
  HeaderCodec::store(user, g_header_codec.pack(h, user - kHeaderSize));
  return reinterpret_cast<void*>(user);
}

void LargeHeap::deallocate(uintptr_t user) {
  LargeBlock b;
  if (!table_.erase(user, &b)) return;
  live_blocks_.fetch_sub(1, std::memory_order_relaxed);
  slack_bytes_.fetch_sub(slack_of(b), std::memory_order_relaxed);
  ChunkHeader h;
  h.class_id = kLargeClass;
  h.state = ChunkState::Free;
  HeaderCodec::store(user, g_header_codec.pack(h, user - kHeaderSize));
  put_cached(b.map_base, b.map_size);
}

void* LargeHeap::reallocate(uintptr_t user, size_t new_size) {
  LargeBlock b;
  if (!table_.find(user, &b)) return nullptr;
  const size_t page = pal::Pal::page_size();
  size_t offset = user - b.map_base;
  size_t need;
  if (!checked_add(new_size, offset, &need) || !checked_align_up(need, page, &need) || need > (SIZE_MAX >> 2)) return nullptr;
  if (need <= b.map_size) {
    // Fits the mapping: keep it (slack budget permitting), no copy, no syscall.
    slack_bytes_.fetch_sub(slack_of(b), std::memory_order_relaxed);
    table_.update_extent(user, fit_slack(b.map_base, b.map_size, need), new_size);
    return reinterpret_cast<void*>(user);
  }
  // Out of the table before the pages move: once mremap has moved them, the
  // old range is free address space another thread may map and record.
  LargeBlock old;
  table_.erase(user, &old);
  void* moved = pal::Pal::remap(reinterpret_cast<void*>(b.map_base), b.map_size, need);
  if (moved == nullptr) {
    table_.insert(old);  // cannot fail: the entry's slot was just freed
    return nullptr;
  }
  slack_bytes_.fetch_sub(slack_of(b), std::memory_order_relaxed);
  account_map(need - b.map_size);
  b.map_base = reinterpret_cast<uintptr_t>(moved);
  b.map_size = need;
  b.user = b.map_base + offset;
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

size_t LargeHeap::release_cache() {
  CachedMapping all[kCacheEntries];
  size_t n;
  {
    pal::LockGuard guard(cache_lock_);
    n = cache_count_;
    for (size_t i = 0; i < n; ++i) all[i] = cache_[i];
    cache_count_ = 0;
    cache_bytes_ = 0;
  }
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    unmap(all[i].base, all[i].size);
    total += all[i].size;
  }
  return total;
}

LargeStats LargeHeap::stats() {
  LargeStats s;
  {
    pal::LockGuard guard(cache_lock_);
    s.cached_bytes = cache_bytes_;
  }
  s.blocks = live_blocks_.load(std::memory_order_relaxed);
  size_t mapped = live_mapped_.load(std::memory_order_relaxed);
  // Read apart from the cache size, so a concurrent eviction can make the
  // difference negative for a moment.
  s.live_mapped_bytes = mapped > s.cached_bytes ? mapped - s.cached_bytes : 0;
  s.peak_blocks = peak_blocks_.load(std::memory_order_relaxed);
  s.peak_mapped_bytes = peak_mapped_.load(std::memory_order_relaxed);
  return s;
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
