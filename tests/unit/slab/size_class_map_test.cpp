// SPDX-License-Identifier: Apache-2.0
// SizeClassMap: every request size maps to the smallest class that holds it,
// waste stays within the documented bound, and the division magic is exact
// for every offset inside a slab.
#include "slab/size_class_map.h"

#include <gtest/gtest.h>

namespace heapguard::test {

TEST(SizeClassMap, EveryRequestGetsTheSmallestClassThatHoldsIt) {
  for (size_t n = 0; n <= kMaxSmallSize; ++n) {
    unsigned c = size_to_class(n);
    ASSERT_GE(c, 1u);
    ASSERT_LT(c, kNumClasses);
    ASSERT_GE(kSizeClasses[c].usable, n) << "size " << n;
    if (c > 1) ASSERT_LT(kSizeClasses[c - 1].usable, n) << "size " << n;
  }
}

TEST(SizeClassMap, InternalWasteIsBounded) {
  for (size_t n = 1; n <= kMaxSmallSize; ++n) {
    const SizeClass& sc = kSizeClasses[size_to_class(n)];
    size_t waste = sc.slot_size - n;
    if (n <= 264) ASSERT_LE(waste, 8u + 15u) << n;
    else ASSERT_LE(waste * 4, n + 16u * 4) << n;  // 25% plus the header round-up
  }
}

TEST(SizeClassMap, PowersOfTwoFitWithoutJumpingAClass) {
  for (size_t n = 256; n <= 131072; n *= 2) EXPECT_EQ(kSizeClasses[size_to_class(n)].slot_size, n + 16) << n;
}

TEST(SizeClassMap, SlotsAreSixteenAlignedAndFitTheirSlab) {
  for (unsigned c = 1; c < kNumClasses; ++c) {
    const SizeClass& sc = kSizeClasses[c];
    EXPECT_EQ(sc.slot_size % 16, 0u);
    EXPECT_EQ(sc.usable + kHeaderSize, sc.slot_size);
    EXPECT_GE(sc.slots, 1u);
    EXPECT_LE(sc.slots, kMaxSlotsPerSlab);
    EXPECT_LE(kSlabLeadIn + size_t(sc.slots) * sc.slot_size, size_t{1} << sc.slab_shift);
    EXPECT_GE(sc.cache_cap, 1u);
    EXPECT_LE(sc.cache_cap, kMaxCacheCap);
  }
}

TEST(SizeClassMap, DivisionMagicIsExactForEveryOffset) {
  for (unsigned c = 1; c < kNumClasses; ++c) {
    const SizeClass& sc = kSizeClasses[c];
    for (size_t off = 0; off < (size_t{1} << sc.slab_shift); ++off)
      ASSERT_EQ(slot_index(sc, off), off / sc.slot_size) << "class " << c << " offset " << off;
  }
}

}  // namespace heapguard::test
