// SPDX-License-Identifier: Apache-2.0
// Shared helpers for death tests: sizes covering each allocator range, and a
// barrier against the compiler eliding malloc/free pairs.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>

namespace heapguard::test {

// Small (slab), a few KiB (slab, multi-page slots), and beyond the largest
// size class (its own mapping).
inline constexpr size_t kDeathSizes[] = {24, 5000, 300000};
// The sizes that live in slabs, for tests about slab slots and neighbours.
inline constexpr size_t kSlabDeathSizes[] = {24, 5000};

inline void* opaque(void* p) {
  asm volatile("" : "+r"(p));
  return p;
}

class DeathTestBase : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

}  // namespace heapguard::test
