// SPDX-License-Identifier: Apache-2.0
// SlabHeap on its own instance: refill hands out distinct slot starts of the
// right class, release takes them back, a slot released twice is fatal,
// empty slabs beyond the budget are purged (read back as zero), and
// validation from out-of-line state accepts exactly the slot starts.
#include "slab/slab_heap.h"

#include <gtest/gtest.h>

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
               "ERROR: HeapGuard: heap-metadata-corruption on address 0x[0-9a-f]+\nslab metadata: slot released twice");
}

}  // namespace heapguard::test
