// SPDX-License-Identifier: Apache-2.0
// LargeHeap on its own instance: blocks are aligned, recorded, zeroed when
// asked, reused from the cache, grown and shrunk in place or by mremap with
// contents kept, and memory goes back to the OS past the cache bound.
#include "large/large_heap.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace heapguard::test {

class LargeHeapTest : public ::testing::Test {
 protected:
  void SetUp() override { heap_ = new LargeHeap(); }
  void TearDown() override {
    heap_->unmap_for_testing();
    delete heap_;
  }
  LargeHeap* heap_ = nullptr;
};

TEST_F(LargeHeapTest, BlocksAreRecordedAndAligned) {
  for (size_t align : {16, 64, 4096, 65536, 1 << 21}) {
    void* p = heap_->allocate(300000, align, false, Origin::Malloc);
    ASSERT_NE(p, nullptr);
    uintptr_t u = reinterpret_cast<uintptr_t>(p);
    EXPECT_EQ(u % align, 0u);
    LargeBlock b;
    ASSERT_TRUE(heap_->lookup(u, &b));
    EXPECT_EQ(b.requested, 300000u);
    EXPECT_GE(LargeHeap::usable_size(b), 300000u);
    memset(p, 1, 300000);
    heap_->deallocate(u);
    EXPECT_FALSE(heap_->lookup(u, &b));
  }
}

TEST_F(LargeHeapTest, ReusedMemoryIsZeroedWhenAsked) {
  void* p = heap_->allocate(1 << 20, 16, false, Origin::Malloc);
  memset(p, 0xcd, 1 << 20);
  heap_->deallocate(reinterpret_cast<uintptr_t>(p));
  EXPECT_GT(heap_->stats().cached_bytes, 0u);
  auto* q = static_cast<unsigned char*>(heap_->allocate(1 << 20, 16, true, Origin::Malloc));
  for (size_t i = 0; i < (1 << 20); i += 4093) ASSERT_EQ(q[i], 0) << i;
  heap_->deallocate(reinterpret_cast<uintptr_t>(q));
}

TEST_F(LargeHeapTest, ReallocKeepsContentsGrowingAndShrinking) {
  auto* p = static_cast<unsigned char*>(heap_->allocate(200000, 16, false, Origin::Malloc));
  for (size_t i = 0; i < 200000; ++i) p[i] = static_cast<unsigned char>(i * 7);
  size_t sizes[] = {5 << 20, 40 << 20, 300000, 150000};
  size_t kept = 200000;
  for (size_t n : sizes) {
    auto* q = static_cast<unsigned char*>(heap_->reallocate(reinterpret_cast<uintptr_t>(p), n));
    ASSERT_NE(q, nullptr);
    size_t check = kept < n ? kept : n;
    for (size_t i = 0; i < check; i += 97) ASSERT_EQ(q[i], static_cast<unsigned char>(i * 7)) << n;
    LargeBlock b;
    ASSERT_TRUE(heap_->lookup(reinterpret_cast<uintptr_t>(q), &b));
    EXPECT_EQ(b.requested, n);
    p = q;
    kept = check;
  }
  heap_->deallocate(reinterpret_cast<uintptr_t>(p));
}

TEST_F(LargeHeapTest, ImpossibleSizesFailWithoutSideEffects) {
  EXPECT_EQ(heap_->allocate(SIZE_MAX - 4096, 16, false, Origin::Malloc), nullptr);
  EXPECT_EQ(heap_->allocate(SIZE_MAX / 2, 16, false, Origin::Malloc), nullptr);
  void* p = heap_->allocate(1 << 20, 16, false, Origin::Malloc);
  EXPECT_EQ(heap_->reallocate(reinterpret_cast<uintptr_t>(p), SIZE_MAX - 100), nullptr);
  LargeBlock b;
  EXPECT_TRUE(heap_->lookup(reinterpret_cast<uintptr_t>(p), &b));
  EXPECT_EQ(heap_->stats().blocks, 1u);
  heap_->deallocate(reinterpret_cast<uintptr_t>(p));
}

TEST_F(LargeHeapTest, TheCacheIsBoundedAndReleasable) {
  std::vector<void*> blocks;
  for (int i = 0; i < 40; ++i) blocks.push_back(heap_->allocate(3 << 20, 16, false, Origin::Malloc));
  for (void* p : blocks) heap_->deallocate(reinterpret_cast<uintptr_t>(p));
  LargeStats s = heap_->stats();
  EXPECT_EQ(s.blocks, 0u);
  EXPECT_LE(s.cached_bytes, LargeHeap::kCacheBytes);
  EXPECT_GT(heap_->unmapped_bytes_total(), 0u);
  EXPECT_GT(heap_->release_cache(), 0u);
  EXPECT_EQ(heap_->stats().cached_bytes, 0u);
}

TEST_F(LargeHeapTest, CacheAndSlackShareOneBudget) {
  // Big cached mappings reused for small blocks leave slack; freeing other
  // big blocks then must not grow the cache past what the slack leaves.
  std::vector<void*> big;
  for (int i = 0; i < 12; ++i) big.push_back(heap_->allocate(16 << 20, 16, false, Origin::Malloc));
  for (void* p : big) heap_->deallocate(reinterpret_cast<uintptr_t>(p));
  std::vector<void*> small;
  for (int i = 0; i < 12; ++i) small.push_back(heap_->allocate(200 << 10, 16, false, Origin::Malloc));
  size_t slack = 0;
  for (void* p : small) {
    LargeBlock b;
    ASSERT_TRUE(heap_->lookup(reinterpret_cast<uintptr_t>(p), &b));
    slack += b.map_size - ((b.user - b.map_base + b.requested + 4095) & ~size_t{4095});
  }
  for (int i = 0; i < 12; ++i) heap_->deallocate(reinterpret_cast<uintptr_t>(heap_->allocate(16 << 20, 16, false, Origin::Malloc)));
  EXPECT_LE(heap_->stats().cached_bytes + slack, LargeHeap::kCacheBytes);
  for (void* p : small) heap_->deallocate(reinterpret_cast<uintptr_t>(p));
  EXPECT_LE(heap_->stats().cached_bytes, LargeHeap::kCacheBytes);
}

}  // namespace heapguard::test
