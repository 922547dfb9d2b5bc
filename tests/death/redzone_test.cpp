// SPDX-License-Identifier: Apache-2.0
// Redzones (debug, fuzz): every small block has a 16-byte keyed redzone on
// its left and at least 16 bytes of canary on its right, so a 1-byte
// underflow or overflow is heap-buffer-overflow even when the requested size
// fills its size class exactly (no slack to guard). 24, 872, 5096 and
// 131048 are such blocks: 8-byte header + 16 + n + 16 is exactly a slot
// (64, 912, 5136 and the largest class, 131088).
#include <malloc.h>

#include <cstring>

#include "death_test_util.h"

namespace heapguard::test {

inline constexpr size_t kExactFitSizes[] = {24, 872, 5096, 131048};

class RedzoneDeathTest : public DeathTestBase {};

TEST_P(RedzoneDeathTest, OneByteOverflow) {
  size_t n = GetParam();
  EXPECT_DEATH(overflow_one_byte_then_free(n), overflow_report(n, 0, true, when_passed_to("free\\(\\)")));
}

TEST_P(RedzoneDeathTest, OverflowIntoTheLastRedzoneByte) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        flip(p + n + 15);
        free(p);
      },
      overflow_report(n, 15, true, when_passed_to("free\\(\\)")));
}

TEST_P(RedzoneDeathTest, OneByteUnderflow) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        flip(p - 1);
        free(p);
      },
      overflow_report(n, 1, false, when_passed_to("free\\(\\)")));
}

TEST_P(RedzoneDeathTest, UnderflowToTheStartOfTheLeftRedzone) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        flip(p - 16);
        free(p);
      },
      overflow_report(n, 16, false, when_passed_to("free\\(\\)")));
}

TEST_P(RedzoneDeathTest, UnderflowFoundByRealloc) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        flip(p - 4);
        (void)opaque(realloc(p, n + 1000));
      },
      overflow_report(n, 4, false, when_passed_to("realloc\\(\\)")));
}

TEST_P(RedzoneDeathTest, OverflowOfACallocBlock) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(calloc(n, 1));
        flip(p + n);
        free(p);
      },
      overflow_report(n, 0, true, when_passed_to("free\\(\\)")));
}

// The redzones come on top of the class choice: n is what the program may
// use, and all of it is usable.
TEST_P(RedzoneDeathTest, TheBlockItselfIsFine) {
  size_t n = GetParam();
  EXPECT_EXIT(
      {
        char* p = opaque_chars(malloc(n));
        if (malloc_usable_size(p) != n) exit(2);
        memset(p, 0x41, n);
        p = opaque_chars(realloc(p, n));
        memset(p, 0x42, n);
        free(p);
        drain_quarantine();
        exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

INSTANTIATE_TEST_SUITE_P(Sizes, RedzoneDeathTest, ::testing::ValuesIn(kExactFitSizes));

// Over-aligned blocks get a left redzone too.
TEST(AlignedRedzoneDeathTest, UnderflowOfAnAlignedBlock) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        char* p = opaque_chars(aligned_alloc(64, 192));
        flip(p - 1);
        free(p);
      },
      overflow_report(192, 1, false, when_passed_to("free\\(\\)")));
  EXPECT_DEATH(
      {
        char* p = opaque_chars(aligned_alloc(64, 192));
        flip(p + 192);
        free(p);
      },
      overflow_report(192, 0, true, when_passed_to("free\\(\\)")));
}

}  // namespace heapguard::test
