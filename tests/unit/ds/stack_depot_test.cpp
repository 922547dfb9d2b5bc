// SPDX-License-Identifier: Apache-2.0
// Stack depot: deduplication, id round trips, rejection of ids that name
// nothing, the capacity bound, and concurrent inserts of shared stacks.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "ds/ds.h"

namespace heapguard::test {
namespace {

using pal::kMaxStackFrames;

// A deterministic fake stack: `seed` picks the pcs, `n` the depth.
std::vector<uintptr_t> fake_stack(uint64_t seed, unsigned n) {
  std::vector<uintptr_t> pcs(n);
  uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
  for (unsigned i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    pcs[i] = 0x400000 + (x & 0xffffff);
  }
  return pcs;
}

class StackDepotTest : public ::testing::Test {
 protected:
  void TearDown() override { depot_.unmap_for_testing(); }
  StackDepot depot_{StackDepot::kMinCapacity};
};

TEST_F(StackDepotTest, RoundTripAndDedup) {
  EXPECT_EQ(depot_.bytes_used(), 0u) << "nothing reserved before the first put";
  const auto a = fake_stack(1, 16);
  const auto b = fake_stack(2, 16);
  const uint32_t ida = depot_.put(a.data(), 16);
  const uint32_t idb = depot_.put(b.data(), 16);
  ASSERT_NE(ida, 0u);
  ASSERT_NE(idb, 0u);
  EXPECT_NE(ida, idb);
  const size_t used = depot_.bytes_used();
  EXPECT_EQ(depot_.put(a.data(), 16), ida);
  EXPECT_EQ(depot_.put(b.data(), 16), idb);
  EXPECT_EQ(depot_.bytes_used(), used) << "a repeated stack takes no space";
  // A prefix is a different stack.
  const uint32_t ida8 = depot_.put(a.data(), 8);
  EXPECT_NE(ida8, ida);

  uintptr_t out[kMaxStackFrames] = {};
  ASSERT_EQ(depot_.get(ida, out, kMaxStackFrames), 16u);
  for (unsigned i = 0; i < 16; ++i) EXPECT_EQ(out[i], a[i]);
  ASSERT_EQ(depot_.get(ida8, out, kMaxStackFrames), 8u);
  EXPECT_EQ(depot_.get(ida, out, 3), 3u) << "max limits the copy";
  EXPECT_EQ(out[2], a[2]);
}

TEST_F(StackDepotTest, EmptyAndUnknownIds) {
  const auto a = fake_stack(3, 4);
  EXPECT_EQ(depot_.put(a.data(), 0), 0u);
  uintptr_t out[kMaxStackFrames];
  EXPECT_EQ(depot_.get(0, out, kMaxStackFrames), 0u);
  EXPECT_EQ(depot_.get(12345, out, kMaxStackFrames), 0u) << "before any put";
  const uint32_t id = depot_.put(a.data(), 4);
  ASSERT_NE(id, 0u);
  // Ids that do not name an entry: inside one (its pcs), inside the bucket
  // array, past the end, uncommitted, the largest.
  for (uint32_t bogus : {id + 1, id + 2, 1u, 100u, id + 100000, 0x00ffffffu, 0xffffffffu}) {
    EXPECT_EQ(depot_.get(bogus, out, kMaxStackFrames), 0u) << bogus;
  }
}

TEST_F(StackDepotTest, DepthIsClampedToMaxFrames) {
  const auto deep = fake_stack(4, 100);
  const uint32_t id = depot_.put(deep.data(), 100);
  ASSERT_NE(id, 0u);
  uintptr_t out[kMaxStackFrames];
  EXPECT_EQ(depot_.get(id, out, kMaxStackFrames), kMaxStackFrames);
  EXPECT_EQ(depot_.put(deep.data(), kMaxStackFrames), id);
}

TEST_F(StackDepotTest, FullDepotReturnsZeroButKeepsWhatItHas) {
  std::vector<uint32_t> ids;
  uint64_t seed = 100;
  for (;; ++seed) {
    const auto s = fake_stack(seed, kMaxStackFrames);
    const uint32_t id = depot_.put(s.data(), kMaxStackFrames);
    if (id == 0) break;
    ids.push_back(id);
    ASSERT_LT(ids.size(), 100000u) << "never full";
  }
  // 1 MiB of entries of 16 + 64 * 8 bytes.
  EXPECT_EQ(ids.size(), (StackDepot::kMinCapacity - StackDepot::kChunk) / (16 + kMaxStackFrames * 8));
  EXPECT_LE(depot_.bytes_used(), depot_.capacity_bytes());
  const auto again = fake_stack(seed, kMaxStackFrames);
  EXPECT_EQ(depot_.put(again.data(), kMaxStackFrames), 0u);
  // Stored stacks are still found and readable.
  const auto first = fake_stack(100, kMaxStackFrames);
  EXPECT_EQ(depot_.put(first.data(), kMaxStackFrames), ids.front());
  uintptr_t out[kMaxStackFrames];
  EXPECT_EQ(depot_.get(ids.back(), out, kMaxStackFrames), kMaxStackFrames);
  // A smaller stack may still fit in the tail.
  (void)depot_.put(first.data(), 1);
}

TEST(StackDepotThreads, ConcurrentInsertsAgreeOnIds) {
  StackDepot depot(size_t{16} << 20);
  constexpr int kThreads = 8;
  constexpr int kShared = 2000;
  std::vector<std::vector<uint32_t>> seen(kThreads, std::vector<uint32_t>(kShared));
  std::atomic<int> start{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.fetch_add(1);
      while (start.load() < kThreads) {
      }
      for (int i = 0; i < kShared; ++i) {
        // Every thread inserts the same stacks, in different orders.
        const int k = (i * 7 + t * 131) % kShared;
        const auto s = fake_stack(1000 + k, 8 + k % 24);
        seen[t][k] = depot.put(s.data(), static_cast<unsigned>(s.size()));
        // And a few of its own.
        const auto own = fake_stack(1000000 + t * kShared + i, 6);
        const uint32_t own_id = depot.put(own.data(), 6);
        uintptr_t out[kMaxStackFrames];
        if (own_id == 0 || depot.get(own_id, out, kMaxStackFrames) != 6 || out[5] != own[5]) seen[t][k] = 0;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int k = 0; k < kShared; ++k) {
    ASSERT_NE(seen[0][k], 0u) << k;
    for (int t = 1; t < kThreads; ++t) ASSERT_EQ(seen[t][k], seen[0][k]) << "stack " << k << " thread " << t;
    const auto s = fake_stack(1000 + k, 8 + k % 24);
    uintptr_t out[kMaxStackFrames];
    ASSERT_EQ(depot.get(seen[0][k], out, kMaxStackFrames), s.size());
    for (size_t i = 0; i < s.size(); ++i) ASSERT_EQ(out[i], s[i]);
  }
  depot.unmap_for_testing();
}

TEST(GlobalStackDepot, StoresACapturedStack) {
  pal::warm_up_unwinder();
  uintptr_t pcs[16];
  const unsigned n = pal::capture_stack(pcs, 16);
  ASSERT_GT(n, 0u);
  const uint32_t id = g_stack_depot.put(pcs, n);
  ASSERT_NE(id, 0u);
  EXPECT_EQ(g_stack_depot.put(pcs, n), id);
  uintptr_t out[16];
  ASSERT_EQ(g_stack_depot.get(id, out, 16), n);
  for (unsigned i = 0; i < n; ++i) EXPECT_EQ(out[i], pcs[i]);
  EXPECT_EQ(g_stack_depot.capacity_bytes(), StackDepot::kDefaultCapacity);
  EXPECT_GT(g_stack_depot.bytes_used(), 0u);
}

}  // namespace
}  // namespace heapguard::test
