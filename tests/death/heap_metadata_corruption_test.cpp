// SPDX-License-Identifier: Apache-2.0
// heap-metadata-corruption: a chunk header overwritten by an underflow (or by
// an overflow of the block before) fails its keyed checksum on free, for
// small and large blocks, and on realloc.
#include <cstring>

#include "death_test_util.h"

namespace heapguard::test {

class HeapMetadataCorruptionDeathTest : public DeathTestBase {};

TEST_P(HeapMetadataCorruptionDeathTest, UnderflowIntoTheHeader) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = static_cast<char*>(opaque(malloc(n)));
        p[-2] ^= 0x40;
        free(opaque(p));
      },
      "==[0-9]+==ERROR: HeapGuard: heap-metadata-corruption on address 0x[0-9a-f]+\nthe chunk header at 0x[0-9a-f]+ "
      "of the block at 0x[0-9a-f]+ failed its integrity check.*\nSUMMARY: HeapGuard: heap-metadata-corruption");
}

class SlabNeighbourCorruptionDeathTest : public DeathTestBase {};

TEST_P(SlabNeighbourCorruptionDeathTest, OverflowFromThePreviousBlockOnRealloc) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        // Consecutive same-class blocks are adjacent slots: writing past the
        // usable end of one lands in the next one's header.
        char* a = static_cast<char*>(opaque(malloc(n)));
        char* b = static_cast<char*>(opaque(malloc(n)));
        char* lo = a < b ? a : b;
        char* hi = a < b ? b : a;
        memset(hi - 8, 0x41, 8);
        (void)lo;
        (void)opaque(realloc(hi, n * 3));
      },
      "ERROR: HeapGuard: heap-metadata-corruption");
}

INSTANTIATE_TEST_SUITE_P(Sizes, HeapMetadataCorruptionDeathTest, ::testing::ValuesIn(kDeathSizes));
INSTANTIATE_TEST_SUITE_P(Sizes, SlabNeighbourCorruptionDeathTest, ::testing::ValuesIn(kSlabDeathSizes));

}  // namespace heapguard::test
