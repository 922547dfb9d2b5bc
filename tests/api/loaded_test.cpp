// SPDX-License-Identifier: Apache-2.0
// Proves that the process really runs on heapguard and not on glibc malloc. Every api
// and stress executable links this file, so no static or preload variant can pass by
// accident when an entry point silently falls back to libc (a missed override).
#include <heapguard/heapguard.h>

#include <gtest/gtest.h>
#include <malloc.h>
#include <stdlib.h>

#include <cstring>
#include <new>
#include <string>

#include "block_pattern.h"

namespace {

using heapguard::test::escape;

std::string expected_mode() {
  const char* env = std::getenv("HEAPGUARD_MODE");
  if (env == nullptr) return "hardened";
  const std::string value = env;
  // An unknown value keeps the default, per the product brief.
  if (value == "fast" || value == "hardened" || value == "debug" || value == "fuzz") return value;
  return "hardened";
}

TEST(Loaded, MallocIsServedByHeapguard) {
  void* p = malloc(1);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(heapguard_owns(p), 1);
  free(p);
  // Nothing allocates between the free and the query, so p cannot be live again.
  EXPECT_EQ(heapguard_owns(p), 0);
}

TEST(Loaded, ForeignAndInteriorPointersAreNotOwned) {
  int on_stack = 0;
  escape(&on_stack);
  EXPECT_EQ(heapguard_owns(&on_stack), 0);
  EXPECT_EQ(heapguard_owns(nullptr), 0);
  static int in_data = 1;
  EXPECT_EQ(heapguard_owns(&in_data), 0);
  auto* p = static_cast<char*>(malloc(64));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(heapguard_owns(p + 1), 0);
  EXPECT_EQ(heapguard_owns(p + 16), 0);
  free(p);
}

// Each libc entry point is a separate symbol; a static link that misses one would get
// glibc's version, whose blocks heapguard does not own.
TEST(Loaded, EveryCEntryPointIsServedByHeapguard) {
  void* c = calloc(3, 5);
  EXPECT_EQ(heapguard_owns(c), 1);
  void* r = realloc(nullptr, 40);
  EXPECT_EQ(heapguard_owns(r), 1);
  r = realloc(r, 4000);
  EXPECT_EQ(heapguard_owns(r), 1);
  void* ra = reallocarray(nullptr, 7, 9);
  EXPECT_EQ(heapguard_owns(ra), 1);
  void* aa = aligned_alloc(256, 512);
  EXPECT_EQ(heapguard_owns(aa), 1);
  void* pm = nullptr;
  ASSERT_EQ(posix_memalign(&pm, 64, 100), 0);
  EXPECT_EQ(heapguard_owns(pm), 1);
  void* ma = memalign(128, 100);
  EXPECT_EQ(heapguard_owns(ma), 1);
  void* va = valloc(100);
  EXPECT_EQ(heapguard_owns(va), 1);
  void* pv = pvalloc(100);
  EXPECT_EQ(heapguard_owns(pv), 1);
  void* big = malloc(4u << 20);
  EXPECT_EQ(heapguard_owns(big), 1);
  for (void* p : {c, r, ra, aa, pm, ma, va, pv, big}) free(p);
}

TEST(Loaded, EveryOperatorNewIsServedByHeapguard) {
  void* a = ::operator new(24);
  void* b = ::operator new[](24);
  void* c = ::operator new(24, std::nothrow);
  void* d = ::operator new[](24, std::nothrow);
  void* e = ::operator new(24, std::align_val_t{64});
  void* f = ::operator new[](24, std::align_val_t{64});
  void* g = ::operator new(24, std::align_val_t{64}, std::nothrow);
  void* h = ::operator new[](24, std::align_val_t{64}, std::nothrow);
  for (void* p : {a, b, c, d, e, f, g, h}) EXPECT_EQ(heapguard_owns(p), 1);
  ::operator delete(a);
  ::operator delete[](b);
  ::operator delete(c, std::nothrow);
  ::operator delete[](d, std::nothrow);
  ::operator delete(e, std::align_val_t{64});
  ::operator delete[](f, std::align_val_t{64});
  ::operator delete(g, std::align_val_t{64}, std::nothrow);
  ::operator delete[](h, std::align_val_t{64}, std::nothrow);
}

TEST(Loaded, ModeMatchesEnvironment) {
  const char* mode = heapguard_mode();
  ASSERT_NE(mode, nullptr);
  EXPECT_EQ(std::string(mode), expected_mode());
}

TEST(Loaded, VersionIsNonEmpty) {
  const char* version = heapguard_version();
  ASSERT_NE(version, nullptr);
  EXPECT_GT(std::strlen(version), 0u);
  EXPECT_NE(std::strchr(version, '.'), nullptr) << "version \"" << version << "\"";
}

}  // namespace
