// SPDX-License-Identifier: Apache-2.0
// GuardedPool, through both guard mechanisms (MADV_GUARD_INSTALL markers
// where the kernel has them, and the mprotect fallback forced by a test
// switch): placement against the guard (and below it), faults on overflow,
// underflow and use after free, the slack check, double and invalid frees,
// lookup for the fault handler, fresh-first then FIFO reuse, exhaustion,
// the map-count budget, and threads.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "guarded/guarded.h"
#include "platform/platform.h"

namespace heapguard::test {
namespace {

using pal::Pal;
using FreeResult = GuardedPool::FreeResult;

size_t page() { return Pal::page_size(); }

// The smallest pool init accepts: every tier holds a slot of kMaxSmallSize.
size_t small_pool_bytes() { return GuardedPool::kTiers * page() * 36; }

TraceRef trace(uint32_t stack, uint32_t thread) { return TraceRef{stack, thread}; }

uintptr_t addr(void* p) { return reinterpret_cast<uintptr_t>(p); }

struct Param {
  bool fallback;
  bool below;
};

class GuardedPoolTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (GetParam().fallback) {
      Pal::disable_guard_markers_for_testing(true);
    } else if (!Pal::has_lightweight_guards()) {
      GTEST_SKIP() << "the kernel has no MADV_GUARD_INSTALL";
    }
  }
  void TearDown() override {
    pool_.unmap_for_testing();
    Pal::disable_guard_markers_for_testing(false);
    Pal::set_guard_split_budget_for_testing(0);
  }
  void init(size_t bytes) { ASSERT_TRUE(pool_.init(bytes, GetParam().below, 42)); }
  bool below() const { return GetParam().below; }

  GuardedPool pool_;
};

TEST_P(GuardedPoolTest, InitRefusesAPoolTooSmallForOneSlotPerTier) {
  GuardedPool tiny;
  EXPECT_FALSE(tiny.init(page() * 8, false, 1));
  EXPECT_FALSE(tiny.enabled());
  EXPECT_EQ(tiny.allocate(16, 16, Origin::Malloc, {}), nullptr);
}

TEST_P(GuardedPoolTest, BlockSitsAgainstItsGuardZeroedAndAligned) {
  init(size_t{64} << 20);
  EXPECT_TRUE(pool_.enabled());
  for (size_t n : {size_t{0}, size_t{1}, size_t{13}, size_t{16}, size_t{100}, page() - 1, page(), page() + 1,
                   size_t{5000}, size_t{65536}, kMaxSmallSize}) {
    SCOPED_TRACE(n);
    void* p = pool_.allocate(n, 16, Origin::Malloc, trace(7, 0));
    ASSERT_NE(p, nullptr);
    uintptr_t u = addr(p);
    EXPECT_TRUE(pool_.contains(u));
    EXPECT_EQ(u % 16, 0u);
    if (below()) {
      EXPECT_EQ(u % page(), 0u);  // right after the leading guard
    } else {
      EXPECT_EQ((u + align_up(n == 0 ? 1 : n, 16)) % page(), 0u);  // ends at the trailing guard
    }
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(static_cast<unsigned char*>(p)[i], 0) << i;
    memset(p, 0x5a, n);
    EXPECT_EQ(pool_.usable_size(u), n);
    GuardedBlock b;
    ASSERT_TRUE(pool_.find_live(u, &b));
    EXPECT_EQ(b.user, u);
    EXPECT_EQ(b.requested, n);
    EXPECT_EQ(b.allocated.stack, 7u);
    EXPECT_TRUE(b.live);
    EXPECT_EQ(pool_.deallocate(u, trace(8, 1), &b), FreeResult::Ok);
    EXPECT_FALSE(b.live);
    EXPECT_EQ(b.freed.stack, 8u);
    EXPECT_EQ(pool_.usable_size(u), 0u);
  }
}

TEST_P(GuardedPoolTest, AlignmentUpToAPageAndRefusals) {
  init(size_t{64} << 20);
  for (size_t align : {size_t{32}, size_t{64}, size_t{256}, page()}) {
    void* p = pool_.allocate(40, align, Origin::New, {});
    ASSERT_NE(p, nullptr) << align;
    EXPECT_EQ(addr(p) % align, 0u);
    GuardedBlock b;
    ASSERT_TRUE(pool_.find_live(addr(p), &b));
    EXPECT_EQ(b.origin, Origin::New);
    EXPECT_EQ(pool_.deallocate(addr(p), {}, nullptr), FreeResult::Ok);
  }
  EXPECT_EQ(pool_.allocate(16, page() * 2, Origin::Malloc, {}), nullptr);
  EXPECT_EQ(pool_.allocate(kMaxSmallSize + 1, 16, Origin::Malloc, {}), nullptr);
}

TEST_P(GuardedPoolTest, OverflowFaultsAtTheGuard) {
  init(size_t{64} << 20);
  char* p = static_cast<char*>(pool_.allocate(24, 16, Origin::Malloc, {}));
  ASSERT_NE(p, nullptr);
  if (below()) {
    EXPECT_EXIT(
        {
          volatile char* q = p;
          q[-1] = 1;
          _exit(0);
        },
        ::testing::KilledBySignal(SIGSEGV), "");
  } else {
    EXPECT_EXIT(
        {
          volatile char* q = p;
          q[32] = 1;  // 24 rounded up to 32: the first byte of the guard
          _exit(0);
        },
        ::testing::KilledBySignal(SIGSEGV), "");
    EXPECT_EXIT(
        {
          volatile char* q = p;
          (void)q[32];
          _exit(0);
        },
        ::testing::KilledBySignal(SIGSEGV), "");
  }
  // Inside the block and its slack: no fault.
  p[23] = 1;
  EXPECT_EQ(pool_.deallocate(addr(p), {}, nullptr), FreeResult::Ok);
}

TEST_P(GuardedPoolTest, FreedBlockFaultsOnReadAndWrite) {
  init(size_t{64} << 20);
  char* p = static_cast<char*>(pool_.allocate(100, 16, Origin::Malloc, {}));
  ASSERT_NE(p, nullptr);
  p[0] = 1;
  ASSERT_EQ(pool_.deallocate(addr(p), {}, nullptr), FreeResult::Ok);
  EXPECT_EXIT(
      {
        volatile char* q = p;
        (void)q[0];
        _exit(0);
      },
      ::testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EXIT(
      {
        volatile char* q = p;
        q[50] = 2;
        _exit(0);
      },
      ::testing::KilledBySignal(SIGSEGV), "");
}

TEST_P(GuardedPoolTest, SlackDamageIsReportedWithTheFirstByte) {
  init(size_t{64} << 20);
  char* p = static_cast<char*>(pool_.allocate(13, 16, Origin::Malloc, trace(3, 0)));
  ASSERT_NE(p, nullptr);
  p[13] = 0;  // the off-by-one NUL
  p[15] = 0;
  GuardedBlock b;
  uintptr_t damaged = 0;
  EXPECT_EQ(pool_.deallocate(addr(p), trace(4, 0), &b, &damaged), FreeResult::Overflow);
  EXPECT_EQ(damaged, addr(p) + 13);
  EXPECT_EQ(b.user, addr(p));
  EXPECT_EQ(b.requested, 13u);
  EXPECT_EQ(b.allocated.stack, 3u);
  EXPECT_EQ(b.freed.stack, 4u);
  // The block was freed anyway: a second free is a double free.
  EXPECT_EQ(pool_.deallocate(addr(p), {}, nullptr), FreeResult::DoubleFree);

  // Intact slack: Ok, and first_damaged says 0.
  p = static_cast<char*>(pool_.allocate(13, 16, Origin::Malloc, {}));
  ASSERT_NE(p, nullptr);
  memset(p, 0xff, 13);
  damaged = 1;
  EXPECT_EQ(pool_.deallocate(addr(p), {}, nullptr, &damaged), FreeResult::Ok);
  EXPECT_EQ(damaged, 0u);
}

TEST_P(GuardedPoolTest, DoubleAndInvalidFrees) {
  init(size_t{64} << 20);
  char* p = static_cast<char*>(pool_.allocate(64, 16, Origin::Malloc, trace(1, 0)));
  char* q = static_cast<char*>(pool_.allocate(64, 16, Origin::Malloc, trace(2, 0)));
  ASSERT_NE(p, nullptr);
  ASSERT_NE(q, nullptr);
  GuardedBlock b;
  // Interior pointer of a live block: invalid, the block is named.
  EXPECT_EQ(pool_.deallocate(addr(q) + 8, {}, &b), FreeResult::InvalidFree);
  EXPECT_EQ(b.user, addr(q));
  EXPECT_TRUE(b.live);
  // A guard page, a never-used slot, outside the pool: invalid, no block.
  uintptr_t guard = below() ? addr(q) - 1 : addr(q) + 64;
  EXPECT_EQ(pool_.deallocate(guard, {}, &b), FreeResult::InvalidFree);
  EXPECT_EQ(b.user, 0u);
  EXPECT_EQ(pool_.deallocate(addr(q) + 100 * page(), {}, &b), FreeResult::InvalidFree);
  EXPECT_EQ(b.user, 0u);
  int local;
  EXPECT_EQ(pool_.deallocate(addr(&local), {}, &b), FreeResult::InvalidFree);
  EXPECT_EQ(b.user, 0u);
  // Double free: both traces.
  ASSERT_EQ(pool_.deallocate(addr(p), trace(5, 1), nullptr), FreeResult::Ok);
  EXPECT_EQ(pool_.deallocate(addr(p), trace(6, 2), &b), FreeResult::DoubleFree);
  EXPECT_EQ(b.user, addr(p));
  EXPECT_FALSE(b.live);
  EXPECT_EQ(b.allocated.stack, 1u);
  EXPECT_EQ(b.freed.stack, 5u);
  EXPECT_EQ(b.freed.thread, 1u);
  // Nothing changed: q is still live and frees fine.
  EXPECT_EQ(pool_.deallocate(addr(q), {}, nullptr), FreeResult::Ok);
}

TEST_P(GuardedPoolTest, LookupFindsTheBlockNextToAFault) {
  init(size_t{64} << 20);
  char* a = static_cast<char*>(pool_.allocate(40, 16, Origin::Malloc, trace(1, 0)));
  char* b = static_cast<char*>(pool_.allocate(40, 16, Origin::Malloc, trace(2, 0)));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  GuardedBlock g;
  if (below()) {
    // One byte before b is b's leading guard (a's trailing one): b is the
    // nearer block.
    ASSERT_TRUE(pool_.lookup(addr(b) - 1, &g));
    EXPECT_EQ(g.user, addr(b));
    EXPECT_TRUE(addr(b) - 1 < g.data_begin);
  } else {
    // The first byte past a (rounded) is a's trailing guard.
    ASSERT_TRUE(pool_.lookup(addr(a) + 48, &g));
    EXPECT_EQ(g.user, addr(a));
    EXPECT_EQ(g.requested, 40u);
    EXPECT_TRUE(g.live);
    EXPECT_EQ(g.data_end, addr(a) + 48);
  }
  // A freed block: found through its data pages, not live, with its stacks.
  ASSERT_EQ(pool_.deallocate(addr(a), trace(9, 3), nullptr), FreeResult::Ok);
  ASSERT_TRUE(pool_.lookup(addr(a) + 4, &g));
  EXPECT_EQ(g.user, addr(a));
  EXPECT_FALSE(g.live);
  EXPECT_EQ(g.allocated.stack, 1u);
  EXPECT_EQ(g.freed.stack, 9u);
  EXPECT_EQ(g.freed.thread, 3u);
  EXPECT_TRUE(addr(a) + 4 >= g.data_begin && addr(a) + 4 < g.data_end);
  // A guard page between a freed and a live block: the nearer edge wins,
  // freed or not (a's end above, b's start below).
  uintptr_t between = below() ? addr(b) - 1 : addr(a) + 48;
  ASSERT_TRUE(pool_.lookup(between, &g));
  EXPECT_EQ(g.user, below() ? addr(b) : addr(a));
  EXPECT_EQ(g.live, below());
  // The far end of that guard page is nearer the other block: above, b
  // starts 48 bytes short of its page's end, a page from the guard's last
  // byte, while a ended a page and 8 bytes before it; below, a ends 40
  // bytes into its page, nearer the guard's first byte than b's start.
  uintptr_t far = below() ? align_down(addr(b) - 1, page()) : addr(a) + 48 + page() - 1;
  ASSERT_TRUE(pool_.lookup(far, &g));
  EXPECT_EQ(g.user, below() ? addr(a) : addr(b));
  // Never-used slots and outside the pool: nothing.
  EXPECT_FALSE(pool_.lookup(addr(b) + 50 * page(), &g));
  int local;
  EXPECT_FALSE(pool_.lookup(addr(&local), &g));
  ASSERT_EQ(pool_.deallocate(addr(b), {}, nullptr), FreeResult::Ok);
}

TEST_P(GuardedPoolTest, FreshSlotsFirstThenOldestFreedUntilFull) {
  init(small_pool_bytes());
  // Tier 0 of this pool: (36 - 1) / 2 slots of one page.
  const size_t slots = (36 - 1) / 2;
  std::vector<void*> blocks;
  for (size_t i = 0; i < slots; ++i) {
    void* p = pool_.allocate(100, 16, Origin::Malloc, {});
    ASSERT_NE(p, nullptr) << i;
    // A freed block is not reused while a fresh slot is left.
    for (void* q : blocks) ASSERT_NE(p, q);
    blocks.push_back(p);
    if (i == 0) {
      ASSERT_EQ(pool_.deallocate(addr(p), {}, nullptr), FreeResult::Ok);
      blocks.back() = nullptr;
    }
  }
  // Full: slot 0 (freed) is the only one left.
  void* again = pool_.allocate(100, 16, Origin::Malloc, {});
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(pool_.allocate(100, 16, Origin::Malloc, {}), nullptr);
  EXPECT_EQ(pool_.stats().live, slots);
  EXPECT_GE(pool_.stats().refused, 1u);
  // FIFO: freed in the order 3, 1, 2 -> handed out again 3, 1, 2.
  ASSERT_EQ(pool_.deallocate(addr(blocks[3]), {}, nullptr), FreeResult::Ok);
  ASSERT_EQ(pool_.deallocate(addr(blocks[1]), {}, nullptr), FreeResult::Ok);
  ASSERT_EQ(pool_.deallocate(addr(blocks[2]), {}, nullptr), FreeResult::Ok);
  // Same slot, same size: same address.
  EXPECT_EQ(pool_.allocate(100, 16, Origin::Malloc, {}), blocks[3]);
  EXPECT_EQ(pool_.allocate(100, 16, Origin::Malloc, {}), blocks[1]);
  EXPECT_EQ(pool_.allocate(100, 16, Origin::Malloc, {}), blocks[2]);
  EXPECT_EQ(pool_.allocate(100, 16, Origin::Malloc, {}), nullptr);
  // A reused slot reads as zero again.
  for (int i = 0; i < 100; ++i) ASSERT_EQ(static_cast<char*>(blocks[3])[i], 0);
  // Other tiers are not affected by tier 0 being full.
  EXPECT_NE(pool_.allocate(page() + 1, 16, Origin::Malloc, {}), nullptr);
}

TEST_P(GuardedPoolTest, MapCountBudgetLimitsOpenSlotsInTheFallback) {
  if (!GetParam().fallback) GTEST_SKIP() << "markers split no mapping";
  init(size_t{64} << 20);
  Pal::set_guard_split_budget_for_testing(Pal::guard_splits() + 6);  // three slots
  std::vector<void*> blocks;
  for (int i = 0; i < 3; ++i) {
    void* p = pool_.allocate(16, 16, Origin::Malloc, {});
    ASSERT_NE(p, nullptr) << i;
    blocks.push_back(p);
  }
  EXPECT_EQ(pool_.allocate(16, 16, Origin::Malloc, {}), nullptr);
  // A free gives its charge back.
  ASSERT_EQ(pool_.deallocate(addr(blocks[0]), {}, nullptr), FreeResult::Ok);
  void* p = pool_.allocate(16, 16, Origin::Malloc, {});
  EXPECT_NE(p, nullptr);
  ASSERT_EQ(pool_.deallocate(addr(p), {}, nullptr), FreeResult::Ok);
  ASSERT_EQ(pool_.deallocate(addr(blocks[1]), {}, nullptr), FreeResult::Ok);
  ASSERT_EQ(pool_.deallocate(addr(blocks[2]), {}, nullptr), FreeResult::Ok);
}

TEST_P(GuardedPoolTest, ThreadsAllocateAndFreeConcurrently) {
  init(size_t{256} << 20);
  constexpr int kThreads = 8, kRounds = 300;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      void* held[8] = {};
      for (int r = 0; r < kRounds; ++r) {
        int i = r % 8;
        if (held[i] != nullptr) {
          unsigned char* q = static_cast<unsigned char*>(held[i]);
          size_t n = pool_.usable_size(addr(q));
          for (size_t k = 0; k < n; ++k) {
            if (q[k] != uint8_t(t + 1)) {
              failures.fetch_add(1);
              break;
            }
          }
          if (pool_.deallocate(addr(q), trace(uint32_t(r), uint32_t(t)), nullptr) != FreeResult::Ok)
            failures.fetch_add(1);
        }
        size_t n = size_t(1 + (r * 37 + t * 11) % 6000);
        held[i] = pool_.allocate(n, 16, Origin::Malloc, trace(uint32_t(r), uint32_t(t)));
        if (held[i] != nullptr) memset(held[i], t + 1, n);
      }
      for (void* p : held) {
        if (p != nullptr && pool_.deallocate(addr(p), {}, nullptr) != FreeResult::Ok) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(pool_.stats().live, 0u);
}

TEST_P(GuardedPoolTest, ForkProtocolLocksAndReleases) {
  init(size_t{64} << 20);
  pool_.lock_all();
  pool_.unlock_all();
  pool_.lock_all();
  pool_.reset_after_fork();
  void* p = pool_.allocate(10, 16, Origin::Malloc, {});
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(pool_.deallocate(addr(p), {}, nullptr), FreeResult::Ok);
}

INSTANTIATE_TEST_SUITE_P(Mechanisms, GuardedPoolTest,
                         ::testing::Values(Param{false, false}, Param{false, true}, Param{true, false},
                                           Param{true, true}),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           return std::string(info.param.fallback ? "Mprotect" : "Markers") +
                                  (info.param.below ? "Below" : "Above");
                         });

}  // namespace
}  // namespace heapguard::test
