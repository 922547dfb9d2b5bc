// SPDX-License-Identifier: Apache-2.0
// heap-metadata-corruption: a chunk header overwritten by an underflow (or by
// an overflow of the block before) fails its keyed checksum on free, for
// small and large blocks, on realloc and on malloc_usable_size. In debug and
// fuzz modes the header of a small block sits in front of its left redzone;
// these tests corrupt the header itself (a write into the redzone is a
// heap-buffer-overflow, tests/death/redzone_test.cpp).
#include <malloc.h>

#include <cstring>

#include "death_test_util.h"

namespace heapguard::test {

std::string corrupt_header_report() {
  return report_head("heap-metadata-corruption") +
         "the chunk header at 0x[0-9a-f]+ of the block at 0x[0-9a-f]+ failed its integrity check.*\nSUMMARY: "
         "HeapGuard: heap-metadata-corruption";
}

// The header of a block of n bytes: large blocks have no redzones.
char* header_of(void* user, size_t n) { return is_large(n) ? static_cast<char*>(user) - 8 : small_header(user); }

class HeapMetadataCorruptionDeathTest : public DeathTestBase {};

TEST_P(HeapMetadataCorruptionDeathTest, UnderflowIntoTheHeader) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        flip(header_of(p, n) + 6, 0x40);
        free(opaque(p));
      },
      corrupt_header_report());
}

TEST_P(HeapMetadataCorruptionDeathTest, CorruptHeaderOnReallocAndUsableSize) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        flip(header_of(p, n) + 2);
        (void)opaque(realloc(p, n + 1));
      },
      report_head("heap-metadata-corruption"));
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        flip(header_of(p, n) + 2);
        (void)malloc_usable_size(p);
      },
      report_head("heap-metadata-corruption"));
}

class SlabNeighbourCorruptionDeathTest : public DeathTestBase {};

TEST_P(SlabNeighbourCorruptionDeathTest, OverflowFromThePreviousBlockOnRealloc) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        // An overflow running from the block below up to and over its
        // neighbour's header (and no further: the neighbour's left redzone,
        // if any, stays intact).
        AdjacentPair pair = adjacent_pair(n);
        char* end_of_header = pair.hi - small_redzone();
        memset(pair.lo + n, 0x41, size_t(end_of_header - (pair.lo + n)));
        (void)opaque(realloc(pair.hi, n * 3));
      },
      report_head("heap-metadata-corruption"));
}

INSTANTIATE_TEST_SUITE_P(Sizes, HeapMetadataCorruptionDeathTest, ::testing::ValuesIn(kDeathSizes));
INSTANTIATE_TEST_SUITE_P(Sizes, SlabNeighbourCorruptionDeathTest, ::testing::ValuesIn(kSlabDeathSizes));

}  // namespace heapguard::test
