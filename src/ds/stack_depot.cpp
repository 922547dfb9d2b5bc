// SPDX-License-Identifier: Apache-2.0
// Stack depot: a chained hash table whose bucket heads and entries live in
// one reserved region. Insert = bump-allocate an entry, fill it, CAS it onto
// its bucket; lookups walk immutable chains. An id is the entry's offset in
// the region divided by 8, so get() is O(1).
#include "ds/stack_depot.h"

#include "core/core.h"

namespace heapguard {

constinit StackDepot g_stack_depot;

namespace {

// Every capture is stored (or found): twice per malloc/free pair in debug.
uint64_t stack_hash(const uintptr_t* pcs, unsigned n) { return hash_words(pcs, n, 0x6a09e667f3bcc909ULL); }

// Without an early exit, so the compiler compares several frames at once.
bool same_frames(const uintptr_t* a, const uintptr_t* b, unsigned n) {
  uintptr_t diff = 0;
  for (unsigned i = 0; i < n; ++i) diff |= a[i] ^ b[i];
  return diff == 0;
}

}  // namespace

uintptr_t StackDepot::region() {
  uintptr_t base = region_.load(std::memory_order_acquire);
  if (HEAPGUARD_LIKELY(base != 0)) return base;
  if (reserve_failed_.load(std::memory_order_relaxed)) return 0;
  // Racing first users each reserve; one wins the CAS, the others unmap.
  void* mem = pal::Pal::reserve(capacity_);
  if (mem == nullptr || !pal::Pal::commit(mem, kBucketBytes)) {
    if (mem != nullptr) pal::Pal::unmap(mem, capacity_);
    reserve_failed_.store(true, std::memory_order_relaxed);
    return 0;
  }
  pal::Pal::name_region(mem, capacity_, "heapguard-stack-depot");
  uintptr_t expected = 0;
  if (region_.compare_exchange_strong(expected, reinterpret_cast<uintptr_t>(mem), std::memory_order_acq_rel)) {
    return reinterpret_cast<uintptr_t>(mem);
  }
  pal::Pal::unmap(mem, capacity_);
  return expected;
}

bool StackDepot::commit_range(uintptr_t base, size_t offset, size_t size) {
  for (size_t c = offset / kChunk; c <= (offset + size - 1) / kChunk; ++c) {
    const uint64_t bit = uint64_t{1} << (c % 64);
    if (chunk_bits_[c / 64].load(std::memory_order_acquire) & bit) continue;
    if (!pal::Pal::commit(reinterpret_cast<void*>(base + c * kChunk), kChunk)) return false;
    chunk_bits_[c / 64].fetch_or(bit, std::memory_order_release);
  }
  return true;
}

bool StackDepot::committed(size_t offset, size_t size) const {
  for (size_t c = offset / kChunk; c <= (offset + size - 1) / kChunk; ++c) {
    if ((chunk_bits_[c / 64].load(std::memory_order_acquire) & (uint64_t{1} << (c % 64))) == 0) return false;
  }
  return true;
}

// The id of an entry equal to pcs[0..n) among the chain from `from` up to
// (not including) `stop`, or 0.
uint32_t StackDepot::find(uintptr_t base, uint32_t from, uint32_t stop, uint64_t hash, const uintptr_t* pcs,
                          unsigned n) const {
  for (uint32_t id = from; id != 0 && id != stop;) {
    const auto* e = reinterpret_cast<const Header*>(base + (size_t{id} << 3));
    if (e->hash == hash && e->n == n) {
      if (same_frames(reinterpret_cast<const uintptr_t*>(e + 1), pcs, n)) return id;
    }
    id = e->next;
  }
  return 0;
}

uint32_t StackDepot::put(const uintptr_t* pcs, unsigned n) {
  if (n == 0 || pcs == nullptr) return 0;
  if (n > pal::kMaxStackFrames) n = pal::kMaxStackFrames;
  const uintptr_t base = region();
  if (base == 0) return 0;
  const uint64_t hash = stack_hash(pcs, n);
  auto* buckets = reinterpret_cast<std::atomic<uint32_t>*>(base);
  std::atomic<uint32_t>& bucket = buckets[hash >> (64 - kBucketBits)];

  uint32_t head = bucket.load(std::memory_order_acquire);
  if (uint32_t id = find(base, head, 0, hash, pcs, n)) return id;

  const size_t size = sizeof(Header) + size_t{n} * sizeof(uintptr_t);
  if (used_.load(std::memory_order_relaxed) + size > capacity_) return 0;
  const size_t offset = used_.fetch_add(size, std::memory_order_relaxed);
  if (offset + size > capacity_ || !commit_range(base, offset, size)) return 0;

  auto* e = reinterpret_cast<Header*>(base + offset);
  auto* stored = reinterpret_cast<uintptr_t*>(e + 1);
  for (unsigned i = 0; i < n; ++i) stored[i] = pcs[i];
  e->n = static_cast<uint16_t>(n);
  e->magic = kMagic;
  e->hash = hash;
  const auto id = static_cast<uint32_t>(offset >> 3);
  for (;;) {
    e->next = head;
    // Release: a reader that sees the new head sees the filled entry.
    if (bucket.compare_exchange_weak(head, id, std::memory_order_release, std::memory_order_acquire)) return id;
    // Entries were linked meanwhile (head now points at them): one may be
    // this very stack, inserted by another thread. Then ours is abandoned;
    // the few bytes are the price of never locking.
    if (uint32_t dup = find(base, head, e->next, hash, pcs, n)) return dup;
  }
}

unsigned StackDepot::get(uint32_t id, uintptr_t* out, unsigned max) const {
  if (id == 0 || out == nullptr || max == 0) return 0;
  const uintptr_t base = region_.load(std::memory_order_acquire);
  if (base == 0) return 0;
  const size_t offset = size_t{id} << 3;
  if (offset < kBucketBytes || offset + sizeof(Header) > capacity_ || !committed(offset, sizeof(Header))) return 0;
  const auto* e = reinterpret_cast<const Header*>(base + offset);
  const unsigned n = e->n;
  if (e->magic != kMagic || n == 0 || n > pal::kMaxStackFrames) return 0;
  const size_t size = sizeof(Header) + size_t{n} * sizeof(uintptr_t);
  if (offset + size > capacity_ || !committed(offset, size)) return 0;
  const auto* stored = reinterpret_cast<const uintptr_t*>(e + 1);
  if (stack_hash(stored, n) != e->hash) return 0;
  const unsigned count = n < max ? n : max;
  for (unsigned i = 0; i < count; ++i) out[i] = stored[i];
  return count;
}

size_t StackDepot::bytes_used() const {
  if (region_.load(std::memory_order_acquire) == 0) return 0;
  const size_t used = used_.load(std::memory_order_relaxed);
  return used < capacity_ ? used : capacity_;
}

void StackDepot::unmap_for_testing() {
  const uintptr_t base = region_.exchange(0, std::memory_order_acq_rel);
  if (base != 0) pal::Pal::unmap(reinterpret_cast<void*>(base), capacity_);
  used_.store(kBucketBytes, std::memory_order_relaxed);
  reserve_failed_.store(false, std::memory_order_relaxed);
  for (auto& word : chunk_bits_) word.store(0, std::memory_order_relaxed);
}

}  // namespace heapguard
