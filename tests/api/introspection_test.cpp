// SPDX-License-Identifier: Apache-2.0
// The glibc introspection and tuning calls: malloc_usable_size, free_sized,
// free_aligned_sized, malloc_trim, mallopt, mallinfo, mallinfo2, malloc_stats and
// malloc_info. Programs call these blindly, so each must answer the way glibc does.
#include <gtest/gtest.h>
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "block_pattern.h"

// C23 names that glibc 2.36's headers do not declare yet; heapguard exports them.
extern "C" void free_sized(void* ptr, size_t size);
extern "C" void free_aligned_sized(void* ptr, size_t alignment, size_t size);

namespace {

using heapguard::test::fill_pattern;
using heapguard::test::first_mismatch;
using heapguard::test::is_aligned;

constexpr size_t kTenMiB = size_t{10} << 20;

TEST(MallocUsableSize, NullIsZero) { EXPECT_EQ(malloc_usable_size(nullptr), 0u); }

TEST(MallocUsableSize, AtLeastRequestedAndWritableToTheEnd) {
  for (size_t n = 0; n < 70000; n = n * 3 / 2 + 1) {
    auto* p = static_cast<unsigned char*>(malloc(n));
    ASSERT_NE(p, nullptr);
    const size_t usable = malloc_usable_size(p);
    ASSERT_GE(usable, n);
    // The slack after the requested size belongs to the program once it has asked
    // for the usable size; the free below must not call it an overflow.
    std::memset(p, 0x3C, usable);
    EXPECT_EQ(malloc_usable_size(p), usable) << "usable size changed after writing it";
    free(p);
  }
  for (size_t n : {size_t{200000}, size_t{1u << 20}, size_t{(1u << 20) + 1}}) {
    auto* p = static_cast<unsigned char*>(malloc(n));
    ASSERT_NE(p, nullptr);
    const size_t usable = malloc_usable_size(p);
    ASSERT_GE(usable, n);
    std::memset(p, 0x3C, usable);
    free(p);
  }
}

TEST(MallocUsableSize, GrowsWithReallocAndCoversCalloc) {
  void* p = calloc(10, 10);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(malloc_usable_size(p), 100u);
  p = realloc(p, 300000);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(malloc_usable_size(p), 300000u);
  free(p);
}

TEST(FreeSized, AcceptsTheRequestedSize) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{100}, size_t{4096}, size_t{150000}, size_t{3u << 20}}) {
    void* p = malloc(n);
    ASSERT_NE(p, nullptr);
    fill_pattern(p, n, 4);
    errno = 99;
    free_sized(p, n);
    EXPECT_EQ(errno, 99);
  }
  void* c = calloc(7, 13);
  ASSERT_NE(c, nullptr);
  free_sized(c, 7 * 13);
  void* r = realloc(nullptr, 10);
  ASSERT_NE(r, nullptr);
  r = realloc(r, 5000);
  ASSERT_NE(r, nullptr);
  free_sized(r, 5000);
  free_sized(nullptr, 0);
  free_sized(nullptr, 64);
}

TEST(FreeAlignedSized, AcceptsAlignedAllocBlocks) {
  for (size_t alignment = 1; alignment <= (size_t{1} << 16); alignment <<= 1) {
    for (size_t n : {alignment, 3 * alignment, 5 * alignment}) {
      void* p = aligned_alloc(alignment, n);
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(is_aligned(p, alignment));
      std::memset(p, 0x11, n);
      errno = 98;
      free_aligned_sized(p, alignment, n);
      EXPECT_EQ(errno, 98);
    }
  }
  free_aligned_sized(nullptr, 64, 64);
}

TEST(MallocTrim, ReturnsZeroOrOneAndKeepsLiveBlocks) {
  std::vector<void*> garbage;
  for (int i = 0; i < 2000; ++i) garbage.push_back(malloc(static_cast<size_t>(i % 50) * 64 + 16));
  void* keep_small = malloc(200);
  void* keep_large = malloc(1u << 20);
  ASSERT_NE(keep_small, nullptr);
  ASSERT_NE(keep_large, nullptr);
  fill_pattern(keep_small, 200, 6);
  fill_pattern(keep_large, 1u << 20, 7);
  for (void* p : garbage) free(p);
  for (size_t pad : {size_t{0}, size_t{4096}, size_t{1} << 20}) {
    const int rc = malloc_trim(pad);
    EXPECT_TRUE(rc == 0 || rc == 1) << rc;
  }
  EXPECT_EQ(first_mismatch(keep_small, 200, 6), 200u);
  EXPECT_EQ(first_mismatch(keep_large, 1u << 20, 7), size_t{1} << 20);
  // Memory handed back by the trim must be usable again.
  for (int i = 0; i < 2000; ++i) {
    const size_t n = static_cast<size_t>(i % 50) * 64 + 16;
    void* p = malloc(n);
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x42, n);
    garbage[i] = p;
  }
  for (void* p : garbage) free(p);
  free(keep_small);
  free(keep_large);
}

TEST(Mallopt, KnownParametersReturnOne) {
  const std::pair<int, int> known[] = {
      {M_MXFAST, 64},          {M_TRIM_THRESHOLD, 128 * 1024}, {M_TOP_PAD, 0},
      {M_MMAP_THRESHOLD, 128 * 1024}, {M_MMAP_MAX, 65536},     {M_CHECK_ACTION, 3},
      {M_PERTURB, 0},          {M_ARENA_TEST, 8},              {M_ARENA_MAX, 4}};
  for (auto [param, value] : known) EXPECT_EQ(mallopt(param, value), 1) << "param " << param;
  void* p = malloc(300000);
  ASSERT_NE(p, nullptr);
  free(p);
}

// M_MXFAST is the one parameter whose range glibc checks: 0..80*sizeof(size_t)/4.
TEST(Mallopt, OutOfRangeMxfastReturnsZero) {
  EXPECT_EQ(mallopt(M_MXFAST, -1), 0);
  EXPECT_EQ(mallopt(M_MXFAST, 80 * static_cast<int>(sizeof(size_t)) / 4 + 1), 0);
  EXPECT_EQ(mallopt(M_MXFAST, 64), 1);
}

// glibc's mallopt has no default case: a parameter it does not know is ignored and
// reported as success.
// glibc 2.36 takes any mmap threshold (older versions capped it).
TEST(Mallopt, AnyMmapThresholdIsAcceptedLikeGlibc) {
  for (int v : {-1, 0, 33554433, 67108864, 2147483647}) EXPECT_EQ(mallopt(M_MMAP_THRESHOLD, v), 1) << v;
  EXPECT_EQ(mallopt(M_MMAP_THRESHOLD, 128 * 1024), 1);
}

TEST(Mallopt, UnknownParametersAreIgnoredLikeGlibc) {
  EXPECT_EQ(mallopt(12345, 1), 1);
  EXPECT_EQ(mallopt(-100, 1), 1);
}

// Bytes in use as glibc counts them: small blocks in uordblks, mmap'd ones in hblkhd.
template <typename Info>
size_t in_use(const Info& info) {
  return static_cast<size_t>(info.uordblks) + static_cast<size_t>(info.hblkhd);
}

// Allocates 10 MiB once as 1 KiB blocks and once as a single block; the figures from
// get_info must rise by at least that much and fall back once it is freed.
template <typename GetInfo>
void check_info_tracks_allocation(GetInfo get_info) {
  for (bool one_block : {false, true}) {
    SCOPED_TRACE(one_block ? "one 10 MiB block" : "10240 blocks of 1 KiB");
    const auto before = get_info();
    std::vector<void*> blocks;
    if (one_block) {
      blocks.push_back(malloc(kTenMiB));
    } else {
      for (size_t i = 0; i < kTenMiB / 1024; ++i) blocks.push_back(malloc(1024));
    }
    for (void* p : blocks) {
      ASSERT_NE(p, nullptr);
      std::memset(p, 1, one_block ? kTenMiB : 1024);
    }
    const auto during = get_info();
    EXPECT_GE(in_use(during), in_use(before) + kTenMiB);
    EXPECT_GE(static_cast<size_t>(during.arena) + static_cast<size_t>(during.hblkhd),
              static_cast<size_t>(before.arena) + static_cast<size_t>(before.hblkhd) + kTenMiB / 2)
        << "arena + hblkhd did not grow";
    for (void* p : blocks) free(p);
    const auto after = get_info();
    EXPECT_LE(in_use(after) + kTenMiB * 9 / 10, in_use(during)) << "freed memory still counted as in use";
  }
}

TEST(Mallinfo2, TracksTenMiB) {
  check_info_tracks_allocation([] { return mallinfo2(); });
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
TEST(Mallinfo, TracksTenMiB) {
  check_info_tracks_allocation([] { return mallinfo(); });
}
#pragma GCC diagnostic pop

// Reads a temporary file from its start and closes it.
std::string read_and_close(FILE* f) {
  std::string out;
  std::rewind(f);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

// Runs fn with fd 2 redirected to a temporary file and returns what was written.
template <typename Fn>
std::string capture_stderr(Fn fn) {
  std::fflush(stderr);
  FILE* tmp = std::tmpfile();
  EXPECT_NE(tmp, nullptr);
  if (tmp == nullptr) return {};
  const int saved = dup(2);
  dup2(fileno(tmp), 2);
  fn();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  return read_and_close(tmp);
}

TEST(MallocStats, WritesToStderr) {
  void* p = malloc(1000);
  ASSERT_NE(p, nullptr);
  const std::string out = capture_stderr([] { malloc_stats(); });
  EXPECT_FALSE(out.empty());
  free(p);
}

TEST(MallocInfo, WritesMallocXml) {
  std::vector<void*> blocks;
  for (size_t n : {size_t{10}, size_t{1000}, size_t{300000}}) blocks.push_back(malloc(n));
  FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(malloc_info(0, f), 0);
  const std::string xml = read_and_close(f);
  EXPECT_EQ(xml.rfind("<malloc", 0), 0u) << xml.substr(0, 200);
  EXPECT_NE(xml.find("</malloc>"), std::string::npos) << "unterminated XML";
  for (void* p : blocks) free(p);
}

// glibc returns EINVAL itself (not -1 with errno) and writes nothing.
TEST(MallocInfo, NonZeroOptionsAreEinval) {
  FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  errno = 0;
  EXPECT_EQ(malloc_info(1, f), EINVAL);
  EXPECT_EQ(malloc_info(-1, f), EINVAL);
  EXPECT_EQ(errno, 0);
  std::fflush(f);
  EXPECT_EQ(std::ftell(f), 0L) << "malloc_info wrote output for rejected options";
  std::fclose(f);
}

}  // namespace
