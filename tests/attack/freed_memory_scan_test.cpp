// SPDX-License-Identifier: Apache-2.0
// Attack 7, leaking heap and library addresses from freed memory (the first
// step of most glibc exploits: a freed chunk's fd/bk pointers, read through
// a use-after-free or an uninitialised read, reveal the heap and libc
// bases). Blocks of many sizes are filled with a pattern that is no pointer,
// freed, and their bytes read back before anything is allocated again
// (reading freed memory is fine here: the test owns it). No 8-byte word may
// be a heap address or point into any loaded module, in any mode; and the
// freed bytes must be what the mode promises: untouched (fast; or zero if
// the slab was returned to the OS), zero (hardened), the free pattern 0xFD
// (debug, fuzz).
#include <dlfcn.h>
#include <malloc.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "death_test_util.h"

namespace heapguard::test {
namespace {

constexpr unsigned char kFill = 0xA5;
constexpr unsigned char kFreeFill = 0xFD;
// Small blocks only: large freed blocks are unmapped, cached, or (with a
// quarantine) inaccessible.
constexpr size_t kScanSizes[] = {16, 24, 40, 64, 100, 200, 512, 1000, 2000, 4000, 5000, 12000, 30000};
constexpr size_t kBlocksPerSize = 64;

struct Block {
  char* p;
  size_t n;
};

// Every address a heap pointer could hold lies within this span around the
// blocks seen: the slab arena is one reservation of 53 class regions of at
// most 16 GiB each.
struct HeapSpan {
  uintptr_t lo = UINTPTR_MAX;
  uintptr_t hi = 0;
  void widen() {
    constexpr uintptr_t kArena = uintptr_t{53} << 34;
    lo = lo > kArena ? lo - kArena : 0;
    hi = hi + kArena;
  }
  bool contains(uintptr_t w) const { return w >= lo && w < hi; }
};

bool points_into_a_module(uintptr_t w) {
  if (w < 4096) return false;
  Dl_info info;
  return dladdr(reinterpret_cast<void*>(w), &info) != 0 && info.dli_fname != nullptr;
}

std::string hex(uintptr_t w) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(w));
  return buf;
}

}  // namespace

TEST(FreedMemoryScanTest, FreedBlocksHoldNoPointersAndWhatTheModePromises) {
  std::vector<Block> blocks;
  HeapSpan span;
  for (size_t n : kScanSizes) {
    for (size_t i = 0; i < kBlocksPerSize; ++i) {
      char* p = opaque_chars(malloc(n));
      ASSERT_NE(p, nullptr);
      memset(p, kFill, n);
      blocks.push_back({p, n});
      span.lo = std::min(span.lo, reinterpret_cast<uintptr_t>(p));
      span.hi = std::max(span.hi, reinterpret_cast<uintptr_t>(p) + n);
    }
  }
  span.widen();
  // Interleaved sizes and an order unlike the allocation order, so blocks go
  // through thread caches, slabs and the quarantine alike.
  std::vector<Block> order = blocks;
  for (size_t i = 0; i < order.size(); ++i) std::swap(order[i], order[(i * 7919) % order.size()]);
  for (const Block& b : order) free(b.p);

  // Nothing allocates from here on until the scan is done.
  size_t pointers = 0, modules = 0, owned = 0, broken_promise = 0;
  std::string first_problem;
  for (const Block& b : blocks) {
    for (size_t k = 0; k + 8 <= b.n; k += 8) {
      uint64_t w;
      memcpy(&w, b.p + k, 8);
      if (span.contains(w)) ++pointers;
      if (points_into_a_module(w)) ++modules;
      if (heapguard_owns(reinterpret_cast<void*>(w))) ++owned;
      if ((span.contains(w) || points_into_a_module(w)) && first_problem.empty())
        first_problem = hex(w) + " at offset " + std::to_string(k) + " of a freed " + std::to_string(b.n) + "-byte block";
    }
    for (size_t k = 0; k < b.n; ++k) {
      unsigned char c = static_cast<unsigned char>(b.p[k]);
      bool ok = mode_is("hardened")  ? c == 0
                : redzone_mode()     ? c == kFreeFill
                                     : c == kFill || c == 0;
      if (!ok) {
        ++broken_promise;
        if (first_problem.empty())
          first_problem = "byte " + hex(c) + " at offset " + std::to_string(k) + " of a freed " + std::to_string(b.n) + "-byte block";
      }
    }
  }
  EXPECT_EQ(pointers, 0u) << first_problem;
  EXPECT_EQ(modules, 0u) << first_problem;
  EXPECT_EQ(owned, 0u);
  EXPECT_EQ(broken_promise, 0u) << "freed bytes not as mode " << heapguard_mode() << " promises; " << first_problem;
}

// The same after a trim: blocks that left the quarantine or went back to
// their slabs are still free of pointers (checked before any reuse).
TEST(FreedMemoryScanTest, NoPointersAfterBlocksLeftTheQuarantine) {
  std::vector<Block> blocks;
  HeapSpan span;
  for (size_t n : kScanSizes) {
    for (size_t i = 0; i < kBlocksPerSize; ++i) {
      char* p = opaque_chars(malloc(n));
      memset(p, kFill, n);
      blocks.push_back({p, n});
      span.lo = std::min(span.lo, reinterpret_cast<uintptr_t>(p));
      span.hi = std::max(span.hi, reinterpret_cast<uintptr_t>(p) + n);
    }
  }
  span.widen();
  for (const Block& b : blocks) free(b.p);
  malloc_trim(0);
  size_t pointers = 0;
  std::string first_problem;
  for (const Block& b : blocks) {
    for (size_t k = 0; k + 8 <= b.n; k += 8) {
      uint64_t w;
      memcpy(&w, b.p + k, 8);
      if (span.contains(w) || points_into_a_module(w)) {
        if (pointers++ == 0) first_problem = hex(w) + " at offset " + std::to_string(k) + " of a " + std::to_string(b.n) + "-byte block";
      }
    }
  }
  EXPECT_EQ(pointers, 0u) << first_problem;
}

}  // namespace heapguard::test
