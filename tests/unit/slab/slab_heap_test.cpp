// SPDX-License-Identifier: Apache-2.0
// SlabHeap on its own instances: refill hands out distinct slot starts of the
// right class, release takes them back, a slot released twice is fatal,
// empty slabs beyond the budget are purged (read back as zero), and
// validation from out-of-line state accepts exactly the slot starts.
// Hardening: randomized refills are in no address order, reproducible from
// a seed, never hand out a slot twice and keep calloc's zero tracking exact;
// guard slabs fault, are never handed out, are rejected by validation, and
// are thinned (accessible, still never handed out) when installs fail.
#include "slab/slab_heap.h"

#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

namespace heapguard::test {

class SlabHeapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    heap_ = new SlabHeap();
    ASSERT_TRUE(heap_->init());
  }
  void TearDown() override {
    heap_->unmap_for_testing();
    delete heap_;
  }
  std::vector<void*> take(unsigned c, size_t n) {
    std::vector<void*> out(n);
    size_t got = 0;
    while (got < n) {
      size_t k = heap_->refill(c, out.data() + got, n - got);
      EXPECT_GT(k, 0u);
      if (k == 0) break;
      got += k;
    }
    return out;
  }
  SlabHeap* heap_ = nullptr;
};

TEST_F(SlabHeapTest, RefillGivesDistinctAlignedSlotsOfTheClass) {
  for (unsigned c : {1u, 2u, 17u, 30u, unsigned(kNumClasses - 1)}) {
    auto slots = take(c, 300);
    std::set<void*> unique(slots.begin(), slots.end());
    EXPECT_EQ(unique.size(), slots.size());
    for (void* s : slots) {
      uintptr_t p = reinterpret_cast<uintptr_t>(s);
      ASSERT_EQ(p % 16, 0u);
      ASSERT_TRUE(heap_->contains(p));
      ASSERT_EQ(heap_->class_of(p), c);
      ASSERT_TRUE(heap_->is_block_start(p, c));
      ASSERT_EQ(heap_->block_containing(p + 1, c), p);
    }
    heap_->release(c, slots.data(), slots.size());
    EXPECT_EQ(heap_->class_stats(c).slots_out, 0u);
  }
}

TEST_F(SlabHeapTest, ValidationRejectsEverythingButSlotStarts) {
  unsigned c = 5;  // 80-byte slots
  auto slots = take(c, 10);
  uintptr_t p = reinterpret_cast<uintptr_t>(slots[3]);
  EXPECT_TRUE(heap_->is_block_start(p, c));
  for (uintptr_t d : {1, 8, 16, 40, 79}) EXPECT_FALSE(heap_->is_block_start(p + d, c)) << d;
  // Beyond every used slab: not a block, and validation must not touch it.
  uintptr_t far = heap_->region_base(c) + (heap_->region_size() / 2);
  EXPECT_FALSE(heap_->is_block_start(far, c));
  EXPECT_EQ(heap_->block_containing(far, c), 0u);
  heap_->release(c, slots.data(), slots.size());
}

TEST_F(SlabHeapTest, RefillPrefersLowAddressesFirst) {
  auto slots = take(1, 8);
  // The cache pops from the end, so the lowest address comes last.
  for (size_t i = 1; i < slots.size(); ++i) EXPECT_GT(slots[i - 1], slots[i]);
  heap_->release(1, slots.data(), slots.size());
}

TEST_F(SlabHeapTest, EmptySlabsBeyondTheBudgetArePurgedAndReadBackZero) {
  unsigned c = 20;
  const SizeClass& sc = kSizeClasses[c];
  size_t n = size_t(sc.slots) * 200;
  auto slots = take(c, n);
  for (void* s : slots) memset(s, 0xab, sc.usable);
  uint64_t before = heap_->purged_bytes_total();
  heap_->release(c, slots.data(), slots.size());
  EXPECT_GT(heap_->purged_bytes_total(), before);
  EXPECT_GT(heap_->purge_all_empty() + heap_->purged_bytes_total() - before, 0u);
  EXPECT_EQ(heap_->class_stats(c).empty_slabs, 0u);
  auto again = take(c, n);
  size_t zero_slots = 0;
  for (void* s : again) zero_slots += static_cast<unsigned char*>(s)[0] == 0 ? 1 : 0;
  EXPECT_EQ(zero_slots, again.size());
  heap_->release(c, again.data(), again.size());
}

TEST_F(SlabHeapTest, StatsCountSlotsOut) {
  auto slots = take(3, 100);
  EXPECT_EQ(heap_->class_stats(3).slots_out, 100u);
  heap_->release(3, slots.data(), 40);
  EXPECT_EQ(heap_->class_stats(3).slots_out, 60u);
  heap_->release(3, slots.data() + 40, 60);
  EXPECT_EQ(heap_->class_stats(3).slots_out, 0u);
}

TEST_F(SlabHeapTest, TakeOneKnowsWhichSlotsStillReadAsZero) {
  unsigned c = size_to_class(5000);
  const SizeClass& sc = kSizeClasses[c];
  std::vector<void*> taken;
  for (size_t i = 0; i < size_t(sc.slots) * 3; ++i) {
    bool zeroed = false;
    void* p = heap_->take_one(c, &zeroed);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(zeroed) << "fresh slot " << i;
    for (size_t k = 0; k < sc.usable; k += 512) ASSERT_EQ(static_cast<unsigned char*>(p)[k], 0);
    memset(p, 0x5a, sc.usable);
    taken.push_back(p);
  }
  // Written and returned: the next take of the same slot must not claim zero.
  heap_->release(c, taken.data(), 1);
  bool zeroed = true;
  void* again = heap_->take_one(c, &zeroed);
  EXPECT_EQ(again, taken[0]);
  EXPECT_FALSE(zeroed);
  taken[0] = again;
  // Emptied and purged: zero again.
  heap_->release(c, taken.data(), taken.size());
  heap_->purge_all_empty();
  void* purged = heap_->take_one(c, &zeroed);
  ASSERT_NE(purged, nullptr);
  EXPECT_TRUE(zeroed);
  EXPECT_EQ(static_cast<unsigned char*>(purged)[0], 0);
  heap_->release(c, &purged, 1);
}

using SlabHeapDeathTest = SlabHeapTest;

TEST_F(SlabHeapDeathTest, ReleasingASlotTwiceIsMetadataCorruption) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto slots = take(2, 4);
  heap_->release(2, slots.data(), 4);
  EXPECT_DEATH(heap_->release(2, slots.data(), 1),
               "ERROR: HeapGuard: heap-metadata-corruption on address 0x[0-9a-f]+ at pc 0x[0-9a-f]+ thread T[0-9]+\n(    #[^\n]*\n)*slab metadata: slot released twice");
}

// The hardened layouts: each test below configures heaps of its own.
SlabConfig layout(bool randomize, bool guards, uint64_t seed = 0) {
  SlabConfig config;
  config.randomize = randomize;
  config.guards = guards;
  config.seed = seed;
  return config;
}

// A configured heap of its own, unmapped at scope exit.
class ScopedHeap {
 public:
  explicit ScopedHeap(const SlabConfig& config) : heap_(std::make_unique<SlabHeap>()) {
    ok_ = heap_->init();
    EXPECT_TRUE(ok_);
    heap_->configure(config);
  }
  ~ScopedHeap() {
    if (ok_) heap_->unmap_for_testing();
  }
  SlabHeap* operator->() const { return heap_.get(); }
  SlabHeap& operator*() const { return *heap_; }

 private:
  std::unique_ptr<SlabHeap> heap_;
  bool ok_ = false;
};

std::vector<void*> take_n(SlabHeap& heap, unsigned c, size_t n) {
  std::vector<void*> out(n);
  size_t got = 0;
  while (got < n) {
    size_t k = heap.refill(c, out.data() + got, std::min<size_t>(n - got, 64));
    EXPECT_GT(k, 0u);
    if (k == 0) break;
    got += k;
  }
  out.resize(got);
  return out;
}

uint64_t slab_index(SlabHeap& heap, unsigned c, const void* p) {
  return (reinterpret_cast<uintptr_t>(p) - heap.region_base(c)) >> kSizeClasses[c].slab_shift;
}

uintptr_t slab_address(SlabHeap& heap, unsigned c, uint64_t index) {
  return heap.region_base(c) + (uintptr_t(index) << kSizeClasses[c].slab_shift);
}

TEST(SlabHeapRandomTest, RefilledBatchesComeInNoAddressOrder) {
  ScopedHeap heap(layout(true, false, 0x5eed));
  for (unsigned c : {1u, 3u, 17u, 26u}) {
    const SizeClass& sc = kSizeClasses[c];
    size_t want = std::max<size_t>(sc.cache_cap / 2, 2);
    std::mt19937_64 rng(c);
    std::vector<void*> held;
    size_t pairs = 0, ascending = 0, adjacent = 0;
    for (int round = 0; round < 400; ++round) {
      std::vector<void*> batch(want);
      size_t n = heap->refill(c, batch.data(), want);
      ASSERT_GT(n, 0u);
      for (size_t i = 1; i < n; ++i) {
        uintptr_t a = reinterpret_cast<uintptr_t>(batch[i - 1]), b = reinterpret_cast<uintptr_t>(batch[i]);
        ++pairs;
        ascending += b > a ? 1 : 0;
        adjacent += (b > a ? b - a : a - b) == sc.slot_size ? 1 : 0;
      }
      held.insert(held.end(), batch.begin(), batch.begin() + n);
      // Give back a random half, so later refills also draw on partial slabs.
      std::shuffle(held.begin(), held.end(), rng);
      size_t give = held.size() / 2;
      heap->release(c, held.data() + held.size() - give, give);
      held.resize(held.size() - give);
    }
    // A uniformly random order has each neighbour above the previous one
    // with probability 1/2; address order gives 0 (or 1).
    EXPECT_NEAR(double(ascending) / double(pairs), 0.5, 0.04) << "class " << c << ", " << pairs << " pairs";
    EXPECT_LT(double(adjacent) / double(pairs), 0.2) << "class " << c;
    heap->release(c, held.data(), held.size());
    EXPECT_EQ(heap->class_stats(c).slots_out, 0u);
  }
}

TEST(SlabHeapRandomTest, SingleTakesComeInNoAddressOrder) {
  ScopedHeap heap(layout(true, false, 77));
  unsigned c = size_to_class(5000);
  std::mt19937_64 rng(5);
  std::vector<void*> held;
  uintptr_t prev = 0;
  size_t pairs = 0, ascending = 0;
  for (int i = 0; i < 4000; ++i) {
    bool zeroed;
    void* p = heap->take_one(c, &zeroed);
    ASSERT_NE(p, nullptr);
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    if (prev != 0) {
      ++pairs;
      ascending += a > prev ? 1 : 0;
    }
    prev = a;
    held.push_back(p);
    if (held.size() > 40) {
      std::shuffle(held.begin(), held.end(), rng);
      heap->release(c, held.data() + 20, held.size() - 20);
      held.resize(20);
    }
  }
  EXPECT_NEAR(double(ascending) / double(pairs), 0.5, 0.1);
  heap->release(c, held.data(), held.size());
}

// Offsets from the class regions of a fixed sequence of refills, single
// takes and releases: the layout that a seed produces.
std::vector<uintptr_t> layout_of(uint64_t seed, uint64_t reseed = 0) {
  ScopedHeap heap(layout(true, true, seed));
  if (reseed != 0) heap->reseed_after_fork(reseed);
  std::vector<uintptr_t> offsets;
  for (unsigned c : {1u, 9u, 33u}) {
    std::vector<void*> held;
    for (int round = 0; round < 60; ++round) {
      void* batch[17];
      size_t n = heap->refill(c, batch, 16);
      bool zeroed;
      batch[n++] = heap->take_one(c, &zeroed);
      for (size_t i = 0; i < n; ++i) {
        offsets.push_back(reinterpret_cast<uintptr_t>(batch[i]) - heap->region_base(c));
        // Keep every third, so the heap has partial slabs to choose from.
        if (i % 3 == 0) held.push_back(batch[i]);
        else heap->release(c, &batch[i], 1);
      }
    }
    heap->release(c, held.data(), held.size());
  }
  return offsets;
}

TEST(SlabHeapRandomTest, TheSeedDeterminesTheLayout) {
  std::vector<uintptr_t> a = layout_of(42);
  EXPECT_EQ(a, layout_of(42));
  EXPECT_NE(a, layout_of(43));
  // Seed 0 draws from getrandom: two heaps differ.
  EXPECT_NE(layout_of(0), layout_of(0));
  // A fork child's new seed changes what follows; the same new seed repeats it.
  EXPECT_NE(a, layout_of(42, 1234));
  EXPECT_EQ(layout_of(42, 1234), layout_of(99, 1234));
}

TEST(SlabHeapRandomTest, FullSlabsHandOutEverySlotExactlyOnce) {
  for (bool guards : {false, true}) {
    ScopedHeap heap(layout(true, guards, 9));
    for (unsigned c : {1u, 3u, 9u, size_to_class(5000)}) {
      const SizeClass& sc = kSizeClasses[c];
      // A slab is grown only when no partial slab is left, so exactly the
      // slots of the first 12 slabs come out, each once.
      std::vector<void*> slots = take_n(*heap, c, size_t(sc.slots) * 12);
      ASSERT_EQ(slots.size(), size_t(sc.slots) * 12);
      std::set<void*> unique(slots.begin(), slots.end());
      EXPECT_EQ(unique.size(), slots.size()) << "class " << c;
      std::map<uint64_t, size_t> per_slab;
      for (void* p : slots) {
        ASSERT_TRUE(heap->is_block_start(reinterpret_cast<uintptr_t>(p), c));
        ASSERT_FALSE(heap->in_guard_slab(reinterpret_cast<uintptr_t>(p), c));
        ++per_slab[slab_index(*heap, c, p)];
      }
      EXPECT_EQ(per_slab.size(), 12u);
      for (auto [slab, count] : per_slab) EXPECT_EQ(count, sc.slots) << "class " << c << " slab " << slab;
      heap->release(c, slots.data(), slots.size());
    }
  }
}

TEST(SlabHeapRandomTest, NoSlotIsHandedOutTwiceUntilReleased) {
  ScopedHeap heap(layout(true, true, 2024));
  for (unsigned c : {1u, 3u, 12u, size_to_class(5000), unsigned(kNumClasses - 1)}) {
    std::mt19937_64 rng(c * 31);
    std::set<void*> out;
    std::vector<void*> held;
    for (int op = 0; op < 3000; ++op) {
      unsigned r = unsigned(rng() % 10);
      std::vector<void*> got;
      if (r < 4) {
        void* batch[32];
        got.assign(batch, batch + heap->refill(c, batch, 1 + rng() % 32));
      } else if (r < 6) {
        bool zeroed;
        got.push_back(heap->take_one(c, &zeroed));
      } else if (!held.empty()) {
        std::shuffle(held.begin(), held.end(), rng);
        size_t give = 1 + rng() % held.size();
        heap->release(c, held.data() + held.size() - give, give);
        for (size_t i = held.size() - give; i < held.size(); ++i) out.erase(held[i]);
        held.resize(held.size() - give);
      }
      for (void* p : got) {
        ASSERT_NE(p, nullptr);
        ASSERT_TRUE(out.insert(p).second) << "class " << c << ": " << p << " handed out twice";
        ASSERT_TRUE(heap->is_block_start(reinterpret_cast<uintptr_t>(p), c));
        ASSERT_FALSE(heap->in_guard_slab(reinterpret_cast<uintptr_t>(p), c));
        held.push_back(p);
      }
    }
    EXPECT_EQ(heap->class_stats(c).slots_out, held.size());
    heap->release(c, held.data(), held.size());
    EXPECT_EQ(heap->class_stats(c).slots_out, 0u);
  }
}

// Drives take_one, refill and release at random against a model of which
// slots still read as zero: a slot never handed out since its slab was
// fresh or purged must be reported zeroed, one handed out since must not.
// A slab that emptied may have been purged by release (retain budget), so
// its slots become unknown: either answer, but "zeroed" must be true to the
// bytes. After purge_all_empty every slot is zero again.
void check_zero_tracking(SlabHeap& heap, unsigned c, uint64_t seed) {
  enum class Zero { Dirty, Unknown };  // absent: still zero
  const SizeClass& sc = kSizeClasses[c];
  std::mt19937_64 rng(seed);
  std::map<void*, Zero> state;
  std::map<uint64_t, size_t> out_per_slab;
  std::vector<void*> held;
  size_t checked_clean = 0, checked_dirty = 0;
  auto hand_out = [&](void* p, const bool* zeroed) {
    auto it = state.find(p);
    if (zeroed != nullptr) {
      if (it == state.end()) {
        EXPECT_TRUE(*zeroed) << "class " << c << ": never-written slot not reported zeroed";
        ++checked_clean;
      } else if (it->second == Zero::Dirty) {
        EXPECT_FALSE(*zeroed) << "class " << c << ": written slot reported zeroed";
        ++checked_dirty;
      }
      if (*zeroed) {
        const unsigned char* b = static_cast<const unsigned char*>(p);
        for (size_t i = 0; i < sc.usable; ++i) ASSERT_EQ(b[i], 0) << "class " << c << " byte " << i;
      }
    }
    memset(p, 0xc5, sc.usable);
    state[p] = Zero::Dirty;
    ++out_per_slab[slab_index(heap, c, p)];
    held.push_back(p);
  };
  auto give_back = [&](size_t k) {
    std::shuffle(held.begin(), held.end(), rng);
    for (size_t i = held.size() - k; i < held.size(); ++i) {
      void* p = held[i];
      heap.release(c, &p, 1);
      uint64_t slab = slab_index(heap, c, p);
      if (--out_per_slab[slab] != 0) continue;
      for (auto& [q, z] : state)
        if (slab_index(heap, c, q) == slab && z == Zero::Dirty) z = Zero::Unknown;
    }
    held.resize(held.size() - k);
  };
  for (int op = 0; op < 2500; ++op) {
    unsigned r = unsigned(rng() % 10);
    if (r < 5) {
      bool zeroed = false;
      void* p = heap.take_one(c, &zeroed);
      ASSERT_NE(p, nullptr);
      hand_out(p, &zeroed);
    } else if (r < 7) {
      void* batch[8];
      size_t n = heap.refill(c, batch, 1 + rng() % 8);
      for (size_t i = 0; i < n; ++i) hand_out(batch[i], nullptr);
    } else if (!held.empty()) {
      give_back(1 + rng() % held.size());
    }
  }
  EXPECT_GT(checked_clean, 0u);
  EXPECT_GT(checked_dirty, 0u);
  give_back(held.size());
  heap.purge_all_empty();
  size_t touched = state.size();
  state.clear();
  out_per_slab.clear();
  for (size_t i = 0; i < touched; ++i) {
    bool zeroed = false;
    void* p = heap.take_one(c, &zeroed);
    ASSERT_NE(p, nullptr);
    hand_out(p, &zeroed);
  }
  give_back(held.size());
}

TEST(SlabHeapRandomTest, ZeroTrackingStaysExactUnderRandomization) {
  for (bool randomize : {true, false}) {
    ScopedHeap heap(layout(randomize, true, 31337));
    for (unsigned c : {1u, 3u, 20u, size_to_class(5000), size_to_class(40000)})
      check_zero_tracking(*heap, c, c + (randomize ? 100 : 0));
  }
}

TEST(SlabHeapRandomTest, PurgedSlotsStillCountAsUsed) {
  ScopedHeap heap(layout(true, false, 8));
  unsigned c = size_to_class(3000);
  const SizeClass& sc = kSizeClasses[c];
  std::vector<void*> slots = take_n(*heap, c, sc.slots / 2);
  std::set<uintptr_t> used;
  for (void* p : slots) used.insert(reinterpret_cast<uintptr_t>(p));
  uintptr_t first = slab_address(*heap, c, slab_index(*heap, c, slots[0])) + kSlabLeadIn + kHeaderSize;
  heap->release(c, slots.data(), slots.size());
  heap->purge_all_empty();
  // Exactly the slots handed out count as used, in whatever order they went.
  for (size_t k = 0; k < sc.slots; ++k) {
    uintptr_t p = first + k * sc.slot_size;
    EXPECT_EQ(heap->slot_was_used(p, c), used.count(p) == 1) << "slot " << k;
  }
}

TEST(SlabHeapGuardTest, FastModeHasNoGuardsAndFillsSlabsInOrder) {
  ScopedHeap heap(SlabConfig{});
  unsigned c = 1;
  EXPECT_EQ(heap->guard_period(c), 0u);
  std::vector<void*> slots = take_n(*heap, c, size_t(kSizeClasses[c].slots) * 70);
  std::set<uint64_t> slabs;
  for (void* p : slots) slabs.insert(slab_index(*heap, c, p));
  EXPECT_EQ(slabs.size(), 70u);
  EXPECT_EQ(*slabs.rbegin(), 69u);
  SlabClassStats st = heap->class_stats(c);
  EXPECT_EQ(st.guard_slabs + st.thin_guard_slabs, 0u);
  EXPECT_EQ(st.backed_slabs, 70u);
  EXPECT_FALSE(heap->in_guard_slab(reinterpret_cast<uintptr_t>(slots[0]), c));
  heap->release(c, slots.data(), slots.size());
}

TEST(SlabHeapGuardTest, GuardSlabsEndEachGroupAndAreNeverHandedOut) {
  for (bool randomize : {false, true}) {
    ScopedHeap heap(layout(randomize, true, 5));
    for (unsigned c : {1u, 9u, 17u, 21u, 33u, 41u, 45u, unsigned(kNumClasses - 1)}) {
      const SizeClass& sc = kSizeClasses[c];
      const size_t slab_bytes = size_t{1} << sc.slab_shift;
      const uint32_t period = heap->guard_period(c);
      ASSERT_GE(period, 2u);
      ASSERT_EQ(period & (period - 1), 0u);
      // A group and its guard span 64-256 KiB, unless one slab alone is bigger.
      if (period > 2) {
        EXPECT_GE(period * slab_bytes, size_t{64} << 10) << "class " << c;
        EXPECT_LE(period * slab_bytes, size_t{256} << 10) << "class " << c;
      }
      std::vector<void*> slots = take_n(*heap, c, size_t(sc.slots) * (period - 1) * 3);
      std::set<uint64_t> slabs;
      for (void* p : slots) {
        uint64_t s = slab_index(*heap, c, p);
        ASSERT_NE(s % period, period - 1) << "class " << c << ": slot in guard slab " << s;
        slabs.insert(s);
      }
      // Exactly the non-guard slabs of the first three groups.
      EXPECT_EQ(slabs.size(), size_t(period - 1) * 3) << "class " << c;
      EXPECT_EQ(*slabs.rbegin(), uint64_t(3 * period - 2)) << "class " << c;
      for (uint64_t g = period - 1; g < 3 * period - 1; g += period) {
        uintptr_t base = slab_address(*heap, c, g);
        EXPECT_TRUE(heap->in_guard_slab(base, c));
        EXPECT_FALSE(heap->in_guard_slab(base - 1, c));
        EXPECT_FALSE(heap->in_guard_slab(base + slab_bytes, c));
        for (size_t k = 0; k < sc.slots; ++k) {
          uintptr_t start = base + kSlabLeadIn + kHeaderSize + k * sc.slot_size;
          ASSERT_FALSE(heap->is_block_start(start, c)) << "class " << c << " slot " << k;
          ASSERT_EQ(heap->block_containing(start, c), 0u);
          ASSERT_EQ(heap->block_containing(start + sc.slot_size / 2, c), 0u);
        }
        EXPECT_EQ(heap->block_containing(base, c), 0u);
        EXPECT_EQ(heap->block_containing(base + slab_bytes - 1, c), 0u);
      }
      SlabClassStats st = heap->class_stats(c);
      EXPECT_GE(st.guard_slabs, 2u) << "class " << c;
      EXPECT_EQ(st.thin_guard_slabs, 0u) << "class " << c;
      EXPECT_EQ(st.backed_slabs, size_t(period - 1) * 3) << "class " << c;
      EXPECT_EQ(st.free_slots, 0u) << "class " << c;
      heap->release(c, slots.data(), slots.size());
    }
  }
}

TEST(SlabHeapGuardTest, GuardsAreChargedToTheMapCountBudget) {
  size_t before = pal::Pal::guard_splits();
  ScopedHeap heap(layout(false, true));
  unsigned c = 2;
  std::vector<void*> slots = take_n(*heap, c, size_t(kSizeClasses[c].slots) * heap->guard_period(c) * 4);
  SlabClassStats st = heap->class_stats(c);
  EXPECT_GE(st.guard_slabs, 4u);
  // MADV_GUARD_INSTALL splits no mapping; the mprotect fallback charges two
  // per guard to the budget shared with the large heap.
  if (pal::Pal::has_lightweight_guards()) EXPECT_EQ(pal::Pal::guard_splits(), before);
  else EXPECT_EQ(pal::Pal::guard_splits() - before, 2 * st.guard_slabs);
  EXPECT_LE(pal::Pal::guard_splits(), pal::Pal::guard_split_budget());
  heap->release(c, slots.data(), slots.size());
}

TEST(SlabHeapGuardTest, GuardsAreThinnedWhenInstallsFail) {
  ScopedHeap heap(layout(true, true, 3));
  heap->fail_guard_installs_for_testing(true);
  unsigned c = 4;
  const SizeClass& sc = kSizeClasses[c];
  const uint32_t period = heap->guard_period(c);
  std::vector<void*> slots = take_n(*heap, c, size_t(sc.slots) * (period - 1) * 2 + 1);
  SlabClassStats st = heap->class_stats(c);
  EXPECT_EQ(st.guard_slabs, 0u);
  EXPECT_GE(st.thin_guard_slabs, 2u);
  // A thin guard is ordinary committed memory (no fault) that is still
  // never handed out and never accepted as a block.
  for (uint64_t g : {uint64_t(period - 1), uint64_t(2 * period - 1)}) {
    unsigned char* base = reinterpret_cast<unsigned char*>(slab_address(*heap, c, g));
    memset(base, 0x5a, size_t{1} << sc.slab_shift);
    EXPECT_EQ(base[100], 0x5a);
    for (size_t k = 0; k < sc.slots; ++k)
      ASSERT_FALSE(heap->is_block_start(reinterpret_cast<uintptr_t>(base) + kSlabLeadIn + kHeaderSize +
                                            k * sc.slot_size, c));
  }
  for (void* p : slots) ASSERT_NE(slab_index(*heap, c, p) % period, uint64_t(period - 1));
  heap->release(c, slots.data(), slots.size());
}

TEST(SlabHeapGuardDeathTest, GuardSlabsFault) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ScopedHeap heap(layout(false, true));
  unsigned c = 5;
  const SizeClass& sc = kSizeClasses[c];
  const uint32_t period = heap->guard_period(c);
  std::vector<void*> slots = take_n(*heap, c, size_t(sc.slots) * (period - 1) + 1);
  ASSERT_EQ(heap->class_stats(c).thin_guard_slabs, 0u);
  volatile char* guard = reinterpret_cast<char*>(slab_address(*heap, c, period - 1));
  EXPECT_EXIT(guard[100] = 1, ::testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EXIT((void)guard[0], ::testing::KilledBySignal(SIGSEGV), "");
  // A linear overflow from the last block of the group runs into the guard
  // (through the slab's tail waste) and faults before the next group.
  volatile char* block = reinterpret_cast<char*>(slab_address(*heap, c, period - 2) + kSlabLeadIn + kHeaderSize +
                                                 (sc.slots - 1) * sc.slot_size);
  EXPECT_EXIT(
      {
        for (size_t i = 0; i < 2 * (size_t{1} << sc.slab_shift); ++i) block[i] = 0x41;
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGSEGV), "");
  heap->release(c, slots.data(), slots.size());
}

}  // namespace heapguard::test
