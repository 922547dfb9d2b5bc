// SPDX-License-Identifier: Apache-2.0
// MetadataArena: aligned, zeroed, non-overlapping memory, across chunk
// boundaries and for requests bigger than a chunk.
#include "ds/metadata_arena.h"

#include <gtest/gtest.h>

#include <cstring>

namespace heapguard::test {

TEST(MetadataArena, AlignedZeroedAndDisjoint) {
  auto* arena = new MetadataArena();
  char* prev_end = nullptr;
  for (int i = 0; i < 5000; ++i) {
    size_t size = 16 + size_t(i % 7) * 1000;
    auto* p = static_cast<char*>(arena->allocate(size, 64));
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
    for (size_t k = 0; k < size; k += 256) ASSERT_EQ(p[k], 0);
    memset(p, 0xff, size);
    if (prev_end != nullptr && p > prev_end - size) ASSERT_GE(p, prev_end);
    prev_end = p + size;
  }
  auto* big = static_cast<char*>(arena->allocate(3 << 20, 4096));
  ASSERT_NE(big, nullptr);
  big[(3 << 20) - 1] = 1;
  EXPECT_GE(arena->mapped_bytes(), size_t{3} << 20);
  delete arena;
}

}  // namespace heapguard::test
