// SPDX-License-Identifier: Apache-2.0
// Quarantine: FIFO order modulo the randomized batches, the byte and entry
// bounds, disabled mode, drain, exact accounting under 8 concurrent pushers,
// no raw pointers in its storage, reproducibility from the seed, recycle()
// never called under the lock, corruption reported, the fork protocol.
// Driven through a stub recycle callback, as the frontend drives it.
#include "quarantine/quarantine.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <unordered_set>
#include <vector>

namespace heapguard::test {
namespace {

// The frontend embeds these in constinit objects (the sentinel thread cache,
// the allocator); no constructor or destructor may run at load or exit.
constinit Quarantine g_constinit_quarantine;
constinit QuarantineBatch g_constinit_batch;
static_assert(std::is_trivially_destructible_v<Quarantine>);
static_assert(std::is_trivially_destructible_v<QuarantineBatch>);

constexpr uint64_t kKey = 0x243F6A8885A308D3ULL;
constexpr uint64_t kSeed = 42;

// Heap-like values: 16-byte aligned addresses in the user half.
uintptr_t value(size_t i) { return 0x7e5500000000ULL + i * 16; }
size_t index_of(uintptr_t v) { return (v - 0x7e5500000000ULL) / 16; }

struct Recycled {
  uintptr_t user;
  size_t bytes;
};

// Single-threaded tests record every recycle here.
std::vector<Recycled>* g_log = nullptr;
void record(uintptr_t user, size_t bytes) { g_log->push_back({user, bytes}); }

class QuarantineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_.clear();
    g_log = &log_;
  }
  void TearDown() override {
    for (auto& q : quarantines_) {
      q->drain();
      q->unmap_for_testing();
    }
    g_log = nullptr;
  }
  Quarantine* make(size_t budget, uint64_t seed = kSeed, RecycleFn fn = record) {
    quarantines_.push_back(std::make_unique<Quarantine>());
    Quarantine* q = quarantines_.back().get();
    q->init(budget, seed, kKey, fn);
    return q;
  }

  std::vector<Recycled> log_;
  std::vector<std::unique_ptr<Quarantine>> quarantines_;
};

TEST_F(QuarantineTest, ConstinitObjectsStartEmptyAndDisabled) {
  EXPECT_FALSE(g_constinit_quarantine.enabled());
  EXPECT_EQ(g_constinit_quarantine.entries(), 0u);
  EXPECT_EQ(g_constinit_batch.count, 0u);
  EXPECT_EQ(g_constinit_batch.threshold, 0u);
}

TEST_F(QuarantineTest, DisabledRecyclesAtOnce) {
  Quarantine* q = make(0);
  EXPECT_FALSE(q->enabled());
  QuarantineBatch batch;
  q->push(&batch, value(1), 32);
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_EQ(log_[0].user, value(1));
  EXPECT_EQ(log_[0].bytes, 32u);
  q->push(nullptr, value(2), 64);
  ASSERT_EQ(log_.size(), 2u);
  EXPECT_EQ(log_[1].user, value(2));
  EXPECT_EQ(batch.count, 0u);
  EXPECT_EQ(q->entries(), 0u);
  EXPECT_EQ(q->bytes(), 0u);
  q->flush(&batch);
  EXPECT_EQ(q->drain(), 0u);
}

TEST_F(QuarantineTest, NullBatchGoesStraightToTheGlobalQueue) {
  Quarantine* q = make(1 << 20);
  q->push(nullptr, value(1), 100);
  EXPECT_EQ(q->entries(), 1u);
  EXPECT_EQ(q->bytes(), 100u);
  EXPECT_TRUE(log_.empty());
  EXPECT_EQ(q->drain(), 1u);
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_EQ(log_[0].user, value(1));
  EXPECT_EQ(log_[0].bytes, 100u);
}

TEST_F(QuarantineTest, ZeroedBatchIsAValidEmptyBatch) {
  Quarantine* q = make(1 << 20);
  alignas(QuarantineBatch) unsigned char raw[sizeof(QuarantineBatch)];
  memset(raw, 0, sizeof raw);
  auto* batch = reinterpret_cast<QuarantineBatch*>(raw);
  q->push(batch, value(7), 48);
  EXPECT_EQ(batch->count, 1u);
  EXPECT_GE(batch->threshold, QuarantineBatch::kCapacity / 2);
  EXPECT_LE(batch->threshold, QuarantineBatch::kCapacity);
  q->flush(batch);
  EXPECT_EQ(batch->count, 0u);
  EXPECT_EQ(q->entries(), 1u);
}

// The recycle order is the push order, except that each batch (a run of
// consecutive pushes of random length in [cap/2, cap]) enters in a random
// order of its own.
TEST_F(QuarantineTest, FifoModuloRandomizedBatches) {
  Quarantine* q = make(1 << 20);
  ASSERT_EQ(q->max_entries(), (size_t{1} << 20) / Quarantine::kBudgetPerEntry);
  QuarantineBatch batch;
  constexpr size_t kPushes = 40000;
  std::vector<size_t> batch_ends;  // one past each batch's last index
  for (size_t i = 0; i < kPushes; ++i) {
    q->push(&batch, value(i), 64);
    if (batch.count == 0) batch_ends.push_back(i + 1);
    ASSERT_LE(q->entries(), q->max_entries());
    ASSERT_LE(q->bytes(), q->budget());
  }
  q->flush(&batch);
  if (batch_ends.empty() || batch_ends.back() != kPushes) batch_ends.push_back(kPushes);
  EXPECT_GT(log_.size(), kPushes - q->max_entries() - QuarantineBatch::kCapacity);
  q->drain();
  ASSERT_EQ(log_.size(), kPushes);

  size_t begin = 0, pos = 0, shuffled = 0;
  std::vector<size_t> sizes;
  for (size_t end : batch_ends) {
    sizes.push_back(end - begin);
    std::vector<size_t> got;
    for (size_t k = begin; k < end; ++k) got.push_back(index_of(log_[pos++].user));
    if (!std::is_sorted(got.begin(), got.end())) ++shuffled;
    std::sort(got.begin(), got.end());
    for (size_t k = begin; k < end; ++k) ASSERT_EQ(got[k - begin], k) << "batch starting at " << begin;
    begin = end;
  }
  sizes.pop_back();  // the last batch was cut by flush
  ASSERT_GT(sizes.size(), 100u);
  for (size_t s : sizes) {
    EXPECT_GE(s, QuarantineBatch::kCapacity / 2);
    EXPECT_LE(s, QuarantineBatch::kCapacity);
  }
  auto [lo, hi] = std::minmax_element(sizes.begin(), sizes.end());
  EXPECT_LT(*lo, *hi) << "batch thresholds are not randomized";
  EXPECT_GT(shuffled, sizes.size() * 9 / 10) << "batches are not shuffled";
}

TEST_F(QuarantineTest, BudgetEnforcedInBytes) {
  constexpr size_t kBudget = 256 << 10;
  Quarantine* q = make(kBudget);
  QuarantineBatch batch;
  Prng sizes(7);
  size_t pushed = 0, max_entry = 0;
  for (size_t i = 0; i < 20000; ++i) {
    size_t bytes = 1 + sizes.below(8000);
    max_entry = std::max(max_entry, bytes);
    q->push(&batch, value(i), bytes);
    pushed += bytes;
    ASSERT_LE(q->bytes(), kBudget);
    if (i % 1000 == 0 || i == 19999) {
      size_t recycled = 0;
      for (const Recycled& r : log_) recycled += r.bytes;
      ASSERT_EQ(pushed, recycled + q->bytes() + batch.bytes);
    }
  }
  // Not evicting more than it must: the queue is close to full.
  EXPECT_GT(q->bytes() + max_entry, kBudget);
  EXPECT_LE(batch.bytes, q->batch_bytes_limit());
}

TEST_F(QuarantineTest, BudgetEnforcedInEntries) {
  Quarantine* q = make(1 << 20);
  const size_t bound = q->max_entries();
  EXPECT_EQ(bound, 16384u);
  QuarantineBatch batch;
  for (size_t i = 0; i < 100000; ++i) {
    q->push(&batch, value(i), 16);
    ASSERT_LE(q->entries(), bound);
  }
  // Bounded by entries long before the byte budget.
  EXPECT_GE(q->entries(), bound - QuarantineBatch::kCapacity);
  EXPECT_EQ(q->bytes(), q->entries() * 16);
  EXPECT_LE(q->bytes(), q->budget() / 4);
  EXPECT_EQ(log_.size() + q->entries() + batch.count, 100000u);
}

TEST_F(QuarantineTest, EntryBoundScalesWithBudgetWithinLimits) {
  EXPECT_EQ(make(1)->max_entries(), Quarantine::kMinEntries);
  EXPECT_EQ(make(4 << 20)->max_entries(), (size_t{4} << 20) / Quarantine::kBudgetPerEntry);
  EXPECT_EQ(make(size_t{65536} << 20)->max_entries(), Quarantine::kMaxEntries);
}

TEST_F(QuarantineTest, EntryHeavierThanTheBudgetIsRecycledAtOnceAlone) {
  Quarantine* q = make(64 << 10);
  QuarantineBatch batch;
  for (size_t i = 0; i < 10; ++i) q->push(nullptr, value(i), 100);
  q->push(&batch, value(99), (64 << 10) + 1);
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_EQ(log_[0].user, value(99));
  EXPECT_EQ(q->entries(), 10u);
  EXPECT_EQ(batch.count, 0u);
}

TEST_F(QuarantineTest, BigEntriesLeaveTheBatchEarly) {
  Quarantine* q = make(4 << 20);
  QuarantineBatch batch;
  q->push(&batch, value(1), q->batch_bytes_limit());
  EXPECT_EQ(batch.count, 0u);
  EXPECT_EQ(q->entries(), 1u);
}

TEST_F(QuarantineTest, DrainRecyclesEverythingOnce) {
  Quarantine* q = make(4 << 20);
  QuarantineBatch batch;
  for (size_t i = 0; i < 3000; ++i) q->push(i % 3 == 0 ? nullptr : &batch, value(i), 40);
  q->flush(&batch);
  EXPECT_EQ(batch.count, 0u);
  EXPECT_EQ(q->entries(), 3000u);
  EXPECT_EQ(q->bytes(), 3000u * 40);
  EXPECT_EQ(q->drain(), 3000u);
  EXPECT_EQ(q->entries(), 0u);
  EXPECT_EQ(q->bytes(), 0u);
  ASSERT_EQ(log_.size(), 3000u);
  std::vector<size_t> seen;
  for (const Recycled& r : log_) {
    seen.push_back(index_of(r.user));
    EXPECT_EQ(r.bytes, 40u);
  }
  std::sort(seen.begin(), seen.end());
  for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], i);
  EXPECT_EQ(q->drain(), 0u);
}

TEST_F(QuarantineTest, RingWrapsAroundManyTimes) {
  Quarantine* q = make(64 << 10);
  ASSERT_EQ(q->max_entries(), 1024u);
  QuarantineBatch batch;
  constexpr size_t kPushes = 20000;
  for (size_t i = 0; i < kPushes; ++i) {
    q->push(i % 2 == 0 ? nullptr : &batch, value(i), 16);
    if (i == kPushes / 2) {
      EXPECT_GT(q->drain(), 0u);
    }
  }
  q->flush(&batch);
  q->drain();
  ASSERT_EQ(log_.size(), kPushes);
  std::vector<size_t> seen;
  for (const Recycled& r : log_) seen.push_back(index_of(r.user));
  std::sort(seen.begin(), seen.end());
  for (size_t i = 0; i < kPushes; ++i) ASSERT_EQ(seen[i], i);
  // Ring storage is bounded by the entry bound, not by what went through.
  size_t ring_entries = q->max_entries() + QuarantineBatch::kCapacity;
  EXPECT_LE(q->storage_bytes_for_testing(), ring_entries * sizeof(QuarantineEntry) + 4096);
}

// Eight threads push (through their batches, some straight to the global
// queue) while a ninth drains and a monitor checks the entry bound; every
// entry must come back exactly once, with its size.
std::atomic<uint8_t>* g_hits = nullptr;
std::atomic<size_t> g_recycled_bytes{0};
std::atomic<size_t> g_wrong_size{0};
size_t expected_bytes(size_t index) { return 16 + (index * 2654435761u) % 2000; }
void count_hit(uintptr_t user, size_t bytes) {
  size_t i = index_of(user);
  g_hits[i].fetch_add(1, std::memory_order_relaxed);
  if (bytes != expected_bytes(i)) g_wrong_size.fetch_add(1, std::memory_order_relaxed);
  g_recycled_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

TEST_F(QuarantineTest, ConcurrentPushExactAccounting) {
  constexpr size_t kThreads = 8, kPerThread = 50000, kTotal = kThreads * kPerThread;
  auto hits = std::make_unique<std::atomic<uint8_t>[]>(kTotal);
  for (size_t i = 0; i < kTotal; ++i) hits[i].store(0);
  g_hits = hits.get();
  g_recycled_bytes = 0;
  g_wrong_size = 0;
  Quarantine* q = make(512 << 10, kSeed, count_hit);

  std::atomic<bool> stop{false};
  std::atomic<size_t> over_bound{0};
  std::thread monitor([&] {
    while (!stop.load()) {
      if (q->entries() > q->max_entries()) over_bound.fetch_add(1);
      std::this_thread::yield();
    }
  });
  std::thread drainer([&] {
    while (!stop.load()) {
      q->drain();
      std::this_thread::yield();
    }
  });
  size_t pushed_bytes = 0;
  for (size_t i = 0; i < kTotal; ++i) pushed_bytes += expected_bytes(i);
  std::vector<std::thread> pushers;
  for (size_t t = 0; t < kThreads; ++t) {
    pushers.emplace_back([q, t] {
      QuarantineBatch batch;
      for (size_t i = 0; i < kPerThread; ++i) {
        size_t index = t * kPerThread + i;
        q->push(i % 97 == 0 ? nullptr : &batch, value(index), expected_bytes(index));
        // Drains also from the pushers, so some surely overlap other pushes.
        if (i % 5000 == 4999 && t % 2 == 0) q->drain();
      }
      q->flush(&batch);
    });
  }
  for (auto& th : pushers) th.join();
  stop = true;
  monitor.join();
  drainer.join();
  q->drain();

  EXPECT_EQ(over_bound.load(), 0u);
  EXPECT_EQ(q->entries(), 0u);
  EXPECT_EQ(q->bytes(), 0u);
  EXPECT_EQ(g_wrong_size.load(), 0u);
  EXPECT_EQ(g_recycled_bytes.load(), pushed_bytes);
  size_t lost = 0, duplicated = 0;
  for (size_t i = 0; i < kTotal; ++i) {
    uint8_t h = hits[i].load();
    lost += h == 0;
    duplicated += h > 1;
  }
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(duplicated, 0u);
  g_hits = nullptr;
}

bool holds_any(const void* p, size_t n, const std::unordered_set<uintptr_t>& values) {
  const auto* w = static_cast<const uintptr_t*>(p);
  for (size_t i = 0; i < n / sizeof(uintptr_t); ++i) {
    if (values.count(w[i]) != 0) return true;
  }
  return false;
}

TEST_F(QuarantineTest, StorageHoldsNoRawPointers) {
  Quarantine* q = make(4 << 20);
  // Real heap addresses, so a leaked one would look like the real thing.
  std::vector<std::unique_ptr<char[]>> blocks;
  std::unordered_set<uintptr_t> values;
  QuarantineBatch batch;
  for (size_t i = 0; i < 5000; ++i) {
    blocks.emplace_back(new char[48]);
    auto v = reinterpret_cast<uintptr_t>(blocks.back().get());
    values.insert(v);
    q->push(i % 5 == 0 ? nullptr : &batch, v, 48);
  }
  ASSERT_GT(batch.count, 0u);
  ASSERT_EQ(q->entries() + batch.count, 5000u);
  ASSERT_GE(q->storage_bytes_for_testing(), q->entries() * sizeof(QuarantineEntry));
  EXPECT_FALSE(holds_any(q->storage_for_testing(), q->storage_bytes_for_testing(), values));
  EXPECT_FALSE(holds_any(&batch, sizeof batch, values));
  // Nor the callback's address in the object itself.
  std::unordered_set<uintptr_t> fn = {reinterpret_cast<uintptr_t>(&record)};
  EXPECT_FALSE(holds_any(q, sizeof *q, fn));
  q->flush(&batch);
  q->drain();
  EXPECT_EQ(log_.size(), 5000u);
}

std::vector<uintptr_t> run_scenario(uint64_t seed) {
  std::vector<Recycled> log;
  std::vector<Recycled>* saved = g_log;
  g_log = &log;
  Quarantine q;
  q.init(64 << 10, seed, kKey, record);
  QuarantineBatch batch;
  for (size_t i = 0; i < 20000; ++i) q.push(i % 50 == 0 ? nullptr : &batch, value(i), 16 + i % 200);
  q.flush(&batch);
  q.drain();
  q.unmap_for_testing();
  g_log = saved;
  std::vector<uintptr_t> order;
  for (const Recycled& r : log) order.push_back(r.user);
  return order;
}

TEST_F(QuarantineTest, ReproducibleWithASeed) {
  std::vector<uintptr_t> a = run_scenario(1234), b = run_scenario(1234), c = run_scenario(1235);
  ASSERT_EQ(a.size(), 20000u);
  EXPECT_EQ(a, b);
  ASSERT_EQ(c.size(), 20000u);
  EXPECT_NE(a, c);
}

// recycle() runs with no quarantine lock held: it may read the counters,
// push (through the batch being flushed or straight to the global queue),
// and drain. Were the lock held, this would deadlock; a watchdog turns that
// into a failure instead of a hang.
Quarantine* g_reentrant_q = nullptr;
QuarantineBatch* g_reentrant_batch = nullptr;
size_t g_reentrant_calls = 0;
constexpr uintptr_t kRepushed = 8;  // marks a value pushed from inside recycle()
void reentrant_recycle(uintptr_t user, size_t bytes) {
  ++g_reentrant_calls;
  EXPECT_LE(g_reentrant_q->entries(), g_reentrant_q->max_entries());
  EXPECT_LE(g_reentrant_q->bytes(), g_reentrant_q->budget() + bytes * QuarantineBatch::kCapacity);
  if ((user & kRepushed) != 0) return;
  size_t i = index_of(user);
  if (i % 3 == 0) g_reentrant_q->push(nullptr, user | kRepushed, bytes);
  if (i % 3 == 1) g_reentrant_q->push(g_reentrant_batch, user | kRepushed, bytes);
  if (i % 1000 == 2) g_reentrant_q->drain();
}

TEST_F(QuarantineTest, RecycleIsNeverCalledUnderTheLock) {
  Quarantine* q = make(32 << 10, kSeed, reentrant_recycle);
  QuarantineBatch batch;
  g_reentrant_q = q;
  g_reentrant_batch = &batch;
  g_reentrant_calls = 0;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread worker([&] {
    for (size_t i = 0; i < 30000; ++i) q->push(i % 7 == 0 ? nullptr : &batch, value(i), 32);
    // Recycling during a flush or drain may push into the batch again.
    while (batch.count != 0 || q->entries() != 0) {
      q->flush(&batch);
      q->drain();
    }
    std::lock_guard<std::mutex> g(mu);
    done = true;
    cv.notify_one();
  });
  {
    std::unique_lock<std::mutex> g(mu);
    if (!cv.wait_for(g, std::chrono::seconds(30), [&] { return done; })) {
      ADD_FAILURE() << "recycle() deadlocked on the quarantine lock";
      _exit(1);
    }
  }
  worker.join();
  // Every original once, plus the two thirds re-pushed from recycle().
  EXPECT_EQ(g_reentrant_calls, 30000u + 20000u);
  EXPECT_EQ(q->entries(), 0u);
  EXPECT_EQ(batch.count, 0u);
}

TEST_F(QuarantineTest, CorruptedEntryIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Quarantine* q = make(1 << 20);
  for (size_t i = 0; i < 100; ++i) q->push(nullptr, value(i), 64);
  auto* words = static_cast<uintptr_t*>(const_cast<void*>(q->storage_for_testing()));
  EXPECT_DEATH(
      {
        words[2 * 10] ^= 0x1000;  // entry 10's address, as a use-after-free write might
        q->drain();
      },
      "ERROR: HeapGuard: heap-metadata-corruption on address 0x[0-9a-f]+ at pc 0x[0-9a-f]+ thread T[0-9]+\n(    #[^\n]*\n)*"
      "a quarantine entry at 0x[0-9a-f]+ failed its integrity check");
  EXPECT_DEATH(
      {
        words[2 * 20 + 1] ^= 0x40;  // entry 20's size
        q->drain();
      },
      "heap-metadata-corruption");
}

TEST_F(QuarantineTest, ForkProtocol) {
  Quarantine* q = make(1 << 20);
  QuarantineBatch batch;
  for (size_t i = 0; i < 1000; ++i) q->push(&batch, value(i), 64);
  size_t in_ring = q->entries();
  q->lock_all();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    q->reset_locks_after_fork();
    // The batch is either wholly published or wholly local: flushing it in
    // the child duplicates nothing.
    q->flush(&batch);
    size_t n = q->drain();
    _exit(n == 1000 && q->entries() == 0 && log_.size() == n ? 0 : 1);
  }
  q->unlock_all();
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The parent is untouched.
  EXPECT_EQ(q->entries(), in_ring);
  EXPECT_TRUE(log_.empty());
}

}  // namespace
}  // namespace heapguard::test
