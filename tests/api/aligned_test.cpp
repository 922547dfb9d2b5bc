// SPDX-License-Identifier: Apache-2.0
// Aligned allocation (aligned_alloc, posix_memalign, memalign, valloc, pvalloc) with
// glibc 2.36 semantics, and a size sweep that writes every usable byte of each block
// so that a usable size larger than the real slot shows up as a corrupted neighbour.
#include <gtest/gtest.h>
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "block_pattern.h"

namespace {

using heapguard::test::fill_pattern;
using heapguard::test::first_mismatch;
using heapguard::test::is_aligned;
using heapguard::test::opaque_size;

constexpr size_t kMaxAlignment = size_t{1} << 21;
constexpr size_t kHalfAddressSpace = SIZE_MAX / 2 + 1;  // largest alignment glibc accepts

size_t page_size() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

size_t next_power_of_two(size_t n) {
  size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// Allocates through fn for every power-of-two alignment and a few sizes around it,
// writes each whole usable range and checks alignment and contents.
template <typename AllocFn>
void sweep_alignments(size_t min_alignment, AllocFn alloc) {
  unsigned seed = 1;
  for (size_t alignment = min_alignment; alignment <= kMaxAlignment; alignment <<= 1) {
    const size_t sizes[] = {0, 1, alignment - 1, alignment, alignment + 1, 3 * alignment};
    std::vector<std::pair<void*, size_t>> live;
    for (size_t size : sizes) {
      void* p = alloc(alignment, size);
      ASSERT_NE(p, nullptr) << "alignment " << alignment << " size " << size;
      EXPECT_TRUE(is_aligned(p, alignment)) << p << " alignment " << alignment;
      EXPECT_TRUE(is_aligned(p, 16)) << p;
      const size_t usable = malloc_usable_size(p);
      EXPECT_GE(usable, size) << "alignment " << alignment;
      fill_pattern(p, usable, seed);
      live.emplace_back(p, usable);
      ++seed;
    }
    seed -= static_cast<unsigned>(live.size());
    for (auto [p, usable] : live) {
      EXPECT_EQ(first_mismatch(p, usable, seed), usable) << "alignment " << alignment;
      free(p);
      ++seed;
    }
  }
}

TEST(AlignedAlloc, EveryPowerOfTwoAlignment) {
  sweep_alignments(1, [](size_t a, size_t n) { return aligned_alloc(a, n); });
}

// glibc 2.36 implements aligned_alloc as memalign: a non-power-of-two alignment is
// rounded up to the next power of two and the call succeeds (the EINVAL check only
// arrived in glibc 2.38). Alignment 0 behaves like malloc.
TEST(AlignedAlloc, NonPowerOfTwoAlignmentRoundsUpLikeGlibc236) {
  for (size_t alignment : {size_t{0}, size_t{3}, size_t{24}, size_t{48}, size_t{100},
                           size_t{3000}, size_t{4097}, size_t{100000}}) {
    errno = 0;
    void* p = aligned_alloc(opaque_size(alignment), 40);
    ASSERT_NE(p, nullptr) << "alignment " << alignment;
    EXPECT_EQ(errno, 0);
    EXPECT_TRUE(is_aligned(p, next_power_of_two(alignment < 16 ? 16 : alignment)))
        << p << " alignment " << alignment;
    std::memset(p, 1, 40);
    free(p);
  }
}

TEST(AlignedAlloc, AlignmentAboveHalfTheAddressSpaceFailsWithEinval) {
  for (size_t alignment : {kHalfAddressSpace + 1, SIZE_MAX, SIZE_MAX - 15}) {
    errno = 0;
    EXPECT_EQ(aligned_alloc(opaque_size(alignment), 16), nullptr) << alignment;
    EXPECT_EQ(errno, EINVAL) << alignment;
  }
}

TEST(AlignedAlloc, ImpossibleRequestsFailWithEnomem) {
  const std::pair<size_t, size_t> cases[] = {
      {16, SIZE_MAX}, {4096, SIZE_MAX - 8192}, {64, static_cast<size_t>(PTRDIFF_MAX) + 1},
      {kHalfAddressSpace, 16}};
  for (auto [alignment, size] : cases) {
    errno = 0;
    EXPECT_EQ(aligned_alloc(opaque_size(alignment), opaque_size(size)), nullptr)
        << alignment << ", " << size;
    EXPECT_EQ(errno, ENOMEM) << alignment << ", " << size;
  }
}

TEST(PosixMemalign, EveryValidAlignment) {
  sweep_alignments(sizeof(void*), [](size_t a, size_t n) {
    void* p = nullptr;
    errno = 777;
    const int rc = posix_memalign(&p, a, n);
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(errno, 777) << "posix_memalign changed errno on success";
    return p;
  });
}

// EINVAL for an alignment that is not a power of two or not a multiple of
// sizeof(void*); *memptr is left alone and errno is untouched on every error that
// glibc reports without trying to allocate.
TEST(PosixMemalign, BadAlignmentIsEinvalAndLeavesEverythingUntouched) {
  for (size_t alignment : {size_t{0}, size_t{1}, size_t{2}, size_t{4}, size_t{3}, size_t{12},
                           size_t{24}, 3 * sizeof(void*), size_t{4095}, size_t{100000},
                           kHalfAddressSpace + 1, SIZE_MAX}) {
    void* sentinel = reinterpret_cast<void*>(0xdeadbeef);
    void* p = sentinel;
    errno = 555;
    EXPECT_EQ(posix_memalign(&p, opaque_size(alignment), 64), EINVAL) << alignment;
    EXPECT_EQ(p, sentinel) << "*memptr written for alignment " << alignment;
    EXPECT_EQ(errno, 555) << "errno changed for alignment " << alignment;
  }
}

// glibc sets errno to ENOMEM on this path as a side effect of its internal malloc, so
// only the return value and *memptr are part of the contract.
TEST(PosixMemalign, HugeSizeIsEnomemAndLeavesMemptrUntouched) {
  const std::pair<size_t, size_t> cases[] = {
      {64, SIZE_MAX}, {4096, SIZE_MAX - 4096}, {16, static_cast<size_t>(PTRDIFF_MAX) + 1},
      {kHalfAddressSpace, 16}};
  for (auto [alignment, size] : cases) {
    void* sentinel = reinterpret_cast<void*>(0xfeedface);
    void* p = sentinel;
    EXPECT_EQ(posix_memalign(&p, opaque_size(alignment), opaque_size(size)), ENOMEM)
        << alignment << ", " << size;
    EXPECT_EQ(p, sentinel);
  }
}

TEST(PosixMemalign, ZeroSizeGivesAFreeableBlock) {
  void* p = nullptr;
  ASSERT_EQ(posix_memalign(&p, 64, 0), 0);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(is_aligned(p, 64));
  free(p);
}

TEST(Memalign, EveryPowerOfTwoAlignment) {
  sweep_alignments(1, [](size_t a, size_t n) { return memalign(a, n); });
}

TEST(Memalign, NonPowerOfTwoRoundsUpAndHugeAlignmentIsEinval) {
  void* p = memalign(opaque_size(48), 10);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(is_aligned(p, 64));
  free(p);
  errno = 0;
  EXPECT_EQ(memalign(opaque_size(kHalfAddressSpace + 1), 10), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(memalign(64, opaque_size(SIZE_MAX)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(Valloc, IsPageAligned) {
  const size_t page = page_size();
  for (size_t n : {size_t{0}, size_t{1}, page - 1, page, page + 1, size_t{200000}}) {
    void* p = valloc(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_TRUE(is_aligned(p, page)) << p;
    EXPECT_GE(malloc_usable_size(p), n);
    std::memset(p, 0xCD, malloc_usable_size(p));
    free(p);
  }
  errno = 0;
  EXPECT_EQ(valloc(opaque_size(SIZE_MAX)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(Pvalloc, IsPageAlignedAndRoundedToPages) {
  const size_t page = page_size();
  for (size_t n : {size_t{1}, size_t{100}, page - 1, page, page + 1, 3 * page + 5, size_t{300000}}) {
    void* p = pvalloc(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_TRUE(is_aligned(p, page)) << p;
    const size_t rounded = (n + page - 1) / page * page;
    ASSERT_GE(malloc_usable_size(p), rounded) << n;
    std::memset(p, 0xEF, malloc_usable_size(p));
    free(p);
  }
}

// glibc rounds 0 up to 0 pages and returns a minimal page-aligned block (its usable
// size is 24), so only "non-NULL, page-aligned, freeable" is common ground.
TEST(Pvalloc, ZeroSizeGivesAPageAlignedBlock) {
  void* p = pvalloc(0);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(is_aligned(p, page_size()));
  free(p);
}

TEST(Pvalloc, HugeSizeFailsWithEnomem) {
  for (size_t n : {SIZE_MAX, SIZE_MAX - page_size() + 1, static_cast<size_t>(PTRDIFF_MAX) + 1}) {
    errno = 0;
    EXPECT_EQ(pvalloc(opaque_size(n)), nullptr) << n;
    EXPECT_EQ(errno, ENOMEM) << n;
  }
}

// Sizes 0..256 one by one, then a geometric walk to 1 MiB with each step's
// neighbours, so every size class edge is hit from both sides.
std::vector<size_t> sweep_sizes() {
  std::vector<size_t> sizes;
  for (size_t n = 0; n <= 256; ++n) sizes.push_back(n);
  for (size_t n = 272; n <= (size_t{1} << 20); n += n / 12) {
    sizes.push_back(n - 1);
    sizes.push_back(n);
    sizes.push_back(n + 1);
  }
  for (size_t k = 9; k <= 20; ++k) {
    const size_t p = size_t{1} << k;
    sizes.push_back(p - 16);
    sizes.push_back(p);
    sizes.push_back(p + 16);
  }
  return sizes;
}

// Blocks of one size are usually slab neighbours: fill each whole usable range with
// its own pattern, then verify all, so writing up to malloc_usable_size can never
// reach another block.
TEST(AlignmentSweep, NeighboursOfEverySizeSurviveFullUsableWrites) {
  constexpr int kPerSize = 4;
  unsigned seed = 0;
  for (size_t n : sweep_sizes()) {
    void* blocks[kPerSize];
    size_t usable[kPerSize];
    for (int i = 0; i < kPerSize; ++i) {
      blocks[i] = malloc(n);
      ASSERT_NE(blocks[i], nullptr) << n;
      ASSERT_TRUE(is_aligned(blocks[i], 16)) << blocks[i] << " size " << n;
      usable[i] = malloc_usable_size(blocks[i]);
      ASSERT_GE(usable[i], n);
      fill_pattern(blocks[i], usable[i], seed + i);
    }
    for (int i = 0; i < kPerSize; ++i) {
      ASSERT_EQ(first_mismatch(blocks[i], usable[i], seed + i), usable[i])
          << "size " << n << " block " << i << " was overwritten";
      free(blocks[i]);
    }
    seed += kPerSize;
  }
}

// The same sweep with every size live at once, so that blocks of different classes
// and large blocks are neighbours too.
TEST(AlignmentSweep, AllSizesLiveAtOnce) {
  const std::vector<size_t> sizes = sweep_sizes();
  std::vector<std::pair<void*, size_t>> live;
  live.reserve(sizes.size());
  unsigned seed = 1000;
  for (size_t n : sizes) {
    void* p = malloc(n);
    ASSERT_NE(p, nullptr) << n;
    ASSERT_TRUE(is_aligned(p, 16));
    const size_t usable = malloc_usable_size(p);
    ASSERT_GE(usable, n);
    fill_pattern(p, usable, seed++);
    live.emplace_back(p, usable);
  }
  seed = 1000;
  for (auto [p, usable] : live) {
    EXPECT_EQ(first_mismatch(p, usable, seed), usable) << "block of usable size " << usable;
    ++seed;
  }
  for (auto [p, usable] : live) free(p);
}

}  // namespace
