// SPDX-License-Identifier: Apache-2.0
// Stack depot (ds layer): every distinct stack trace stored once, named by a
// 32-bit id that block headers and freed-block records keep. Invariants:
// bounded memory (one reservation, committed in chunks as it fills), never
// malloc, no lock (CAS on bucket heads; entries are immutable once linked),
// so it is safe in a fork child and from a thread interrupted mid-insert.
// get() trusts nothing about an id: ids read from a corrupted heap are
// range-checked and the entry's hash re-verified before it is used.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "platform/platform.h"

namespace heapguard {

class StackDepot {
 public:
  static constexpr size_t kDefaultCapacity = size_t{256} << 20;
  // Bounds on the capacity: the bucket array takes the first chunk, and an
  // id is (offset / 8), which must fit in 32 bits.
  static constexpr size_t kChunk = size_t{1} << 20;
  static constexpr size_t kMinCapacity = 2 * kChunk;
  static constexpr size_t kMaxCapacity = size_t{4} << 30;

  constexpr StackDepot() = default;
  // `capacity` bytes of address space, clamped to [kMinCapacity, kMaxCapacity]
  // and rounded up to a chunk.
  constexpr explicit StackDepot(size_t capacity) : capacity_(clamp_capacity(capacity)) {}
  StackDepot(const StackDepot&) = delete;
  StackDepot& operator=(const StackDepot&) = delete;

  // The id of pcs[0..n) (n clamped to pal::kMaxStackFrames), inserting it if
  // new. 0 = no stack: n == 0, the depot is full, or the OS refused memory.
  // The first call reserves the address space (one mmap).
  uint32_t put(const uintptr_t* pcs, unsigned n);
  // Copies at most `max` frames of stack `id` to `out`; returns how many.
  // 0 for id 0 and for any id that does not name a stored stack.
  unsigned get(uint32_t id, uintptr_t* out, unsigned max) const;
  // Address space handed out to entries (plus the bucket array), and the cap.
  size_t bytes_used() const;
  size_t capacity_bytes() const { return capacity_; }

  // Returns the reservation; not thread-safe (tests only).
  void unmap_for_testing();

 private:
  // Entry layout in the region, 8-aligned: header, then n pcs.
  struct Header {
    uint32_t next;   // id of the next entry in the bucket, 0 = end
    uint16_t n;      // frames
    uint16_t magic;  // kMagic: cheap rejection of ids that point elsewhere
    uint64_t hash;   // of the pcs, re-checked by get()
  };
  static constexpr uint16_t kMagic = 0x5d37;
  static constexpr unsigned kBucketBits = 18;
  static constexpr size_t kBucketBytes = (size_t{1} << kBucketBits) * sizeof(uint32_t);
  static_assert(kBucketBytes == kChunk, "the bucket array is exactly chunk 0");
  static constexpr size_t kChunkWords = kMaxCapacity / kChunk / 64;

  static constexpr size_t clamp_capacity(size_t c) {
    c = c < kMinCapacity ? kMinCapacity : c > kMaxCapacity ? kMaxCapacity : c;
    return (c + kChunk - 1) & ~(kChunk - 1);
  }

  uintptr_t region();
  bool commit_range(uintptr_t base, size_t offset, size_t size);
  bool committed(size_t offset, size_t size) const;
  uint32_t find(uintptr_t base, uint32_t from, uint32_t stop, uint64_t hash, const uintptr_t* pcs,
                unsigned n) const;

  size_t capacity_ = clamp_capacity(kDefaultCapacity);
  std::atomic<uintptr_t> region_{0};
  std::atomic<bool> reserve_failed_{false};
  // Next free offset; past capacity_ once full (it only grows).
  std::atomic<size_t> used_{kBucketBytes};
  // One bit per committed chunk (chunk 0, the buckets, is committed with the
  // reservation). Commit is idempotent, so two threads may both commit one
  // chunk; the bit only says the pages are readable.
  std::atomic<uint64_t> chunk_bits_[kChunkWords] = {};
};

extern constinit StackDepot g_stack_depot;

}  // namespace heapguard
