// SPDX-License-Identifier: Apache-2.0
// double-free: a block freed twice is reported, whether it still sits in the
// thread cache, went back to its slab, or was a large block; for C++
// delete, and for aligned blocks.
#include <new>

#include "death_test_util.h"

namespace heapguard::test {

class DoubleFreeDeathTest : public DeathTestBase {};

TEST_P(DoubleFreeDeathTest, FreeTwice) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        void* p = opaque(malloc(n));
        free(p);
        free(opaque(p));
      },
      n <= 131072 ? "==[0-9]+==ERROR: HeapGuard: double-free on address 0x[0-9a-f]+\n"
                    "0x[0-9a-f]+ is located 0 bytes inside of [0-9]+-byte region \\[0x[0-9a-f]+,0x[0-9a-f]+\\), "
                    "which is already free\nthe pointer was passed to free\\(\\)\nSUMMARY: HeapGuard: double-free"
                  // Freed large mappings leave no trace to tell a double free from a wild pointer.
                  : "ERROR: HeapGuard: invalid-free on address 0x[0-9a-f]+\n0x[0-9a-f]+ was not allocated by "
                    "heapguard, or is a large block that was already freed");
}

class SlabDoubleFreeDeathTest : public DeathTestBase {};

TEST_P(SlabDoubleFreeDeathTest, FreeTwiceAfterTheSlotWentBackToItsSlab) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        void* p = opaque(malloc(n));
        free(p);
        // Push enough frees of the same class through the cache to flush p.
        void* others[256];
        for (void*& o : others) o = opaque(malloc(n));
        for (void* o : others) free(o);
        free(opaque(p));
      },
      "ERROR: HeapGuard: double-free on address 0x[0-9a-f]+\n0x[0-9a-f]+ is (located 0 bytes inside of|the start of a "
      "block that was already freed \\(its memory has since been returned to the OS\\))");
}

TEST_P(SlabDoubleFreeDeathTest, ReallocOfAFreedBlock) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        void* p = opaque(malloc(n));
        free(p);
        (void)opaque(realloc(opaque(p), n * 2));
      },
      "ERROR: HeapGuard: double-free on address 0x[0-9a-f]+\n.*\nthe pointer was passed to realloc\\(\\)");
}

TEST(DoubleFreeCxxDeathTest, DeleteTwiceAndAlignedFreeTwice) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        int* p = static_cast<int*>(opaque(new int[10]));
        delete[] p;
        delete[] static_cast<int*>(opaque(p));
      },
      "ERROR: HeapGuard: double-free");
  EXPECT_DEATH(
      {
        void* p = opaque(aligned_alloc(256, 1000));
        free(p);
        free(opaque(p));
      },
      "ERROR: HeapGuard: double-free on address 0x[0-9a-f]*00\n");
}

INSTANTIATE_TEST_SUITE_P(Sizes, DoubleFreeDeathTest, ::testing::ValuesIn(kDeathSizes));
INSTANTIATE_TEST_SUITE_P(Sizes, SlabDoubleFreeDeathTest, ::testing::ValuesIn(kSlabDeathSizes));

}  // namespace heapguard::test
