// SPDX-License-Identifier: Apache-2.0
// Whole-block poisoning (debug, fuzz): fresh blocks read as the allocation
// pattern, freed blocks as the free pattern, and a write anywhere in a
// freed block, not only near its ends, is a heap-use-after-free.
#include <cstring>

#include "death_test_util.h"

namespace heapguard::test {

constexpr unsigned char kAllocFill = 0xBE;
constexpr unsigned char kFreeFill = 0xFD;

size_t count_not(const char* p, size_t n, unsigned char byte) {
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad += peek(p + i) != byte;
  return bad;
}

class FullUseAfterFreeDeathTest : public DeathTestBase {};

TEST_P(FullUseAfterFreeDeathTest, WriteInTheMiddleOfAFreedBlock) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        free(p);
        poke(p + n / 2, 0x41);
        drain_quarantine();
      },
      use_after_free_report(n, n / 2));
}

// The whole block is checked on the other path too, when the slot is
// handed out again (no quarantine: the next allocation of its size).
TEST_P(FullUseAfterFreeDeathTest, WriteInTheMiddleFoundWhenTheSlotIsHandedOutAgain) {
  size_t n = GetParam();
  ScopedOptions options("quarantine_size_mb=0");
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        free(p);
        poke(p + n / 2, 0x41);
        hand_out_again(n);
        exit(0);
      },
      use_after_free_report(n, n / 2, kFoundHandedOutAgain));
}

TEST_P(FullUseAfterFreeDeathTest, WritingTheFreePatternItselfGoesUnseenButAnyOtherByteIsCaught) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        free(p);
        poke(p + n / 3, kFreeFill);
        poke(p + n / 2, kFreeFill ^ 1);
        drain_quarantine();
      },
      use_after_free_report(n, n / 2));
}

TEST_P(FullUseAfterFreeDeathTest, FreshAndFreedBlocksCarryTheirPatterns) {
  size_t n = GetParam();
  char* p = opaque_chars(malloc(n));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(count_not(p, n, kAllocFill), 0u) << "a fresh block of " << n << " bytes";
  memset(p, 0x41, n);
  free(p);
  EXPECT_EQ(count_not(p, n, kFreeFill), 0u) << "a freed block of " << n << " bytes";
  drain_quarantine();
  char* c = opaque_chars(calloc(n, 1));
  EXPECT_EQ(count_not(c, n, 0), 0u) << "calloc is zero, not the pattern";
  free(c);
}

INSTANTIATE_TEST_SUITE_P(Sizes, FullUseAfterFreeDeathTest, ::testing::Values(size_t{20}, size_t{4999}, size_t{100000}));

}  // namespace heapguard::test
