// SPDX-License-Identifier: Apache-2.0
// Poisoning: fill writes exactly its range, verify finds every single-byte
// change at its exact address for any alignment and length, and the bounded
// check sees the two ends of a block and nothing in between.
#include "check/check.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace heapguard::test {
namespace {

constexpr uint8_t kOutside = 0x5A;
constexpr size_t kMargin = 64;

// n bytes starting `align` bytes past a 64-byte boundary, with kMargin bytes
// of known filler on either side.
class Arena {
 public:
  Arena(size_t n, size_t align) : storage_(n + 2 * kMargin + 64 + align, kOutside) {
    uintptr_t base = reinterpret_cast<uintptr_t>(storage_.data());
    p_ = ((base + kMargin + 63) & ~uintptr_t{63}) + align;
    n_ = n;
  }
  uintptr_t p() const { return p_; }
  size_t n() const { return n_; }
  uint8_t& at(uintptr_t a) { return *reinterpret_cast<uint8_t*>(a); }
  bool outside_untouched() {
    for (uintptr_t a = p_ - kMargin; a < p_; ++a)
      if (at(a) != kOutside) return false;
    for (uintptr_t a = p_ + n_; a < p_ + n_ + kMargin; ++a)
      if (at(a) != kOutside) return false;
    return true;
  }

 private:
  std::vector<uint8_t> storage_;
  uintptr_t p_;
  size_t n_;
};

TEST(Poison, TheFillBytesAreTheDocumentedOnes) {
  EXPECT_EQ(kAllocFill, 0xBE);
  EXPECT_EQ(kFreeFill, 0xFD);
  EXPECT_EQ(kBoundedCheckBytes, 16u);
}

TEST(Poison, FillsExactlyItsRangeAndVerifiesClean) {
  for (uint8_t byte : {kAllocFill, kFreeFill, uint8_t{0}}) {
    for (size_t align = 0; align < 16; ++align) {
      for (size_t n = 0; n <= 300; ++n) {
        Arena arena(n, align);
        poison_fill(arena.p(), n, byte);
        ASSERT_TRUE(arena.outside_untouched()) << "n " << n << " align " << align;
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(arena.at(arena.p() + i), byte);
        ASSERT_EQ(poison_first_damaged(arena.p(), n, byte), 0u) << "n " << n << " align " << align;
        ASSERT_EQ(poison_first_damaged_bounded(arena.p(), n, byte, kBoundedCheckBytes), 0u);
      }
    }
  }
}

void expect_every_single_byte_change_found(size_t n, size_t align, uint8_t byte, uint8_t delta) {
  Arena arena(n, align);
  poison_fill(arena.p(), n, byte);
  for (uintptr_t a = arena.p(); a < arena.p() + n; ++a) {
    arena.at(a) ^= delta;
    ASSERT_EQ(poison_first_damaged(arena.p(), n, byte), a)
        << "n " << n << " align " << align << " offset " << (a - arena.p());
    if (a + 5 < arena.p() + n) {
      arena.at(a + 5) ^= 0x20;
      ASSERT_EQ(poison_first_damaged(arena.p(), n, byte), a);
      arena.at(a + 5) ^= 0x20;
    }
    arena.at(a) ^= delta;
  }
  ASSERT_EQ(poison_first_damaged(arena.p(), n, byte), 0u);
}

TEST(Poison, EverySingleByteChangeIsFoundAtItsExactAddress) {
  for (size_t align = 0; align < 8; ++align)
    for (size_t n = 0; n <= 80; ++n)
      for (uint8_t delta : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}})
        expect_every_single_byte_change_found(n, align, kFreeFill, delta);
  for (size_t align : {size_t{0}, size_t{3}, size_t{8}})
    for (size_t n = 81; n <= 300; ++n) expect_every_single_byte_change_found(n, align, 0, 0x01);
}

TEST(Poison, BytesJustOutsideTheRangeDoNotCount) {
  for (size_t align = 0; align < 8; ++align) {
    for (size_t n = 1; n <= 20; ++n) {
      Arena arena(n, align);
      poison_fill(arena.p(), n, kFreeFill);
      // The filler around the range is already not kFreeFill.
      EXPECT_EQ(poison_first_damaged(arena.p(), n, kFreeFill), 0u);
    }
  }
}

TEST(Poison, HandlesBigBlocks) {
  constexpr size_t kN = 1 << 20;
  Arena arena(kN, 1);
  poison_fill(arena.p(), kN, kFreeFill);
  EXPECT_TRUE(arena.outside_untouched());
  EXPECT_EQ(poison_first_damaged(arena.p(), kN, kFreeFill), 0u);
  for (uintptr_t a : {arena.p(), arena.p() + 4097, arena.p() + kN / 2 + 31, arena.p() + kN - 1}) {
    arena.at(a) = 0;
    EXPECT_EQ(poison_first_damaged(arena.p(), kN, kFreeFill), a);
    arena.at(a) = kFreeFill;
  }
}

TEST(Poison, TheBoundedCheckSeesBothEndsAndSkipsTheMiddle) {
  constexpr size_t kBound = kBoundedCheckBytes;
  for (size_t n : {size_t{2 * kBound + 1}, size_t{1000}, size_t{4096}, size_t{65537}}) {
    Arena arena(n, 3);
    poison_fill(arena.p(), n, kFreeFill);
    for (size_t off = 0; off < n; ++off) {
      uintptr_t a = arena.p() + off;
      arena.at(a) ^= 1;
      bool covered = off < kBound || off >= n - kBound;
      ASSERT_EQ(poison_first_damaged_bounded(arena.p(), n, kFreeFill, kBound), covered ? a : 0u)
          << "n " << n << " offset " << off;
      ASSERT_EQ(poison_first_damaged(arena.p(), n, kFreeFill), a);
      arena.at(a) ^= 1;
    }
  }
}

TEST(Poison, TheBoundedCheckCoversEverythingUpToTwiceTheBound) {
  for (size_t n = 0; n <= 2 * kBoundedCheckBytes; ++n) {
    Arena arena(n, 5);
    poison_fill(arena.p(), n, kFreeFill);
    for (uintptr_t a = arena.p(); a < arena.p() + n; ++a) {
      arena.at(a) ^= 0x40;
      ASSERT_EQ(poison_first_damaged_bounded(arena.p(), n, kFreeFill, kBoundedCheckBytes), a) << "n " << n;
      arena.at(a) ^= 0x40;
    }
  }
  // A bound too large to double is "check everything", not an overflow.
  Arena arena(100, 0);
  poison_fill(arena.p(), 100, 0);
  arena.at(arena.p() + 50) = 1;
  EXPECT_EQ(poison_first_damaged_bounded(arena.p(), 100, 0, SIZE_MAX), arena.p() + 50);
}

TEST(Poison, TheBoundedCheckReportsTheLowerEndFirst) {
  Arena arena(1000, 0);
  poison_fill(arena.p(), 1000, kFreeFill);
  arena.at(arena.p() + 990) = 0;
  arena.at(arena.p() + 10) = 0;
  EXPECT_EQ(poison_first_damaged_bounded(arena.p(), 1000, kFreeFill, kBoundedCheckBytes), arena.p() + 10);
  arena.at(arena.p() + 10) = kFreeFill;
  EXPECT_EQ(poison_first_damaged_bounded(arena.p(), 1000, kFreeFill, kBoundedCheckBytes), arena.p() + 990);
}

}  // namespace
}  // namespace heapguard::test
