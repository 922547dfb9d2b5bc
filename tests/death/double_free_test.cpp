// SPDX-License-Identifier: Apache-2.0
// double-free: a block freed twice is reported, whether it still sits in the
// thread cache or the quarantine, went back to its slab, or was a large
// block; for C++ delete, and for aligned blocks. With a quarantine (every
// mode but fast) a large block freed again while it waits there is a
// double free too, found from the large-block table without touching its
// (inaccessible) memory.
#include <malloc.h>

#include <new>

#include "death_test_util.h"

namespace heapguard::test {

// Without a quarantine a freed large mapping leaves no trace to tell a
// double free from a wild pointer.
std::string large_freed_again_report() {
  return report_head("invalid-free") +
         "0x[0-9a-f]+ (is not a heap address: nothing is mapped there|was not allocated by heapguard: it points into)[^\n]*a large block already freed";
}

class DoubleFreeDeathTest : public DeathTestBase {};

TEST_P(DoubleFreeDeathTest, FreeTwice) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        void* p = opaque(malloc(n));
        free(p);
        free(opaque(p));
      },
      !is_large(n) || hardening_mode() ? double_free_report() : large_freed_again_report());
}

TEST_P(DoubleFreeDeathTest, ReallocOfAFreedBlock) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        void* p = opaque(malloc(n));
        free(p);
        (void)opaque(realloc(opaque(p), n * 2));
      },
      !is_large(n) || hardening_mode() ? double_free_report("realloc\\(\\)") : large_freed_again_report());
}

TEST_P(DoubleFreeDeathTest, FreeAgainAfterTheQuarantineWasDrained) {
  size_t n = GetParam();
  // A drained small block is free in its slab (or its slab was purged); a
  // drained large block's mapping is gone or cached, as in fast mode.
  EXPECT_DEATH(
      {
        void* p = opaque(malloc(n));
        free(p);
        drain_quarantine();
        free(opaque(p));
      },
      is_large(n) ? large_freed_again_report()
                  : report_head("double-free") +
                        "0x[0-9a-f]+ is (located 0 bytes inside of|the start of a block that was already freed)");
}

class SlabDoubleFreeDeathTest : public DeathTestBase {};

TEST_P(SlabDoubleFreeDeathTest, FreeTwiceAfterTheSlotWentBackToItsSlab) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        void* p = opaque(malloc(n));
        free(p);
        // Push enough frees of the same class through the cache to flush p,
        // and drain the quarantine so that p leaves it too.
        void* others[256];
        for (void*& o : others) o = opaque(malloc(n));
        for (void* o : others) free(o);
        drain_quarantine();
        free(opaque(p));
      },
      report_head("double-free") + "0x[0-9a-f]+ is (located 0 bytes inside of|the start of a "
      "block that was already freed \\(its memory has since been returned to the OS\\))");
}

TEST_P(SlabDoubleFreeDeathTest, UsableSizeOfAFreedBlock) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        void* p = opaque(malloc(n));
        free(p);
        (void)malloc_usable_size(opaque(p));
      },
      double_free_report("malloc_usable_size\\(\\)"));
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
      report_head("double-free", "0x[0-9a-f]*00"));
}

// The slot's slab returned to the OS between the two frees: malloc_trim(0)
// purges a slab once all its slots are free, which zeroes the header, and
// the slab's record of slots ever used must still tell a double free.
// 100000 bytes is small in every mode but a class nothing else in the test
// process allocates, so the block is alone in its slab and the slab is
// purged. The pointer is the slot start (fast, hardened) or inside the slot
// (debug and fuzz: after the left redzone; every mode: over-aligned).
std::string purged_double_free_report() {
  return report_head("double-free") + "0x[0-9a-f]+ is (the start of a block that was already freed \\(its memory has "
         "since been returned to the OS\\)|located 0 bytes inside of " + any_region() + "\nthe block is already free \\(or waiting in quarantine\\))\n" +
         "the pointer was passed to free\\(\\)";
}

TEST(PurgedSlabDoubleFreeDeathTest, FreeAgainAfterTheSlabWasReturnedToTheOS) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        void* p = opaque(malloc(100000));
        free(p);
        malloc_trim(0);
        free(opaque(p));
      },
      purged_double_free_report());
}

TEST(PurgedSlabDoubleFreeDeathTest, AlignedBlockFreedAgainAfterTheSlabWasReturnedToTheOS) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        void* p = opaque(aligned_alloc(4096, 100000));
        free(p);
        malloc_trim(0);
        free(opaque(p));
      },
      purged_double_free_report());
}

INSTANTIATE_TEST_SUITE_P(Sizes, DoubleFreeDeathTest, ::testing::ValuesIn(kDeathSizes));
INSTANTIATE_TEST_SUITE_P(Sizes, SlabDoubleFreeDeathTest, ::testing::ValuesIn(kSlabDeathSizes));

}  // namespace heapguard::test
