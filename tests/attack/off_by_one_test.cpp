// SPDX-License-Identifier: Apache-2.0
// Attack 5, off-by-one into the next chunk (poison null byte, house of
// einherjar): a block whose request fills its slot exactly is overflowed by
// one byte, which in glibc lands in the next chunk's size field and leads to
// overlapping chunks once the neighbour is freed. In fast and hardened
// modes the byte lands in the neighbour's keyed header: freeing the
// neighbour is a heap-metadata-corruption. In debug and fuzz modes it lands
// in the block's own right redzone: heap-buffer-overflow when it is freed.
// Either way no overlapping block is ever handed out.
#include <unistd.h>

#include <cstring>

#include "death_test_util.h"

namespace heapguard::test {

// Requests that fill their slot exactly in the running mode: 8-byte header,
// redzones (debug, fuzz) and no slack.
size_t exact_fit(size_t slot) { return slot - 8 - 2 * small_redzone(); }

[[noreturn]] void fail_if_overlapping(const char* lo, const char* hi, size_t n) {
  drain_quarantine();
  for (int i = 0; i < 300; ++i) {
    char* q = opaque_chars(malloc(2 * n));
    if ((q <= lo + n && lo < q + 2 * n) || (q <= hi + n && hi < q + 2 * n)) {
      const char msg[] = "a new block overlaps a live one\n";
      (void)!write(2, msg, sizeof msg - 1);
      _exit(3);
    }
  }
  _exit(0);
}

std::string expected_report(size_t n) {
  if (redzone_mode()) return overflow_report(n, 0, true, when_passed_to("free\\(\\)"));
  return report_head("heap-metadata-corruption") + "the chunk header at 0x[0-9a-f]+ of the block at 0x[0-9a-f]+ failed";
}

class OffByOneTest : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_P(OffByOneTest, OneByteIntoTheNextSlotThenFreeTheNeighbour) {
  size_t n = exact_fit(GetParam());
  EXPECT_DEATH(
      {
        AdjacentPair pair = adjacent_pair(n);
        if (pair.hi - pair.lo != ptrdiff_t(GetParam())) _exit(4);
        memset(pair.lo, 0x41, n);
        flip(pair.lo + n, 0x01);
        // glibc: the neighbour's size lost PREV_INUSE; freeing it merges
        // backwards over lo. Then lo itself is freed.
        free(pair.hi);
        free(pair.lo);
        fail_if_overlapping(pair.lo, pair.hi, n);
      },
      expected_report(n));
}

// strcpy of an n-byte string: n characters and the NUL. In fast and
// hardened modes the byte after the block is the low byte of the
// neighbour's header; in debug and fuzz modes the first byte of the right
// redzone, a keyed canary byte (a NUL there is seen, unlike in hardened
// mode's slack, whose first byte is zero so string reads stop). Either is
// zero only by chance; then the NUL would change nothing, so the attacker
// picks a pair where it does.
TEST_P(OffByOneTest, NulByteIntoTheNextSlotThenReallocTheNeighbour) {
  size_t n = exact_fit(GetParam());
  EXPECT_DEATH(
      {
        AdjacentPair pair;
        for (int tries = 0; tries < 16; ++tries) {
          pair = adjacent_pair(n);
          if (pair.hi - pair.lo != ptrdiff_t(GetParam())) _exit(4);
          if (peek(pair.lo + n) != 0) break;
        }
        memset(pair.lo, 'A', n);
        memset(pair.lo + n, 0, 1);
        (void)opaque(realloc(pair.hi, 4 * n));
        free(pair.lo);
        fail_if_overlapping(pair.lo, pair.hi, n);
      },
      redzone_mode() ? overflow_report(n, 0, true, when_passed_to("free\\(\\)"))
                     : report_head("heap-metadata-corruption") + "the chunk header at 0x[0-9a-f]+ of the block at 0x[0-9a-f]+ failed");
}

// Slot sizes: the smallest that holds a redzoned block, and one near 1 KiB
// (above 1 KiB, class lookup in 128-byte steps leaves no request that fills
// its slot exactly).
INSTANTIATE_TEST_SUITE_P(Slots, OffByOneTest, ::testing::Values(size_t{64}, size_t{912}));

}  // namespace heapguard::test
