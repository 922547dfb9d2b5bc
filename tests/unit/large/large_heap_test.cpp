// SPDX-License-Identifier: Apache-2.0
// LargeHeap on its own instances, in every layout (no guards; guards with
// the block at the front; at the end; at the end with random leads) and
// with both guard mechanisms (MADV_GUARD_INSTALL markers, the mprotect
// fallback): blocks are aligned, recorded, zeroed when asked, reused from
// the cache, grown and shrunk with contents kept, and memory goes back to
// the OS past the cache bound. Guards fault on both sides, place_at_end puts
// the 16-byte rounding against the trailing guard, random leads repeat for
// one seed only, quarantined blocks fault and are reported quarantined,
// scrubbed mappings never hand old bytes to a new block, and guards are
// thinned past the mapping budget and charged back when unmapped.
#include "large/large_heap.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace heapguard::test {
namespace {

struct Layout {
  const char* name;
  LargeConfig config;
  bool fallback;  // force the mprotect guards
};

const Layout kLayouts[] = {
    {"NoGuards", {false, false, false, 1}, false},
    {"Front", {true, false, false, 1}, false},
    {"End", {true, true, false, 1}, false},
    {"EndRandom", {true, true, true, 7}, false},
    {"EndExactRealloc", {true, true, false, 9, true}, false},
    {"FrontFallback", {true, false, true, 3}, true},
    {"EndFallback", {true, true, true, 5}, true},
};

size_t page() { return size_t(sysconf(_SC_PAGESIZE)); }

// Kernel mappings (lines of /proc/self/maps) that overlap [from, to).
size_t mappings_over(uintptr_t from, uintptr_t to) {
  FILE* f = fopen("/proc/self/maps", "r");
  size_t n = 0;
  unsigned long lo, hi;
  char line[512];
  while (fgets(line, sizeof line, f) != nullptr) {
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo < to && hi > from) ++n;
  }
  fclose(f);
  return n;
}

class LargeHeapTest : public ::testing::TestWithParam<Layout> {
 protected:
  void SetUp() override {
    if (GetParam().fallback) pal::Pal::disable_guard_markers_for_testing(true);
    heap_ = new LargeHeap();
    heap_->configure(GetParam().config);
  }
  void TearDown() override {
    EXPECT_EQ(heap_->stats().blocks, 0u);
    heap_->unmap_for_testing();
    EXPECT_EQ(heap_->stats().live_mapped_bytes, 0u);
    // Every split charged for this heap's guards went back with its mapping.
    EXPECT_EQ(heap_->stats().guard_splits, 0u);
    delete heap_;
    pal::Pal::disable_guard_markers_for_testing(false);
  }
  const LargeConfig& config() const { return GetParam().config; }
  LargeBlock block_of(const void* p) {
    LargeBlock b;
    EXPECT_TRUE(heap_->lookup(reinterpret_cast<uintptr_t>(p), &b));
    return b;
  }
  void release(void* p, bool scrub = false) { EXPECT_TRUE(heap_->deallocate(reinterpret_cast<uintptr_t>(p), scrub)); }
  // The block's mapping has guards, placed where the layout says. A block
  // resized in place ends at a page boundary unless realloc is exact.
  void expect_layout(const void* p, size_t n, bool resized = false) {
    LargeBlock b = block_of(p);
    uintptr_t u = reinterpret_cast<uintptr_t>(p);
    EXPECT_EQ(b.requested, n);
    EXPECT_GE(LargeHeap::usable_size(b), n);
    EXPECT_LE(b.map_base, b.window_begin);
    EXPECT_LE(b.window_begin + kHeaderSize, u);
    EXPECT_LE(b.window_end, b.map_base + b.map_size);
    if (config().guards) {
      EXPECT_NE(b.guard, pal::GuardKind::None);
      EXPECT_EQ(b.guard, GetParam().fallback ? pal::GuardKind::Protect : pal::GuardKind::Marker);
      EXPECT_GE(b.window_begin - b.map_base, page());
      EXPECT_GE(b.map_base + b.map_size - b.window_end, page());
    }
    if (config().place_at_end && (!resized || config().exact_realloc)) {
      EXPECT_EQ(u + ((n + 15) & ~size_t{15}), b.window_end);
    } else if (config().place_at_end) {
      EXPECT_TRUE(b.window_end == ((u + n + page() - 1) & ~(page() - 1)) || b.window_end == u + ((n + 15) & ~size_t{15}));
    } else {
      EXPECT_EQ(b.window_end, (u + n + page() - 1) & ~(page() - 1));
    }
  }
  LargeHeap* heap_ = nullptr;
};

std::string layout_name(const ::testing::TestParamInfo<Layout>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Layouts, LargeHeapTest, ::testing::ValuesIn(kLayouts), layout_name);

TEST_P(LargeHeapTest, BlocksAreRecordedAlignedAndPlaced) {
  for (size_t align : {16, 64, 4096, 65536, 1 << 21}) {
    for (size_t n : {size_t{300000}, size_t{300001}, size_t{131089}, size_t{1 << 20}}) {
      void* p = heap_->allocate(n, align, false, Origin::Malloc);
      ASSERT_NE(p, nullptr);
      uintptr_t u = reinterpret_cast<uintptr_t>(p);
      EXPECT_EQ(u % align, 0u);
      LargeBlock b = block_of(p);
      EXPECT_FALSE(b.quarantined);
      EXPECT_GE(LargeHeap::usable_size(b), n);
      if (align <= 16) expect_layout(p, n);
      memset(p, 1, LargeHeap::usable_size(b));
      release(p);
      EXPECT_FALSE(heap_->lookup(u, &b));
    }
  }
}

TEST_P(LargeHeapTest, GuardsFaultOnBothSides) {
  if (!config().guards) GTEST_SKIP() << "no guards in this layout";
  for (size_t n : {size_t{200000}, size_t{200001}, size_t{4 << 20}}) {
    auto* p = static_cast<char*>(heap_->allocate(n, 16, false, Origin::Malloc));
    LargeBlock b = block_of(p);
    char* first = reinterpret_cast<char*>(b.window_begin);
    char* past = reinterpret_cast<char*>(b.window_end);
    first[0] = 1;
    past[-1] = 1;
    EXPECT_EXIT(first[-1] = 1, ::testing::KilledBySignal(SIGSEGV), "");
    EXPECT_EXIT((void)*static_cast<volatile char*>(past), ::testing::KilledBySignal(SIGSEGV), "");
    EXPECT_EXIT(past[page() - 1] = 1, ::testing::KilledBySignal(SIGSEGV), "") << "the whole trailing guard";
    if (config().place_at_end) {
      // The first byte past the 16-byte rounding is the guard.
      EXPECT_EXIT(p[(n + 15) & ~size_t{15}] = 1, ::testing::KilledBySignal(SIGSEGV), "");
    }
    release(p);
  }
}

TEST_P(LargeHeapTest, GuardsCostNoMappingsWithMarkers) {
  if (!config().guards) GTEST_SKIP() << "no guards in this layout";
  void* p = heap_->allocate(1 << 20, 16, false, Origin::Malloc);
  LargeBlock b = block_of(p);
  size_t vmas = mappings_over(b.map_base, b.map_base + b.map_size);
  if (GetParam().fallback) {
    EXPECT_EQ(b.splits, 2u);
    EXPECT_EQ(vmas, 3u) << "mprotect: lead guard, window, trailing guard";
  } else {
    EXPECT_EQ(b.splits, 0u);
    EXPECT_EQ(vmas, 1u) << "markers split nothing";
  }
  release(p);
}

TEST_P(LargeHeapTest, ReusedMemoryIsZeroedWhenAsked) {
  for (size_t n : {size_t{1 << 20}, size_t{300000}, size_t{2 << 20}}) {
    void* p = heap_->allocate(1 << 20, 16, false, Origin::Malloc);
    memset(p, 0xcd, 1 << 20);
    release(p);
    EXPECT_GT(heap_->stats().cached_bytes, 0u);
    auto* q = static_cast<unsigned char*>(heap_->allocate(n, 16, true, Origin::Malloc));
    for (size_t i = 0; i < n; i += 4093) ASSERT_EQ(q[i], 0) << i;
    ASSERT_EQ(q[n - 1], 0);
    release(q);
  }
}

// Whatever layout the cache hands back, with scrub no byte of the window a
// new block can read belongs to an earlier block.
TEST_P(LargeHeapTest, ScrubbedReuseNeverReturnsOldBytes) {
  for (bool purge : {false, true}) {
    heap_->set_scrub_by_purge_for_testing(purge);
    std::mt19937_64 rng(11);
    std::vector<void*> live;
    for (int round = 0; round < 200; ++round) {
      size_t n = (128 << 10) + rng() % (3 << 20);
      auto* p = static_cast<unsigned char*>(heap_->allocate(n, 16, false, Origin::Malloc));
      ASSERT_NE(p, nullptr);
      LargeBlock b = block_of(p);
      const auto* w = reinterpret_cast<const unsigned char*>(b.window_begin);
      for (size_t i = 0; i < b.window_end - b.window_begin; i += 512) {
        // The header of this block is the only non-zero word allowed.
        if (w + i >= p - kHeaderSize && w + i < p) continue;
        ASSERT_EQ(w[i], 0) << "round " << round << " offset " << i;
      }
      memset(p, 0xab, LargeHeap::usable_size(b));
      live.push_back(p);
      if (live.size() > 3 || rng() % 2 == 0) {
        size_t k = rng() % live.size();
        if (rng() % 3 == 0) {
          ASSERT_TRUE(heap_->quarantine(reinterpret_cast<uintptr_t>(live[k])));
        }
        release(live[k], true);
        live.erase(live.begin() + ptrdiff_t(k));
      }
    }
    for (void* p : live) release(p, true);
  }
}

// A scrubbed mapping reused for a smaller block keeps the old bytes in its
// reserve (resident memory is what makes reuse cheap); growing the new
// block into that reserve must not show them.
TEST_P(LargeHeapTest, ScrubReachesTheReserveWhenReallocGrowsIntoIt) {
  if (config().place_at_end && config().exact_realloc) GTEST_SKIP() << "exact realloc copies into a new block";
  auto* big = static_cast<unsigned char*>(heap_->allocate(4 << 20, 16, false, Origin::Malloc));
  memset(big, 0xab, 4 << 20);
  release(big, true);
  auto* p = static_cast<unsigned char*>(heap_->allocate(200000, 16, false, Origin::Malloc));
  LargeBlock b = block_of(p);
  EXPECT_GT(b.map_size, size_t{4} << 20) << "the cached mapping was reused";
  for (size_t i = 0; i < 200000; i += 997) ASSERT_EQ(p[i], 0);
  memset(p, 0x11, 200000);
  auto* q = static_cast<unsigned char*>(heap_->reallocate(reinterpret_cast<uintptr_t>(p), 3 << 20));
  ASSERT_NE(q, nullptr);
  for (size_t i = 0; i < 200000; i += 997) ASSERT_EQ(q[i], 0x11);
  for (size_t i = 200000 + 4096; i < (3 << 20); i += 997) ASSERT_EQ(q[i], 0) << i;
  release(q, true);
}

// Resident memory that no block uses (the cache, the reserve of reused
// mappings) stays within one budget: past it, reserve is unmapped.
TEST_P(LargeHeapTest, CacheAndSlackShareOneBudget) {
  std::vector<void*> big;
  for (int i = 0; i < 12; ++i) big.push_back(heap_->allocate(16 << 20, 16, false, Origin::Malloc));
  for (void* p : big) memset(p, 1, 16 << 20);
  for (void* p : big) release(p);
  std::vector<void*> small;
  for (int i = 0; i < 12; ++i) small.push_back(heap_->allocate(200 << 10, 16, false, Origin::Malloc));
  size_t windows = 0;
  for (void* p : small) {
    LargeBlock b = block_of(p);
    windows += b.window_end - b.window_begin;
  }
  for (int i = 0; i < 12; ++i) release(heap_->allocate(16 << 20, 16, false, Origin::Malloc));
  LargeStats s = heap_->stats();
  EXPECT_LE(s.cached_bytes + s.live_mapped_bytes - windows, LargeHeap::kCacheBytes);
  for (void* p : small) release(p);
  EXPECT_LE(heap_->stats().cached_bytes, LargeHeap::kCacheBytes);
}

TEST_P(LargeHeapTest, ReallocKeepsContentsGrowingAndShrinking) {
  auto* p = static_cast<unsigned char*>(heap_->allocate(200000, 16, false, Origin::Malloc));
  for (size_t i = 0; i < 200000; ++i) p[i] = static_cast<unsigned char>(i * 7);
  size_t sizes[] = {5 << 20, 40 << 20, 300000, 150000, 150001, 150008, 1 << 20, 200000};
  size_t kept = 200000;
  for (size_t n : sizes) {
    auto* q = static_cast<unsigned char*>(heap_->reallocate(reinterpret_cast<uintptr_t>(p), n));
    ASSERT_NE(q, nullptr);
    size_t check = kept < n ? kept : n;
    for (size_t i = 0; i < check; i += 97) ASSERT_EQ(q[i], static_cast<unsigned char>(i * 7)) << n;
    expect_layout(q, n, true);
    LargeBlock b = block_of(q);
    if (config().guards) {
      EXPECT_EXIT((void)*reinterpret_cast<volatile char*>(b.window_end), ::testing::KilledBySignal(SIGSEGV), "");
    }
    memset(q + check, 0, LargeHeap::usable_size(b) - check);
    for (size_t i = check; i < n; ++i) q[i] = static_cast<unsigned char>(i * 7);
    p = q;
    kept = n;
  }
  if (config().place_at_end && config().exact_realloc) {
    // Same 16-byte rounding: stays; another rounding cannot without a copy.
    uintptr_t u = reinterpret_cast<uintptr_t>(p);
    EXPECT_EQ(heap_->resize_without_copy(u, 199990), p);
    EXPECT_EQ(heap_->resize_without_copy(u, 200100), nullptr);
    EXPECT_EQ(block_of(p).requested, 199990u);
  } else {
    // Front placement grows in place or by mremap: never a copy.
    void* q = heap_->resize_without_copy(reinterpret_cast<uintptr_t>(p), 3 << 20);
    ASSERT_NE(q, nullptr);
    p = static_cast<unsigned char*>(q);
  }
  release(p);
}

TEST_P(LargeHeapTest, ImpossibleSizesFailWithoutSideEffects) {
  EXPECT_EQ(heap_->allocate(SIZE_MAX - 4096, 16, false, Origin::Malloc), nullptr);
  EXPECT_EQ(heap_->allocate(SIZE_MAX / 2, 16, false, Origin::Malloc), nullptr);
  void* p = heap_->allocate(1 << 20, 16, false, Origin::Malloc);
  EXPECT_EQ(heap_->reallocate(reinterpret_cast<uintptr_t>(p), SIZE_MAX - 100), nullptr);
  LargeBlock b;
  EXPECT_TRUE(heap_->lookup(reinterpret_cast<uintptr_t>(p), &b));
  EXPECT_EQ(heap_->stats().blocks, 1u);
  release(p);
}

TEST_P(LargeHeapTest, TheCacheIsBoundedAndReleasable) {
  std::vector<void*> blocks;
  for (int i = 0; i < 40; ++i) blocks.push_back(heap_->allocate(3 << 20, 16, false, Origin::Malloc));
  for (void* p : blocks) release(p);
  LargeStats s = heap_->stats();
  EXPECT_EQ(s.blocks, 0u);
  EXPECT_LE(s.cached_bytes, LargeHeap::kCacheBytes);
  EXPECT_GT(heap_->unmapped_bytes_total(), 0u);
  EXPECT_GT(heap_->release_cache(), 0u);
  EXPECT_EQ(heap_->stats().cached_bytes, 0u);
}

TEST_P(LargeHeapTest, CachedMappingsAreReusedWithTheirGuards) {
  void* p = heap_->allocate(1 << 20, 16, false, Origin::Malloc);
  LargeBlock first = block_of(p);
  release(p);
  // Smaller and then bigger blocks reuse the same mapping; the window moves
  // inside it and the guards follow.
  for (size_t n : {size_t{300000}, size_t{1 << 20}, size_t{600000}, size_t{3 << 20}}) {
    auto* q = static_cast<char*>(heap_->allocate(n, 16, false, Origin::Malloc));
    LargeBlock b = block_of(q);
    if (n <= (1 << 20)) EXPECT_EQ(b.map_base, first.map_base) << n;
    expect_layout(q, n);
    memset(q, 1, n);
    if (config().guards) {
      EXPECT_EXIT((void)*reinterpret_cast<volatile char*>(b.window_end), ::testing::KilledBySignal(SIGSEGV), "");
      EXPECT_EXIT(reinterpret_cast<char*>(b.window_begin)[-1] = 1, ::testing::KilledBySignal(SIGSEGV), "");
    }
    release(q);
  }
}

TEST_P(LargeHeapTest, QuarantinedBlocksFaultAndAreReported) {
  for (size_t n : {size_t{200000}, size_t{5 << 20}, size_t{64 << 20}}) {
    auto* p = static_cast<char*>(heap_->allocate(n, 16, false, Origin::Malloc));
    memset(p, 0x5a, n);
    uintptr_t u = reinterpret_cast<uintptr_t>(p);
    ASSERT_TRUE(heap_->quarantine(u));
    LargeBlock b = block_of(p);
    EXPECT_TRUE(b.quarantined);
    EXPECT_EQ(b.requested, n);
    EXPECT_FALSE(heap_->quarantine(u)) << "a second free of a quarantined block";
    LargeStats s = heap_->stats();
    EXPECT_EQ(s.blocks, 0u);
    EXPECT_EQ(s.quarantined_blocks, 1u);
    EXPECT_EQ(s.quarantined_bytes, b.window_end - b.window_begin);
    EXPECT_EQ(s.live_mapped_bytes, 0u);
    EXPECT_EXIT((void)*static_cast<volatile char*>(p), ::testing::KilledBySignal(SIGSEGV), "");
    EXPECT_EXIT(p[n - 1] = 1, ::testing::KilledBySignal(SIGSEGV), "");
    EXPECT_EXIT((void)*reinterpret_cast<volatile char*>(u - kHeaderSize), ::testing::KilledBySignal(SIGSEGV), "");
    EXPECT_EQ(heap_->resize_without_copy(u, n + 1), nullptr);
    EXPECT_TRUE(heap_->deallocate(u, true));
    EXPECT_EQ(heap_->stats().quarantined_blocks, 0u);
    EXPECT_EQ(heap_->stats().quarantined_bytes, 0u);
    EXPECT_FALSE(heap_->lookup(u, &b));
    EXPECT_FALSE(heap_->deallocate(u, true));
    EXPECT_FALSE(heap_->quarantine(u));
    // The mapping (if cached) is usable again, guards in place, old bytes gone.
    auto* q = static_cast<unsigned char*>(heap_->allocate(n, 16, false, Origin::Malloc));
    for (size_t i = 0; i < n; i += 1021) ASSERT_EQ(q[i], 0) << i;
    q[0] = 1;
    q[n - 1] = 1;
    release(q);
  }
}

// A small block in a reused big mapping must not hold the whole mapping's
// memory while it waits in quarantine.
TEST_P(LargeHeapTest, QuarantineGivesBackTheReserve) {
  void* big = heap_->allocate(8 << 20, 16, false, Origin::Malloc);
  memset(big, 1, 8 << 20);
  release(big);
  void* p = heap_->allocate(200000, 16, false, Origin::Malloc);
  LargeBlock before = block_of(p);
  EXPECT_GT(before.map_size, size_t{8} << 20) << "reused the big mapping";
  ASSERT_TRUE(heap_->quarantine(reinterpret_cast<uintptr_t>(p)));
  LargeBlock after = block_of(p);
  EXPECT_EQ(after.map_size, after.lead_guard + (after.window_end - after.window_begin) + (config().guards ? page() : 0));
  EXPECT_EQ(after.window_begin, before.window_begin);
  // At most the guard pages may still count as dirty.
  EXPECT_LE(heap_->stats().live_mapped_bytes, after.lead_guard + page()) << "no reserve left behind";
  release(p, true);
}

TEST_P(LargeHeapTest, StatsCountWindowsNotGuards) {
  void* p = heap_->allocate(1 << 20, 16, false, Origin::Malloc);
  LargeBlock b = block_of(p);
  LargeStats s = heap_->stats();
  EXPECT_EQ(s.blocks, 1u);
  EXPECT_EQ(s.live_mapped_bytes, b.window_end - b.window_begin);
  release(p);
  s = heap_->stats();
  EXPECT_EQ(s.blocks, 0u);
  EXPECT_EQ(s.cached_bytes, b.window_end - b.window_begin);
  EXPECT_EQ(s.live_mapped_bytes, 0u);
}

// Threads sharing one heap never get overlapping blocks, and the cache,
// the table and the counters stay consistent.
TEST_P(LargeHeapTest, ThreadsShareTheHeap) {
  auto worker = [this](int id) {
    std::mt19937_64 rng(uint64_t(id) * 77 + 1);
    std::vector<std::pair<unsigned char*, size_t>> live;
    for (int i = 0; i < 400; ++i) {
      size_t n = (128 << 10) + rng() % (2 << 20);
      auto* p = static_cast<unsigned char*>(heap_->allocate(n, 16, rng() % 4 == 0, Origin::Malloc));
      ASSERT_NE(p, nullptr);
      memset(p, id, n);
      live.emplace_back(p, n);
      if (live.size() > 4) {
        size_t k = rng() % live.size();
        auto [q, m] = live[k];
        for (size_t j = 0; j < m; j += 4093) ASSERT_EQ(q[j], id);
        uintptr_t u = reinterpret_cast<uintptr_t>(q);
        if (rng() % 2 == 0) ASSERT_TRUE(heap_->quarantine(u));
        ASSERT_TRUE(heap_->deallocate(u, true));
        live.erase(live.begin() + ptrdiff_t(k));
      }
    }
    for (auto [q, m] : live) heap_->deallocate(reinterpret_cast<uintptr_t>(q), true);
  };
  std::vector<std::thread> threads;
  for (int id = 1; id <= 4; ++id) threads.emplace_back(worker, id);
  for (auto& t : threads) t.join();
  LargeStats s = heap_->stats();
  EXPECT_EQ(s.blocks, 0u);
  EXPECT_EQ(s.quarantined_blocks, 0u);
  EXPECT_EQ(s.live_mapped_bytes, 0u);
}

// Leading guard sizes (the random part of the layout) of n fresh mappings.
std::vector<size_t> leads(const LargeConfig& config, size_t n) {
  auto* heap = new LargeHeap();
  heap->configure(config);
  std::vector<void*> blocks;
  std::vector<size_t> out;
  for (size_t i = 0; i < n; ++i) {
    void* p = heap->allocate(200000, 16, false, Origin::Malloc);
    LargeBlock b;
    EXPECT_TRUE(heap->lookup(reinterpret_cast<uintptr_t>(p), &b));
    out.push_back((b.window_begin - b.map_base) / page());
    blocks.push_back(p);
  }
  for (void* p : blocks) heap->deallocate(reinterpret_cast<uintptr_t>(p), false);
  heap->unmap_for_testing();
  delete heap;
  return out;
}

TEST(LargeHeapRandomization, LeadsRepeatForOneSeedAndDifferAcrossSeeds) {
  LargeConfig c{true, true, true, 1234};
  std::vector<size_t> a = leads(c, 64);
  EXPECT_EQ(a, leads(c, 64));
  std::set<size_t> seen(a.begin(), a.end());
  EXPECT_GE(seen.size(), 8u) << "leads spread over 1..16 pages";
  for (size_t lead : a) {
    EXPECT_GE(lead, 1u);
    EXPECT_LE(lead, 1 + LargeHeap::kMaxRandomLeadPages);
  }
  c.seed = 1235;
  EXPECT_NE(a, leads(c, 64));
  c.seed = 0;  // from the OS: two heaps differ
  EXPECT_NE(leads(c, 64), leads(c, 64));
  c.randomize = false;
  EXPECT_EQ(leads(c, 8), std::vector<size_t>(8, 1));
}

// Past the mapping budget, blocks get no guards (and a warning) rather than
// failing; unmapped blocks give their splits back.
TEST(LargeHeapGuardBudget, GuardsAreThinnedPastTheBudgetAndChargedBack) {
  pal::Pal::disable_guard_markers_for_testing(true);
  auto* heap = new LargeHeap();
  heap->configure(LargeConfig{true, true, false, 1});
  testing::internal::CaptureStderr();
  // Room for two blocks' guards. The test process's own allocator charges
  // the same counter, so the budget is set right before the allocations.
  pal::Pal::set_guard_split_budget_for_testing(pal::Pal::guard_splits() + 4);
  void* blocks[4];
  for (void*& p : blocks) p = heap->allocate(200000, 16, false, Origin::Malloc);
  size_t charged = pal::Pal::guard_splits();
  pal::Pal::set_guard_split_budget_for_testing(0);
  std::string err = testing::internal::GetCapturedStderr();
  LargeBlock b[4];
  for (int i = 0; i < 4; ++i) {
    ASSERT_NE(blocks[i], nullptr);
    ASSERT_TRUE(heap->lookup(reinterpret_cast<uintptr_t>(blocks[i]), &b[i]));
  }
  EXPECT_EQ(b[0].guard, pal::GuardKind::Protect);
  EXPECT_EQ(b[1].guard, pal::GuardKind::Protect);
  EXPECT_EQ(b[2].guard, pal::GuardKind::None);
  EXPECT_EQ(b[3].guard, pal::GuardKind::None);
  EXPECT_EQ(heap->stats().guard_splits, 4u);
  EXPECT_NE(err.find("guard pages thinned"), std::string::npos) << err;
  EXPECT_EQ(err.find("guard pages thinned"), err.rfind("guard pages thinned")) << "warned once";
  // A thinned block works, just without guards.
  memset(blocks[2], 1, 200000);
  static_cast<char*>(blocks[2])[200000 + 15] = 1;
  size_t before_release = pal::Pal::guard_splits();
  for (void* p : blocks) heap->deallocate(reinterpret_cast<uintptr_t>(p), false);
  heap->release_cache();
  EXPECT_EQ(before_release - pal::Pal::guard_splits(), 4u) << "charged back on unmap";
  EXPECT_EQ(heap->stats().guard_splits, 0u);
  EXPECT_LE(charged, before_release);
  pal::Pal::set_guard_split_budget_for_testing(pal::Pal::guard_splits() + 2);
  void* again = heap->allocate(200000, 16, false, Origin::Malloc);
  pal::Pal::set_guard_split_budget_for_testing(0);
  LargeBlock a;
  ASSERT_TRUE(heap->lookup(reinterpret_cast<uintptr_t>(again), &a));
  EXPECT_EQ(a.guard, pal::GuardKind::Protect) << "the budget is free again";
  heap->deallocate(reinterpret_cast<uintptr_t>(again), false);
  heap->unmap_for_testing();
  EXPECT_EQ(heap->stats().guard_splits, 0u);
  delete heap;
  pal::Pal::disable_guard_markers_for_testing(false);
}

}  // namespace
}  // namespace heapguard::test
