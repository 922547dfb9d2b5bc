// SPDX-License-Identifier: Apache-2.0
// Conformance of malloc, free, calloc, realloc and reallocarray with glibc 2.36: return
// values, errno, and the contents a block keeps across realloc. Error paths matter as
// much as success: a NULL without ENOMEM, or a failed realloc that frees, breaks callers.
#include <gtest/gtest.h>
#include <malloc.h>
#include <stdlib.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "block_pattern.h"

namespace {

using heapguard::test::all_zero;
using heapguard::test::escape;
using heapguard::test::fill_pattern;
using heapguard::test::first_mismatch;
using heapguard::test::is_aligned;
using heapguard::test::opaque_ptr;
using heapguard::test::opaque_size;

constexpr size_t kPtrdiffMaxPlus1 = static_cast<size_t>(PTRDIFF_MAX) + 1;
// A size class boundary and a size well inside the mmap'd range.
constexpr size_t kSmallMax = 128 * 1024;

TEST(Malloc, ZeroSizeGivesUniqueNonNullBlocks) {
  std::vector<void*> blocks;
  std::set<void*> seen;
  for (int i = 0; i < 200; ++i) {
    void* p = malloc(opaque_size(0));
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(is_aligned(p, 16));
    EXPECT_TRUE(seen.insert(p).second) << "malloc(0) returned " << p << " twice";
    blocks.push_back(p);
  }
  for (void* p : blocks) free(p);
}

TEST(Malloc, SmallAndLargeBlocksAreWritableAndDistinct) {
  const size_t sizes[] = {1, 8, 15, 16, 17, 100, 1000, 4096, 65536, kSmallMax - 1, kSmallMax,
                          kSmallMax + 1, 1u << 20, 5u << 20};
  std::vector<std::pair<void*, size_t>> live;
  unsigned seed = 1;
  for (size_t n : sizes) {
    void* p = malloc(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_TRUE(is_aligned(p, 16)) << n;
    fill_pattern(p, n, seed++);
    live.emplace_back(p, n);
  }
  seed = 1;
  for (auto [p, n] : live) EXPECT_EQ(first_mismatch(p, n, seed++), n) << "size " << n;
  for (auto [p, n] : live) free(p);
}

TEST(Malloc, ImpossibleSizesFailWithEnomem) {
  const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4096, SIZE_MAX - 16, kPtrdiffMaxPlus1,
                          static_cast<size_t>(PTRDIFF_MAX)};
  for (size_t n : sizes) {
    errno = 0;
    void* p = malloc(opaque_size(n));
    EXPECT_EQ(p, nullptr) << n;
    EXPECT_EQ(errno, ENOMEM) << n;
  }
}

TEST(Free, NullIsANoOp) {
  errno = 1234;
  free(nullptr);
  EXPECT_EQ(errno, 1234);
}

// glibc keeps errno across free (since 2.33), and callers rely on it in error paths.
TEST(Free, DoesNotChangeErrno) {
  for (size_t n : {size_t{0}, size_t{24}, size_t{5000}, kSmallMax + 1, size_t{8u << 20}}) {
    void* p = malloc(n);
    ASSERT_NE(p, nullptr);
    errno = 4321;
    free(p);
    EXPECT_EQ(errno, 4321) << "free of a " << n << "-byte block";
  }
}

TEST(Calloc, MemoryIsZeroed) {
  for (size_t n : {size_t{1}, size_t{7}, size_t{64}, size_t{4000}, kSmallMax, kSmallMax + 16,
                   size_t{3u << 20}}) {
    auto* p = static_cast<unsigned char*>(calloc(n, 1));
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(all_zero(p, n)) << n;
    free(p);
  }
}

// Fast mode leaves freed memory untouched and large blocks come back from a reuse
// cache, so calloc must clear dirty memory itself in every size range.
TEST(Calloc, ReusedDirtyBlocksAreZeroed) {
  const size_t sizes[] = {16, 48, 256, 1024, 8192, kSmallMax, kSmallMax + 4096, 1u << 20};
  for (size_t n : sizes) {
    for (int round = 0; round < 40; ++round) {
      auto* dirty = static_cast<unsigned char*>(malloc(n));
      ASSERT_NE(dirty, nullptr);
      std::memset(dirty, 0xA5, malloc_usable_size(dirty));
      free(dirty);
      auto* p = static_cast<unsigned char*>(calloc(1, n));
      ASSERT_NE(p, nullptr);
      ASSERT_TRUE(all_zero(p, n)) << "size " << n << " round " << round;
      std::memset(p, 0x5A, n);
      free(p);
    }
  }
}

TEST(Calloc, ElementCountTimesSizeIsUsed) {
  auto* p = static_cast<uint32_t*>(calloc(1000, sizeof(uint32_t)));
  ASSERT_NE(p, nullptr);
  EXPECT_GE(malloc_usable_size(p), 1000 * sizeof(uint32_t));
  EXPECT_TRUE(all_zero(p, 1000 * sizeof(uint32_t)));
  free(p);
}

TEST(Calloc, OverflowFailsWithEnomem) {
  const std::pair<size_t, size_t> cases[] = {{SIZE_MAX / 2, 3}, {3, SIZE_MAX / 2},
                                            {SIZE_MAX, 2},     {1u << 31, 1ull << 33},
                                            {1, SIZE_MAX},     {SIZE_MAX, 1}};
  for (auto [n, size] : cases) {
    errno = 0;
    void* p = calloc(opaque_size(n), opaque_size(size));
    EXPECT_EQ(p, nullptr) << n << " x " << size;
    EXPECT_EQ(errno, ENOMEM) << n << " x " << size;
  }
}

TEST(Calloc, ZeroElementsOrZeroSizeGiveAUniqueBlock) {
  void* a = calloc(0, 16);
  void* b = calloc(16, 0);
  void* c = calloc(0, opaque_size(SIZE_MAX));
  EXPECT_NE(a, nullptr);
  EXPECT_NE(b, nullptr);
  EXPECT_NE(c, nullptr);
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  free(a);
  free(b);
  free(c);
}

TEST(Realloc, NullPointerActsAsMalloc) {
  void* p = realloc(nullptr, 100);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(malloc_usable_size(p), 100u);
  fill_pattern(p, 100, 3);
  EXPECT_EQ(first_mismatch(p, 100, 3), 100u);
  free(p);
  // realloc(NULL, 0) is malloc(0) in glibc: a unique non-NULL block.
  void* z = realloc(nullptr, 0);
  EXPECT_NE(z, nullptr);
  free(z);
}

TEST(Realloc, ZeroSizeFreesAndReturnsNull) {
  for (size_t n : {size_t{10}, size_t{1000}, kSmallMax + 1}) {
    void* p = malloc(n);
    ASSERT_NE(p, nullptr);
    errno = 0;
    EXPECT_EQ(realloc(p, 0), nullptr) << n;
    EXPECT_EQ(errno, 0) << n;
  }
}

TEST(Realloc, ShrinkKeepsContents) {
  const std::pair<size_t, size_t> cases[] = {
      {1000, 10}, {4096, 4095}, {kSmallMax + 1, 100}, {4u << 20, kSmallMax + 1}, {4u << 20, 1u << 20},
      {64, 63},   {32, 0 + 1}};
  unsigned seed = 11;
  for (auto [from, to] : cases) {
    void* p = malloc(from);
    ASSERT_NE(p, nullptr);
    fill_pattern(p, from, seed);
    void* q = realloc(p, to);
    ASSERT_NE(q, nullptr) << from << " -> " << to;
    EXPECT_TRUE(is_aligned(q, 16));
    EXPECT_GE(malloc_usable_size(q), to);
    EXPECT_EQ(first_mismatch(q, to, seed), to) << from << " -> " << to;
    free(q);
    ++seed;
  }
}

TEST(Realloc, GrowKeepsContentsAcrossSizeRanges) {
  // small -> small, small -> large, large -> larger, and a long chain of steps.
  const std::pair<size_t, size_t> cases[] = {{10, 100},
                                            {100, 4000},
                                            {4000, kSmallMax},
                                            {100, kSmallMax + 1},
                                            {kSmallMax - 16, 300 * 1024},
                                            {kSmallMax + 1, 2u << 20},
                                            {2u << 20, 9u << 20},
                                            {1u << 20, (1u << 20) + 1}};
  unsigned seed = 40;
  for (auto [from, to] : cases) {
    void* p = malloc(from);
    ASSERT_NE(p, nullptr);
    fill_pattern(p, from, seed);
    void* q = realloc(p, to);
    ASSERT_NE(q, nullptr) << from << " -> " << to;
    EXPECT_TRUE(is_aligned(q, 16));
    EXPECT_GE(malloc_usable_size(q), to);
    EXPECT_EQ(first_mismatch(q, from, seed), from) << from << " -> " << to;
    std::memset(static_cast<char*>(q) + from, 0x77, to - from);  // the new tail is writable
    free(q);
    ++seed;
  }
  size_t size = 1;
  void* p = malloc(size);
  ASSERT_NE(p, nullptr);
  fill_pattern(p, size, 99);
  while (size < (6u << 20)) {
    const size_t next = size + size / 3 + 7;
    void* q = realloc(p, next);
    ASSERT_NE(q, nullptr) << size << " -> " << next;
    ASSERT_EQ(first_mismatch(q, size, 99), size) << size << " -> " << next;
    fill_pattern(q, next, 99);
    p = q;
    size = next;
  }
  free(p);
}

TEST(Realloc, SameSizeKeepsContents) {
  for (size_t n : {size_t{24}, size_t{3000}, kSmallMax + 100}) {
    void* p = malloc(n);
    ASSERT_NE(p, nullptr);
    fill_pattern(p, n, 5);
    void* q = realloc(p, n);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(first_mismatch(q, n, 5), n);
    free(q);
  }
}

TEST(Realloc, FailureReturnsNullSetsEnomemAndKeepsBlock) {
  for (size_t n : {size_t{50}, size_t{5000}, kSmallMax + 1}) {
    void* p = malloc(n);
    ASSERT_NE(p, nullptr);
    fill_pattern(p, n, 21);
    for (size_t huge : {SIZE_MAX, SIZE_MAX - 4096, kPtrdiffMaxPlus1}) {
      errno = 0;
      EXPECT_EQ(realloc(opaque_ptr(p), opaque_size(huge)), nullptr) << n << " -> " << huge;
      EXPECT_EQ(errno, ENOMEM);
      EXPECT_EQ(first_mismatch(p, n, 21), n) << "block changed by a failed realloc";
    }
    // Still a live, usable block: it can grow, and the result can be freed.
    void* q = realloc(p, 2 * n);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(first_mismatch(q, n, 21), n);
    free(q);
  }
  errno = 0;
  EXPECT_EQ(realloc(nullptr, opaque_size(SIZE_MAX)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(Reallocarray, MultipliesAndKeepsContents) {
  auto* p = static_cast<uint64_t*>(reallocarray(nullptr, 10, sizeof(uint64_t)));
  ASSERT_NE(p, nullptr);
  for (uint64_t i = 0; i < 10; ++i) p[i] = i * 977;
  p = static_cast<uint64_t*>(reallocarray(p, 50000, sizeof(uint64_t)));
  ASSERT_NE(p, nullptr);
  EXPECT_GE(malloc_usable_size(p), 50000 * sizeof(uint64_t));
  for (uint64_t i = 0; i < 10; ++i) EXPECT_EQ(p[i], i * 977);
  p[49999] = 1;
  free(p);
}

TEST(Reallocarray, OverflowFailsWithEnomemAndKeepsBlock) {
  void* p = malloc(64);
  ASSERT_NE(p, nullptr);
  fill_pattern(p, 64, 8);
  const std::pair<size_t, size_t> cases[] = {{SIZE_MAX / 2, 3}, {3, SIZE_MAX / 2}, {SIZE_MAX, SIZE_MAX}};
  for (auto [n, size] : cases) {
    errno = 0;
    EXPECT_EQ(reallocarray(opaque_ptr(p), opaque_size(n), opaque_size(size)), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    EXPECT_EQ(first_mismatch(p, 64, 8), 64u);
  }
  errno = 0;
  EXPECT_EQ(reallocarray(nullptr, opaque_size(SIZE_MAX / 2), 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  void* q = reallocarray(p, 2, 64);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(first_mismatch(q, 64, 8), 64u);
  free(q);
}

TEST(Reallocarray, ZeroCountFreesLikeReallocZero) {
  void* p = malloc(64);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reallocarray(p, 0, 5), nullptr);
}

}  // namespace
