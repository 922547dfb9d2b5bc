// SPDX-License-Identifier: Apache-2.0
// Multi-threaded churn with cross-thread frees: producers allocate patterned blocks of
// every size range, a bounded queue hands them to consumers that verify, sometimes
// realloc, and free them. Remote frees are where thread caches and slab ownership race.
#include <gtest/gtest.h>
#include <malloc.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "block_pattern.h"
#include "split_mix.h"

extern "C" void free_sized(void* ptr, size_t size);

namespace {

using heapguard::test::all_zero;
using heapguard::test::fill_pattern;
using heapguard::test::first_mismatch;
using heapguard::test::is_aligned;
using heapguard::test::SplitMix64;

enum class Origin { kMalloc, kCalloc, kAligned, kNewArray };

struct Block {
  unsigned char* ptr;
  size_t size;
  size_t alignment;
  unsigned seed;
  Origin origin;
};

// Bounded so producers cannot run far ahead and the live set stays small.
class BlockQueue {
 public:
  explicit BlockQueue(size_t capacity) : capacity_(capacity) {}

  void push(Block b) {
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return items_.size() < capacity_; });
    items_.push_back(b);
    not_empty_.notify_one();
  }

  // Empty once the queue is closed and drained.
  std::optional<Block> pop() {
    std::unique_lock lock(mu_);
    not_empty_.wait(lock, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return std::nullopt;
    Block b = items_.front();
    items_.pop_front();
    not_full_.notify_one();
    return b;
  }

  void close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::deque<Block> items_;
  size_t capacity_;
  bool closed_ = false;
};

constexpr int kProducers = 2;
constexpr int kConsumers = 3;
constexpr int kBlocksPerProducer = 15000;
constexpr size_t kLargeMax = 768 * 1024;

Block produce(SplitMix64& rng, unsigned seed) {
  Block b{nullptr, rng.block_size(kLargeMax), 16, seed, static_cast<Origin>(rng.below(4))};
  switch (b.origin) {
    case Origin::kMalloc:
      b.ptr = static_cast<unsigned char*>(malloc(b.size));
      break;
    case Origin::kCalloc:
      b.ptr = static_cast<unsigned char*>(calloc(1, b.size));
      if (b.ptr != nullptr && !all_zero(b.ptr, b.size)) b.seed = ~0u;  // flagged for the consumer
      break;
    case Origin::kAligned:
      b.alignment = size_t{1} << rng.between(4, 12);
      b.ptr = static_cast<unsigned char*>(aligned_alloc(b.alignment, b.size));
      break;
    case Origin::kNewArray:
      b.ptr = static_cast<unsigned char*>(::operator new[](b.size));
      break;
  }
  if (b.ptr != nullptr && b.seed != ~0u) fill_pattern(b.ptr, b.size, b.seed);
  return b;
}

void release(const Block& b) {
  switch (b.origin) {
    case Origin::kMalloc:
      free(b.ptr);
      break;
    case Origin::kCalloc:
      free_sized(b.ptr, b.size);
      break;
    case Origin::kAligned:
      free(b.ptr);
      break;
    case Origin::kNewArray:
      ::operator delete[](b.ptr, b.size);
      break;
  }
}

struct ConsumerResult {
  size_t consumed = 0;
  size_t failures = 0;
  std::string first_failure;
};

void consume(BlockQueue& queue, unsigned id, ConsumerResult& result) {
  SplitMix64 rng(0xC0FFEEu + id);
  auto fail = [&](const std::string& what) {
    if (result.failures++ == 0) result.first_failure = what;
  };
  while (auto item = queue.pop()) {
    Block b = *item;
    ++result.consumed;
    if (b.ptr == nullptr) {
      fail("allocation of " + std::to_string(b.size) + " bytes returned NULL");
      continue;
    }
    if (b.seed == ~0u) fail("calloc of " + std::to_string(b.size) + " bytes was not zeroed");
    if (!is_aligned(b.ptr, b.alignment)) fail("misaligned block of " + std::to_string(b.size));
    if (b.seed != ~0u && first_mismatch(b.ptr, b.size, b.seed) != b.size) {
      fail("block of " + std::to_string(b.size) + " bytes corrupted before the remote free");
    }
    // Realloc from a thread that does not own the block, then free the result.
    if (b.origin == Origin::kMalloc && rng.percent(15)) {
      const size_t new_size = rng.block_size(kLargeMax) + 1;  // realloc(p, 0) would free
      auto* q = static_cast<unsigned char*>(realloc(b.ptr, new_size));
      if (q == nullptr) {
        fail("remote realloc to " + std::to_string(new_size) + " returned NULL");
        free(b.ptr);
        continue;
      }
      const size_t kept = std::min(b.size, new_size);
      if (first_mismatch(q, kept, b.seed) != kept) fail("remote realloc lost contents");
      free(q);
      continue;
    }
    release(b);
  }
}

TEST(Churn, CrossThreadFreesAcrossSizeClasses) {
  BlockQueue queue(512);
  std::vector<ConsumerResult> results(kConsumers);
  std::vector<std::thread> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.emplace_back(consume, std::ref(queue), static_cast<unsigned>(c), std::ref(results[c]));
  }
  std::atomic<size_t> pushed{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&queue, &pushed, p] {
      SplitMix64 rng(0x5EED0000u + static_cast<unsigned>(p));
      // Each producer also keeps a few blocks of its own, freed locally, so local
      // and remote frees hit the same slabs.
      std::vector<Block> local;
      for (int i = 0; i < kBlocksPerProducer; ++i) {
        Block b = produce(rng, static_cast<unsigned>(p * kBlocksPerProducer + i));
        if (rng.percent(10) && b.ptr != nullptr && b.seed != ~0u) {
          local.push_back(b);
          if (local.size() > 64) {
            release(local.front());
            local.erase(local.begin());
          }
        } else {
          queue.push(b);
          pushed.fetch_add(1, std::memory_order_relaxed);
        }
      }
      for (const Block& b : local) queue.push(b);  // the rest become remote frees
      pushed.fetch_add(local.size(), std::memory_order_relaxed);
    });
  }
  for (auto& t : producers) t.join();
  queue.close();
  for (auto& t : consumers) t.join();

  size_t consumed = 0;
  for (const ConsumerResult& r : results) {
    consumed += r.consumed;
    EXPECT_EQ(r.failures, 0u) << r.first_failure;
  }
  EXPECT_EQ(consumed, pushed.load());
}

}  // namespace
