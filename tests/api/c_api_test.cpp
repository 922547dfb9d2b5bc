// SPDX-License-Identifier: Apache-2.0
// Runs the C conformance checks in c_api.c under GoogleTest. A non-zero result is the
// line of c_api.c whose condition failed.
#include <gtest/gtest.h>

extern "C" {
int c_api_loaded(void);
int c_api_malloc_free(void);
int c_api_calloc(void);
int c_api_realloc(void);
int c_api_aligned(void);
int c_api_sized_free(void);
int c_api_tuning(void);
}

namespace {

constexpr const char* kLineHint = "a non-zero value is the c_api.c line of the failed check";

TEST(CApi, Loaded) { EXPECT_EQ(c_api_loaded(), 0) << kLineHint; }
TEST(CApi, MallocFree) { EXPECT_EQ(c_api_malloc_free(), 0) << kLineHint; }
TEST(CApi, Calloc) { EXPECT_EQ(c_api_calloc(), 0) << kLineHint; }
TEST(CApi, Realloc) { EXPECT_EQ(c_api_realloc(), 0) << kLineHint; }
TEST(CApi, Aligned) { EXPECT_EQ(c_api_aligned(), 0) << kLineHint; }
TEST(CApi, SizedFree) { EXPECT_EQ(c_api_sized_free(), 0) << kLineHint; }
TEST(CApi, Tuning) { EXPECT_EQ(c_api_tuning(), 0) << kLineHint; }

}  // namespace
