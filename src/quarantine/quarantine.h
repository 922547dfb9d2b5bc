// SPDX-License-Identifier: Apache-2.0
// quarantine: freed blocks wait here before reuse, so a use-after-free lands
// in memory that is still poisoned (and verified when it leaves) instead of
// in a new object, and a double free still finds the block quarantined.
// Generic: it holds (address, size) pairs and hands each back through a
// recycle callback; it knows nothing of slabs or large blocks.
// Invariants: bounded in bytes (the budget) and in entries (so metadata stays
// bounded for tiny blocks); every stored address is encoded with
// PointerCodec at its own location, so quarantine memory holds no raw heap
// pointer to leak or forge; recycle() never runs under the quarantine lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/core.h"
#include "ds/ds.h"
#include "platform/platform.h"

namespace heapguard {

// Takes back one block leaving the quarantine. Called with no quarantine
// lock held (it may take allocator locks; fork orders the quarantine lock
// before them), possibly from several threads at once. It may call any
// Quarantine member, push() included, but must not make every call push
// again (that never ends).
using RecycleFn = void (*)(uintptr_t user, size_t bytes);

// One quarantined block. Both words are encoded at their own address; meta
// carries the size and a 16-bit tag of address and size, checked when the
// entry leaves, so an overwritten or swapped word is reported
// (heap-metadata-corruption) instead of recycling an arbitrary address.
// No member initializers: the eviction chunk on the stack stays
// uninitialized; batches value-initialize their array.
struct QuarantineEntry {
  uintptr_t user;
  uintptr_t meta;
};

// A thread's private batch, embedded in its thread cache. All-zero is a valid
// empty, not yet seeded batch (thread caches come zeroed from the metadata
// arena). Each batch leaves for the global queue at a random fill: a count
// between kCapacity/2 and kCapacity, or bytes between half and all of the
// batch byte limit, whichever comes first, and enters it in a random order:
// the reuse distance is FIFO plus a random delay.
struct QuarantineBatch {
  static constexpr uint32_t kCapacity = 64;
  uint32_t count = 0;
  uint32_t threshold = 0;  // 0: not seeded yet (first push seeds it)
  size_t bytes = 0;
  size_t byte_threshold = 0;
  Prng prng;
  QuarantineEntry entries[kCapacity] = {};
};

class Quarantine {
 public:
  // Entries popped per lock hold, then recycled after unlocking.
  static constexpr size_t kEvictChunk = QuarantineBatch::kCapacity;
  // Entry bound: one 16-byte entry per kBudgetPerEntry budget bytes, so the
  // ring costs at most a quarter of the budget, clamped to these limits.
  static constexpr size_t kBudgetPerEntry = 64;
  static constexpr size_t kMinEntries = 4 * QuarantineBatch::kCapacity;
  static constexpr size_t kMaxEntries = size_t{1} << 20;

  constexpr Quarantine() = default;

  // Once, before any other call. budget_bytes 0 disables the quarantine
  // (push recycles at once). seed drives the batch thresholds and orders
  // (same seed, same single-threaded sequence of pushes: same recycle
  // order). pointer_key is the PointerCodec secret. If the storage cannot
  // be reserved the quarantine stays disabled.
  void init(size_t budget_bytes, uint64_t seed, uint64_t pointer_key, RecycleFn recycle);

  bool enabled() const { return budget_ != 0; }

  // Quarantines the block at user, weighing bytes against the budget.
  // local: the calling thread's batch, or nullptr (no cache: straight to the
  // global queue under its lock). A full batch moves to the global queue in
  // one lock hold; then the oldest entries past the bounds are recycled.
  // Disabled, or an entry heavier than the whole budget (which would
  // otherwise flush everything else out): recycled at once.
  HEAPGUARD_FAST_PATH void push(QuarantineBatch* local, uintptr_t user, size_t bytes) {
    // bytes - 1 >= budget_ covers disabled (budget 0), over-budget and
    // zero-byte entries in one compare; threshold 0 is an unseeded batch.
    if (HEAPGUARD_UNLIKELY(local == nullptr || bytes - 1 >= budget_ || local->threshold == 0)) {
      push_slow(local, user, bytes);
      return;
    }
    store(local, user, bytes);
    if (HEAPGUARD_UNLIKELY(local->count >= local->threshold || local->bytes >= local->byte_threshold)) publish(local);
  }

  // Moves local's entries to the global queue and recycles past the bounds
  // (thread exit; malloc_trim before drain()). local may be nullptr. In a
  // fork child it may be called on the batches of threads that are gone: a
  // batch is never in both places at once across the fork (see publish).
  void flush(QuarantineBatch* local);

  // Recycles every entry that was in the global queue when called (entries
  // pushed meanwhile by other threads may stay); returns how many this call
  // recycled. Safe while other threads push. Thread batches are not touched.
  size_t drain();

  // The global queue only (thread batches are not counted). Lock-free reads,
  // exact when no other thread is pushing.
  size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  size_t entries() const { return entries_.load(std::memory_order_relaxed); }
  size_t budget() const { return budget_; }
  size_t max_entries() const { return max_entries_; }
  // A batch leaves once its bytes reach a random share (1/2 to 1) of this,
  // whatever its count.
  size_t batch_bytes_limit() const { return batch_bytes_limit_; }

  // Fork protocol: the quarantine lock comes before slab and large locks.
  void lock_all() { lock_.lock(); }
  void unlock_all() { lock_.unlock(); }
  void reset_locks_after_fork() { lock_.reset_after_fork(); }

  // Committed ring storage, for tests that scan it for raw pointers.
  const void* storage_for_testing() const { return ring_; }
  size_t storage_bytes_for_testing() const { return committed_ * sizeof(QuarantineEntry); }
  // Releases the storage; the queue must have been drained.
  void unmap_for_testing();

 private:
  // An evicted chunk on the evicting thread's stack, still encoded (at the
  // chunk's own addresses), recycled after the lock is released.
  struct Evicted {
    size_t n = 0;
    QuarantineEntry e[kEvictChunk];
  };

  static constexpr unsigned kTagShift = 48;
  static constexpr uintptr_t kBytesMask = (uintptr_t{1} << kTagShift) - 1;

  // 16 bits of a hash of both fields, in meta's top bits: rewriting either
  // word, or swapping in a word copied from elsewhere, fails the check
  // unless the attacker hits 1 in 65536 without knowing the key.
  static uintptr_t tag_of(uintptr_t user, size_t bytes) {
    uint64_t h = (user ^ (bytes * 0xD6E8FEB86659FD93ULL)) * 0x9E3779B97F4A7C15ULL;
    return (h >> kTagShift) << kTagShift;
  }

  HEAPGUARD_FAST_PATH void store(QuarantineBatch* local, uintptr_t user, size_t bytes) {
    QuarantineEntry& e = local->entries[local->count];
    e.user = codec_.encode(user, &e.user);
    e.meta = codec_.encode(bytes | tag_of(user, bytes), &e.meta);
    // The entry is written before the count publishes it: a fork snapshot
    // taken mid-push can hide an entry (a leak in the child), never show a
    // stale one.
    std::atomic_signal_fence(std::memory_order_release);
    local->count = local->count + 1;
    local->bytes += bytes;
  }

  // Moves a stored word from one location to another without decoding it.
  uintptr_t transcode(uintptr_t stored, const void* from, const void* to) const {
    return codec_.encode(codec_.decode(stored, from), to);
  }

  HEAPGUARD_SLOW_PATH void push_slow(QuarantineBatch* local, uintptr_t user, size_t bytes);
  HEAPGUARD_SLOW_PATH void publish(QuarantineBatch* local);
  void seed_batch(QuarantineBatch* local);
  void draw_thresholds(QuarantineBatch* local) const;
  bool commit_locked(size_t n);
  bool append_locked(const QuarantineEntry* src, const uint8_t* order, size_t n);
  void take(const QuarantineEntry* src, size_t n, Evicted* out) const;
  bool over_bounds_locked() const { return tail_ - head_ > max_entries_ || ring_bytes_ > budget_; }
  void pop_locked(Evicted* out, uint64_t until, bool enforce_bounds);
  void publish_counts_locked();
  void recycle_all(const Evicted* out) const;
  void evict_rest(Evicted* out);
  RecycleFn recycle_fn() const;

  pal::Lock lock_;
  PointerCodec codec_{0};
  uintptr_t recycle_ = 0;  // encoded at its own address, like every stored pointer
  uint64_t seed_ = 0;
  size_t budget_ = 0;
  size_t max_entries_ = 0;
  size_t batch_bytes_limit_ = 0;
  std::atomic<uint64_t> batches_seeded_{0};

  // The global FIFO, guarded by lock_. head_ and tail_ count entries ever
  // removed and added (drain() waits for a tail it saw); *_pos_ are their
  // slots. capacity_ = max_entries_ + one batch: every lock hold that
  // appends also pops back down to max_entries_, so an append always fits.
  QuarantineEntry* ring_ = nullptr;
  size_t capacity_ = 0;
  size_t reserved_bytes_ = 0;
  size_t committed_ = 0;  // entries committed, from the start of the ring
  uint64_t head_ = 0;
  uint64_t tail_ = 0;
  size_t head_pos_ = 0;
  size_t tail_pos_ = 0;
  size_t ring_bytes_ = 0;  // sum of the entries' bytes

  // Copies of the counts for lock-free readers (stats, tests).
  std::atomic<size_t> bytes_{0};
  std::atomic<size_t> entries_{0};
};

}  // namespace heapguard
