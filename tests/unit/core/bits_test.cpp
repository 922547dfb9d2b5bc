// SPDX-License-Identifier: Apache-2.0
// Checked arithmetic refuses to wrap; bit helpers agree with brute force.
#include "core/bits.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace heapguard::test {

TEST(Bits, CheckedArithmeticRefusesToWrap) {
  size_t out;
  EXPECT_FALSE(checked_mul(SIZE_MAX / 2, 3, &out));
  EXPECT_TRUE(checked_mul(SIZE_MAX / 3, 3, &out));
  EXPECT_FALSE(checked_add(SIZE_MAX, 1, &out));
  EXPECT_FALSE(checked_align_up(SIZE_MAX - 10, 4096, &out));
  EXPECT_TRUE(checked_align_up(4097, 4096, &out));
  EXPECT_EQ(out, 8192u);
}

TEST(Bits, PowerOfTwoHelpers) {
  for (size_t x = 1; x < 70000; ++x) {
    size_t p = 1;
    while (p < x) p <<= 1;
    ASSERT_EQ(next_pow2(x), p) << x;
    ASSERT_EQ(is_pow2(x), p == x) << x;
  }
  EXPECT_FALSE(is_pow2(0));
  EXPECT_EQ(align_up(17, 16), 32u);
  EXPECT_EQ(align_down(31, 16), 16u);
}

}  // namespace heapguard::test
