// SPDX-License-Identifier: Apache-2.0
// Quarantine: the global FIFO behind the per-thread batches (layer
// quarantine). One lock, taken once per batch; entries past the bounds are
// popped under it into a chunk on the caller's stack and recycled after it
// is released, because recycling takes allocator locks that fork orders
// after this one.
#include "quarantine/quarantine.h"

namespace heapguard {

namespace {

// Commit granularity of the ring: 4096 entries.
constexpr size_t kCommitStep = size_t{64} << 10;
// Keeps the size field clear of the 16-bit tag (65536 MiB, the option's
// maximum, is far below it).
constexpr size_t kMaxBudget = size_t{1} << 46;

static_assert(Quarantine::kEvictChunk >= QuarantineBatch::kCapacity,
              "an append of one batch must be popped back under the entry bound in the same lock hold");
static_assert(QuarantineBatch::kCapacity <= 256, "batch order indices are bytes");

[[noreturn]] HEAPGUARD_COLD void report_corrupt_entry(const void* where) {
  MessageBuilder m;
  m.str("a quarantine entry at ").hex(reinterpret_cast<uintptr_t>(where)).str(" failed its integrity check");
  report_fatal(ErrorKind::MetadataCorruption, reinterpret_cast<uintptr_t>(where), m);
}

}  // namespace

void Quarantine::init(size_t budget_bytes, uint64_t seed, uint64_t pointer_key, RecycleFn recycle) {
  codec_.set_key(pointer_key);
  recycle_ = codec_.encode(reinterpret_cast<uintptr_t>(recycle), &recycle_);
  seed_ = seed;
  if (budget_bytes == 0) return;
  size_t budget = budget_bytes < kMaxBudget ? budget_bytes : kMaxBudget;

  size_t max_entries = budget / kBudgetPerEntry;
  if (max_entries < kMinEntries) max_entries = kMinEntries;
  if (max_entries > kMaxEntries) max_entries = kMaxEntries;
  size_t capacity = max_entries + QuarantineBatch::kCapacity;
  size_t reserved = align_up(capacity * sizeof(QuarantineEntry), pal::Pal::page_size());
  void* ring = pal::Pal::reserve(reserved);
  if (ring == nullptr) return;  // stays disabled: the allocator works without it
  pal::Pal::name_region(ring, reserved, "heapguard quarantine");

  ring_ = static_cast<QuarantineEntry*>(ring);
  capacity_ = capacity;
  reserved_bytes_ = reserved;
  max_entries_ = max_entries;
  // A batch may hold 1/64 of the budget outside the global accounting
  // before it leaves early: with many threads freeing big blocks, unbounded
  // batches would each keep up to 64 blocks' bytes out of the budget.
  batch_bytes_limit_ = budget / 64 != 0 ? budget / 64 : 1;
  budget_ = budget;  // last: enabled() means the ring is ready
}

void Quarantine::push_slow(QuarantineBatch* local, uintptr_t user, size_t bytes) {
  if (budget_ == 0 || bytes > budget_) {
    recycle_fn()(user, bytes);
    return;
  }
  if (local == nullptr) {
    QuarantineEntry one;
    one.user = codec_.encode(user, &one.user);
    one.meta = codec_.encode(bytes | tag_of(user, bytes), &one.meta);
    static constexpr uint8_t kFirst[1] = {0};
    Evicted out;
    {
      pal::LockGuard guard(lock_);
      if (append_locked(&one, kFirst, 1)) {
        pop_locked(&out, 0, true);
      } else {
        take(&one, 1, &out);
      }
    }
    evict_rest(&out);
    return;
  }
  if (local->threshold == 0) seed_batch(local);
  store(local, user, bytes);
  if (local->count >= local->threshold || local->bytes >= local->byte_threshold) publish(local);
}

void Quarantine::seed_batch(QuarantineBatch* local) {
  // Batches are numbered in the order they are first used, so one thread's
  // pushes replay exactly for a given seed.
  uint64_t n = batches_seeded_.fetch_add(1, std::memory_order_relaxed) + 1;
  local->prng.reseed(mix_seed(seed_, n));
  draw_thresholds(local);
}

void Quarantine::draw_thresholds(QuarantineBatch* local) const {
  constexpr uint32_t kHalf = QuarantineBatch::kCapacity / 2;
  uint32_t count = kHalf + local->prng.below(kHalf + 1);
  local->threshold = count;
  // The same random share of the byte limit, so batches of big blocks are
  // not cut at a predictable fill either.
  size_t bytes = batch_bytes_limit_ / QuarantineBatch::kCapacity * count;
  local->byte_threshold = bytes != 0 ? bytes : 1;
}

void Quarantine::publish(QuarantineBatch* local) {
  size_t n = local->count;
  // The batch enters the queue in a random order (Fisher-Yates over its
  // indices, drawn before taking the lock), so the reuse order within a
  // batch is unpredictable too.
  uint8_t order[QuarantineBatch::kCapacity];
  for (size_t i = 0; i < n; ++i) order[i] = uint8_t(i);
  for (size_t i = n; i > 1; --i) {
    size_t j = local->prng.below(uint32_t(i));
    uint8_t t = order[i - 1];
    order[i - 1] = order[j];
    order[j] = t;
  }
  Evicted out;
  {
    pal::LockGuard guard(lock_);
    if (append_locked(local->entries, order, n)) {
      pop_locked(&out, 0, true);
    } else {
      take(local->entries, n, &out);
    }
    // Emptied before the lock is released: fork holds this lock, so in a
    // child every entry is either in the batch or in the ring, never both.
    local->count = 0;
    local->bytes = 0;
  }
  draw_thresholds(local);
  evict_rest(&out);
}

void Quarantine::flush(QuarantineBatch* local) {
  if (local == nullptr || local->count == 0) return;
  publish(local);
}

size_t Quarantine::drain() {
  uint64_t until;
  {
    pal::LockGuard guard(lock_);
    until = tail_;
  }
  // Stops at the tail seen on entry, so pushes by other threads cannot keep
  // it going; they enforce the bounds themselves.
  size_t total = 0;
  Evicted out;
  for (;;) {
    out.n = 0;
    {
      pal::LockGuard guard(lock_);
      pop_locked(&out, until, false);
    }
    if (out.n == 0) return total;
    total += out.n;
    recycle_all(&out);
  }
}

bool Quarantine::commit_locked(size_t n) {
  size_t need = tail_pos_ + n < capacity_ ? tail_pos_ + n : capacity_;
  if (need <= committed_) return true;
  size_t from = committed_ * sizeof(QuarantineEntry);
  size_t to = align_up(need * sizeof(QuarantineEntry), kCommitStep);
  if (to > reserved_bytes_) to = reserved_bytes_;
  // Commit is page-granular; from is a page boundary because it was the
  // previous `to` (a multiple of kCommitStep or the reservation's end).
  if (!pal::Pal::commit(reinterpret_cast<char*>(ring_) + from, to - from)) return false;
  committed_ = to / sizeof(QuarantineEntry);
  if (committed_ > capacity_) committed_ = capacity_;
  return true;
}

bool Quarantine::append_locked(const QuarantineEntry* src, const uint8_t* order, size_t n) {
  HEAPGUARD_CHECK(tail_ - head_ + n <= capacity_);
  if (!commit_locked(n)) return false;
  size_t added = 0;
  size_t pos = tail_pos_;
  for (size_t i = 0; i < n; ++i) {
    const QuarantineEntry& s = src[order[i]];
    QuarantineEntry& d = ring_[pos];
    d.user = transcode(s.user, &s.user, &d.user);
    d.meta = transcode(s.meta, &s.meta, &d.meta);
    added += codec_.decode(d.meta, &d.meta) & kBytesMask;
    if (++pos == capacity_) pos = 0;
  }
  tail_pos_ = pos;
  tail_ += n;
  ring_bytes_ += added;
  return true;
}

void Quarantine::take(const QuarantineEntry* src, size_t n, Evicted* out) const {
  for (size_t i = 0; i < n; ++i) {
    QuarantineEntry& d = out->e[out->n++];
    d.user = transcode(src[i].user, &src[i].user, &d.user);
    d.meta = transcode(src[i].meta, &src[i].meta, &d.meta);
  }
}

void Quarantine::pop_locked(Evicted* out, uint64_t until, bool enforce_bounds) {
  while (out->n < kEvictChunk && head_ != tail_) {
    if (head_ >= until && !(enforce_bounds && over_bounds_locked())) break;
    QuarantineEntry& s = ring_[head_pos_];
    QuarantineEntry& d = out->e[out->n];
    uintptr_t user = codec_.decode(s.user, &s.user);
    uintptr_t meta = codec_.decode(s.meta, &s.meta);
    // Checked here rather than at recycle time so the byte count stays
    // exact: a corrupted size must not skew the budget before the report.
    if (HEAPGUARD_UNLIKELY((meta & ~kBytesMask) != tag_of(user, meta & kBytesMask))) report_corrupt_entry(&s);
    d.user = codec_.encode(user, &d.user);
    d.meta = codec_.encode(meta, &d.meta);
    ring_bytes_ -= meta & kBytesMask;
    ++out->n;
    ++head_;
    if (++head_pos_ == capacity_) head_pos_ = 0;
  }
  publish_counts_locked();
}

void Quarantine::publish_counts_locked() {
  bytes_.store(ring_bytes_, std::memory_order_relaxed);
  entries_.store(size_t(tail_ - head_), std::memory_order_relaxed);
}

void Quarantine::recycle_all(const Evicted* out) const {
  RecycleFn fn = recycle_fn();
  for (size_t i = 0; i < out->n; ++i) {
    const QuarantineEntry& e = out->e[i];
    fn(codec_.decode(e.user, &e.user), codec_.decode(e.meta, &e.meta) & kBytesMask);
  }
}

void Quarantine::evict_rest(Evicted* out) {
  // A full chunk means the bounds may still be exceeded: pop again, one
  // chunk per lock hold, so other threads get the lock in between.
  for (;;) {
    bool more = out->n == kEvictChunk;
    recycle_all(out);
    if (!more) return;
    out->n = 0;
    {
      pal::LockGuard guard(lock_);
      pop_locked(out, 0, true);
    }
  }
}

RecycleFn Quarantine::recycle_fn() const {
  return reinterpret_cast<RecycleFn>(codec_.decode(recycle_, &recycle_));
}

void Quarantine::unmap_for_testing() {
  if (ring_ != nullptr) pal::Pal::unmap(ring_, reserved_bytes_);
  ring_ = nullptr;
  capacity_ = reserved_bytes_ = committed_ = 0;
  head_ = tail_ = 0;
  head_pos_ = tail_pos_ = 0;
  ring_bytes_ = 0;
  budget_ = max_entries_ = batch_bytes_limit_ = 0;
  publish_counts_locked();
}

}  // namespace heapguard
