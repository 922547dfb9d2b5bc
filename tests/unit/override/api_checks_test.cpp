// SPDX-License-Identifier: Apache-2.0
// The C API's argument rules, as glibc 2.36 applies them.
#include "override/api_checks.h"

#include <gtest/gtest.h>

namespace heapguard::test {

TEST(ApiChecks, ArrayBytesDetectsOverflow) {
  size_t out;
  EXPECT_TRUE(api::array_bytes(1000, 1000, &out));
  EXPECT_EQ(out, 1000000u);
  EXPECT_FALSE(api::array_bytes(SIZE_MAX / 2, 3, &out));
  EXPECT_TRUE(api::array_bytes(0, SIZE_MAX, &out));
  EXPECT_EQ(out, 0u);
}

TEST(ApiChecks, PosixMemalignAlignment) {
  EXPECT_FALSE(api::posix_alignment_ok(0));
  EXPECT_FALSE(api::posix_alignment_ok(4));
  EXPECT_FALSE(api::posix_alignment_ok(24));
  EXPECT_TRUE(api::posix_alignment_ok(8));
  EXPECT_TRUE(api::posix_alignment_ok(size_t{1} << 40));
}

TEST(ApiChecks, MemalignRoundsUpAndRejectsTheAbsurd) {
  size_t out;
  ASSERT_EQ(api::normalize_memalign(24, &out), api::AlignResult::Ok);
  EXPECT_EQ(out, 32u);
  ASSERT_EQ(api::normalize_memalign(0, &out), api::AlignResult::Ok);
  EXPECT_EQ(out, 1u);
  EXPECT_EQ(api::normalize_memalign(SIZE_MAX / 2 + 2, &out), api::AlignResult::Invalid);
  ASSERT_EQ(api::normalize_memalign(SIZE_MAX / 2 + 1, &out), api::AlignResult::Ok);
}

TEST(ApiChecks, PvallocRoundsToPages) {
  size_t out;
  ASSERT_TRUE(api::pvalloc_bytes(0, 4096, &out));
  EXPECT_EQ(out, 4096u);
  ASSERT_TRUE(api::pvalloc_bytes(4097, 4096, &out));
  EXPECT_EQ(out, 8192u);
  EXPECT_FALSE(api::pvalloc_bytes(SIZE_MAX - 5, 4096, &out));
}

}  // namespace heapguard::test
