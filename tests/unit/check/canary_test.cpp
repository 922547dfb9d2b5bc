// SPDX-License-Identifier: Apache-2.0
// CanaryCodec: fill writes exactly its range, verify finds every single-byte
// change at its exact address (any alignment, any length up to 128 KiB),
// zero_first makes the first byte 0, and the pattern depends on the key, the
// block and the address, and looks random.
#include "check/check.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace heapguard::test {
namespace {

constexpr uint64_t kKey = 0x243F6A8885A308D3ULL;
constexpr uint8_t kOutside = 0x5A;
constexpr size_t kMargin = 64;

constinit CanaryCodec g_constant_codec(kKey);

// A buffer with kMargin bytes of known filler on either side of the range
// under test; the range starts at `align` bytes past a 64-byte boundary.
class Arena {
 public:
  explicit Arena(size_t len, size_t align) : storage_(len + 2 * kMargin + 64 + align, kOutside) {
    uintptr_t base = reinterpret_cast<uintptr_t>(storage_.data());
    from_ = ((base + kMargin + 63) & ~uintptr_t{63}) + align;
    to_ = from_ + len;
  }
  uintptr_t from() const { return from_; }
  uintptr_t to() const { return to_; }
  uint8_t& at(uintptr_t a) { return *reinterpret_cast<uint8_t*>(a); }
  bool outside_untouched() {
    for (uintptr_t a = from_ - kMargin; a < from_; ++a)
      if (at(a) != kOutside) return false;
    for (uintptr_t a = to_; a < to_ + kMargin; ++a)
      if (at(a) != kOutside) return false;
    return true;
  }
  std::vector<uint8_t> bytes() const {
    return std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(from_), reinterpret_cast<const uint8_t*>(to_));
  }

 private:
  std::vector<uint8_t> storage_;
  uintptr_t from_;
  uintptr_t to_;
};

// The block the range belongs to: a plausible user address just before it.
uintptr_t block_of(const Arena& a) { return a.from() & ~uintptr_t{15}; }

TEST(Canary, FillsExactlyItsRangeAndVerifiesCleanForEveryLengthAndAlignment) {
  CanaryCodec codec(kKey);
  for (size_t align = 0; align < 16; ++align) {
    for (size_t len = 0; len <= 300; ++len) {
      for (bool zero_first : {false, true}) {
        Arena arena(len, align);
        codec.fill(block_of(arena), arena.from(), arena.to(), zero_first);
        ASSERT_TRUE(arena.outside_untouched()) << "len " << len << " align " << align;
        ASSERT_EQ(codec.first_damaged(block_of(arena), arena.from(), arena.to(), zero_first), 0u)
            << "len " << len << " align " << align << " zero_first " << zero_first;
        if (zero_first && len > 0) {
          ASSERT_EQ(arena.at(arena.from()), 0) << "len " << len;
        }
      }
    }
  }
}

TEST(Canary, TheSameRangeFilledWithOrWithoutZeroFirstDiffersOnlyInTheFirstByte) {
  CanaryCodec codec(kKey);
  Arena plain(40, 3), zeroed(40, 3);
  // Same block address for both so the patterns are comparable.
  uintptr_t block = 0x7f1234560010;
  codec.fill(block, plain.from(), plain.to(), false);
  codec.fill(block, zeroed.from(), zeroed.to(), true);
  // The pattern depends on the byte's address, so compare through verify.
  EXPECT_EQ(codec.first_damaged(block, plain.from(), plain.to(), true),
            plain.at(plain.from()) == 0 ? 0u : plain.from());
  EXPECT_EQ(codec.first_damaged(block, plain.from() + 1, plain.to(), false), 0u);
  EXPECT_EQ(codec.first_damaged(block, zeroed.from() + 1, zeroed.to(), false), 0u);
}

// Writes `delta` into the byte at every position in turn and expects that
// exact address back; with two changes, the lower one.
void expect_every_single_byte_change_found(const CanaryCodec& codec, size_t len, size_t align, bool zero_first,
                                           uint8_t delta) {
  Arena arena(len, align);
  uintptr_t block = block_of(arena);
  codec.fill(block, arena.from(), arena.to(), zero_first);
  for (uintptr_t a = arena.from(); a < arena.to(); ++a) {
    uint8_t saved = arena.at(a);
    arena.at(a) = uint8_t(saved ^ delta);
    ASSERT_EQ(codec.first_damaged(block, arena.from(), arena.to(), zero_first), a)
        << "len " << len << " align " << align << " zero_first " << zero_first << " offset " << (a - arena.from());
    if (a + 3 < arena.to()) {
      arena.at(a + 3) ^= 0x10;
      ASSERT_EQ(codec.first_damaged(block, arena.from(), arena.to(), zero_first), a);
      arena.at(a + 3) ^= 0x10;
    }
    arena.at(a) = saved;
  }
  ASSERT_EQ(codec.first_damaged(block, arena.from(), arena.to(), zero_first), 0u);
}

TEST(Canary, EverySingleByteChangeIsFoundAtItsExactAddressForShortRanges) {
  CanaryCodec codec(kKey);
  for (size_t align = 0; align < 8; ++align)
    for (size_t len = 0; len <= 64; ++len)
      for (bool zero_first : {false, true})
        for (uint8_t delta : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}})
          expect_every_single_byte_change_found(codec, len, align, zero_first, delta);
}

TEST(Canary, EverySingleByteChangeIsFoundAtItsExactAddressUpTo300Bytes) {
  CanaryCodec codec(kKey ^ 1);
  for (size_t align : {size_t{0}, size_t{5}, size_t{8}, size_t{13}})
    for (size_t len = 65; len <= 300; ++len) expect_every_single_byte_change_found(codec, len, align, true, 0x01);
}

TEST(Canary, BytesJustOutsideTheRangeDoNotCount) {
  CanaryCodec codec(kKey);
  for (size_t align = 0; align < 8; ++align) {
    for (size_t len = 1; len <= 20; ++len) {
      Arena arena(len, align);
      codec.fill(block_of(arena), arena.from(), arena.to(), false);
      for (size_t k = 1; k <= 8; ++k) {
        arena.at(arena.from() - k) ^= 0xff;
        arena.at(arena.to() + k - 1) ^= 0xff;
      }
      EXPECT_EQ(codec.first_damaged(block_of(arena), arena.from(), arena.to(), false), 0u);
    }
  }
}

TEST(Canary, HandlesTheLargestSlack) {
  CanaryCodec codec(kKey);
  constexpr size_t kLen = 128 * 1024;
  for (size_t align : {size_t{0}, size_t{7}}) {
    Arena arena(kLen, align);
    uintptr_t block = block_of(arena);
    codec.fill(block, arena.from(), arena.to(), true);
    ASSERT_TRUE(arena.outside_untouched());
    EXPECT_EQ(codec.first_damaged(block, arena.from(), arena.to(), true), 0u);
    for (uintptr_t a : {arena.from(), arena.from() + 1, arena.from() + kLen / 2 + 3, arena.to() - 1}) {
      arena.at(a) ^= 0x04;
      EXPECT_EQ(codec.first_damaged(block, arena.from(), arena.to(), true), a);
      arena.at(a) ^= 0x04;
    }
  }
}

TEST(Canary, AnEmptyRangeIsNeitherWrittenNorDamaged) {
  CanaryCodec codec(kKey);
  Arena arena(0, 3);
  codec.fill(block_of(arena), arena.from(), arena.to(), true);
  EXPECT_TRUE(arena.outside_untouched());
  EXPECT_EQ(codec.first_damaged(block_of(arena), arena.from(), arena.to(), true), 0u);
  // A reversed range is empty too.
  codec.fill(block_of(arena), arena.from() + 5, arena.from(), true);
  EXPECT_TRUE(arena.outside_untouched());
  EXPECT_EQ(codec.first_damaged(block_of(arena), arena.from() + 5, arena.from(), true), 0u);
}

size_t differing_bytes(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += a[i] != b[i] ? 1 : 0;
  return n;
}

TEST(Canary, ThePatternDependsOnTheKey) {
  CanaryCodec a(kKey), b(kKey + 1);
  Arena x(1000, 0);
  uintptr_t block = 0x7f0000100010;
  a.fill(block, x.from(), x.to(), false);
  std::vector<uint8_t> with_a = x.bytes();
  b.fill(block, x.from(), x.to(), false);
  std::vector<uint8_t> with_b = x.bytes();
  EXPECT_GT(differing_bytes(with_a, with_b), 950u);
  // The other key's pattern does not verify: the first byte almost surely
  // differs, and some byte of the first word does.
  uintptr_t bad = a.first_damaged(block, x.from(), x.to(), false);
  EXPECT_NE(bad, 0u);
  EXPECT_LT(bad, x.from() + 8);
  CanaryCodec c(kKey);
  c.set_key(kKey + 1);
  EXPECT_EQ(c.first_damaged(block, x.from(), x.to(), false), 0u);
}

TEST(Canary, ThePatternDependsOnTheBlockSoItCannotBeCopiedFromAnotherBlock) {
  CanaryCodec codec(kKey);
  Arena x(512, 0);
  uintptr_t block_a = 0x7f0000200010, block_b = 0x7f0000200410;
  codec.fill(block_a, x.from(), x.to(), true);
  std::vector<uint8_t> for_a = x.bytes();
  codec.fill(block_b, x.from(), x.to(), true);
  std::vector<uint8_t> for_b = x.bytes();
  EXPECT_GT(differing_bytes(for_a, for_b), 480u);
  // Block b's slack overwritten with block a's canary is reported.
  std::memcpy(reinterpret_cast<void*>(x.from()), for_a.data(), for_a.size());
  uintptr_t bad = codec.first_damaged(block_b, x.from(), x.to(), true);
  EXPECT_NE(bad, 0u);
  EXPECT_LT(bad, x.from() + 9);
  // Nearby blocks (one slot apart) get unrelated patterns too.
  for (uintptr_t other = block_a + 16; other < block_a + 16 * 64; other += 16) {
    codec.fill(other, x.from(), x.to(), false);
    EXPECT_GT(differing_bytes(for_a, x.bytes()), 480u) << "block +" << (other - block_a);
  }
}

TEST(Canary, ThePatternDependsOnTheAddressSoItCannotBeShifted) {
  CanaryCodec codec(kKey);
  Arena x(512, 0);
  uintptr_t block = 0x7f0000300010;
  codec.fill(block, x.from(), x.to(), false);
  std::vector<uint8_t> pattern = x.bytes();
  // The same bytes moved one word later, as an attacker who knows one
  // block's canary would try.
  std::memmove(reinterpret_cast<void*>(x.from() + 8), pattern.data(), pattern.size() - 8);
  EXPECT_NE(codec.first_damaged(block, x.from(), x.to(), false), 0u);
  // Bytes have 7 keyed bits: 504 pairs agree about 4 times by chance.
  size_t same_as_shifted = 0;
  for (size_t i = 0; i + 8 < pattern.size(); ++i) same_as_shifted += pattern[i] == pattern[i + 8] ? 1 : 0;
  EXPECT_LT(same_as_shifted, 20u);
}

TEST(Canary, PatternBytesLookRandom) {
  for (uint64_t key : {kKey, uint64_t{0}, uint64_t{1}, ~uint64_t{0}}) {
    CanaryCodec codec(key);
    constexpr size_t kLen = 8192;
    Arena x(kLen, 0);
    codec.fill(0x10, x.from(), x.to(), false);
    // Every byte has its top bit set (no text or NUL byte can match one);
    // the other 7 bits look uniform.
    size_t counts[128] = {};
    for (uint8_t b : x.bytes()) {
      ASSERT_GE(b, 0x80) << "key " << key;
      ++counts[b - 0x80];
    }
    size_t distinct = 0, most = 0;
    double chi2 = 0;
    const double expected = double(kLen) / 128;
    for (size_t c : counts) {
      distinct += c != 0 ? 1 : 0;
      most = c > most ? c : most;
      chi2 += (double(c) - expected) * (double(c) - expected) / expected;
    }
    EXPECT_EQ(distinct, 128u) << "key " << key;
    EXPECT_LT(most, 4 * size_t(expected)) << "key " << key;
    // 127 degrees of freedom: the 99.99th percentile is about 207.
    EXPECT_LT(chi2, 207.0) << "key " << key;
  }
}

TEST(Canary, LimitBoundsTheCheckedRange) {
  static_assert(CanaryCodec::limit(100, 1000, kBoundedCanaryBytes) == 100 + kBoundedCanaryBytes);
  static_assert(CanaryCodec::limit(100, 110, kBoundedCanaryBytes) == 110);
  static_assert(CanaryCodec::limit(100, 100 + kBoundedCanaryBytes, kBoundedCanaryBytes) == 100 + kBoundedCanaryBytes);
  static_assert(CanaryCodec::limit(100, 100, 64) == 100);
  static_assert(CanaryCodec::limit(100, 50, 64) == 50);
  // A bounded fill and a bounded check agree, and a write past the bound
  // goes unseen, which is what hardened mode trades for speed.
  Arena x(1000, 1);
  uintptr_t block = block_of(x);
  uintptr_t end = CanaryCodec::limit(x.from(), x.to(), kBoundedCanaryBytes);
  g_constant_codec.fill(block, x.from(), end, true);
  EXPECT_EQ(g_constant_codec.first_damaged(block, x.from(), end, true), 0u);
  x.at(end) ^= 1;
  EXPECT_EQ(g_constant_codec.first_damaged(block, x.from(), end, true), 0u);
  x.at(end - 1) ^= 1;
  EXPECT_EQ(g_constant_codec.first_damaged(block, x.from(), end, true), end - 1);
}

}  // namespace
}  // namespace heapguard::test
