// SPDX-License-Identifier: Apache-2.0
// Negative controls for the death tests, in every mode: the same programs
// without the bug never report. Each runs in a child so that a false report
// fails only its own test, with the report as the failure message. Using
// every byte malloc_usable_size() grants is correct (Redis and others do);
// so are exact-size writes, matching API pairs and sized releases, and
// frees of blocks whose neighbours were filled to their last byte.
#include <malloc.h>

#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include "death_test_util.h"

extern "C" void free_sized(void* p, size_t size) noexcept;

namespace heapguard::test {

// Every range, with and without slack, the exact fits of each mode, and the
// largest small block.
inline constexpr size_t kCleanSizes[] = {1, 8, 20, 24, 100, 4096, 4999, 5096, 5120, 131048, 131072, 300001, 1 << 20};

class CleanUseTest : public DeathTestBase {};

TEST_P(CleanUseTest, WritingAllOfTheUsableSizeIsFine) {
  size_t n = GetParam();
  EXPECT_EXIT(
      {
        char* p = opaque_chars(malloc(n));
        size_t usable = malloc_usable_size(p);
        if (usable < n) exit(2);
        memset(p, 0x41, usable);
        if (malloc_usable_size(p) != usable) exit(3);
        p = opaque_chars(realloc(p, usable + 1));
        memset(p, 0x42, malloc_usable_size(p));
        free(p);
        p = opaque_chars(calloc(n, 1));
        memset(p, 0x43, malloc_usable_size(p));
        free(p);
        drain_quarantine();
        exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_P(CleanUseTest, NeighboursFilledToTheLastByteAreFine) {
  size_t n = GetParam();
  EXPECT_EXIT(
      {
        std::vector<char*> blocks;
        for (int i = 0; i < (is_large(n) ? 8 : 200); ++i) {
          char* p = opaque_chars(malloc(n));
          memset(p, 0x44, malloc_usable_size(p));
          blocks.push_back(p);
        }
        for (size_t i = 0; i < blocks.size(); i += 2) free(blocks[i]);
        drain_quarantine();
        for (size_t i = 1; i < blocks.size(); i += 2) blocks[i] = opaque_chars(realloc(blocks[i], n + n / 2 + 1));
        for (size_t i = 1; i < blocks.size(); i += 2) free(blocks[i]);
        drain_quarantine();
        exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_P(CleanUseTest, MatchingPairsAndSizesAreFine) {
  size_t n = GetParam();
  EXPECT_EXIT(
      {
        ::operator delete(opaque(::operator new(n)));
        ::operator delete[](opaque(::operator new[](n)));
        ::operator delete(opaque(::operator new(n)), n);
        ::operator delete[](opaque(::operator new[](n)), n);
        ::operator delete(opaque(::operator new(n, std::align_val_t{128})), std::align_val_t{128});
        ::operator delete(opaque(::operator new(n, std::align_val_t{128})), n, std::align_val_t{128});
        free_sized(opaque(malloc(n)), n);
        void* q = nullptr;
        if (posix_memalign(&q, 256, n) != 0) exit(2);
        free(q);
        free(opaque(memalign(4096, n)));
        free(opaque(aligned_alloc(32, n)));
        drain_quarantine();
        exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_P(CleanUseTest, FreeingOnAnotherThreadAndDrainingIsFine) {
  size_t n = GetParam();
  EXPECT_EXIT(
      {
        std::vector<void*> blocks;
        for (int i = 0; i < 64; ++i) {
          void* p = opaque(malloc(n));
          memset(p, 0x45, n);
          blocks.push_back(p);
        }
        std::thread t([&] {
          for (void* p : blocks) free(p);
        });
        t.join();
        drain_quarantine();
        for (int i = 0; i < 64; ++i) free(opaque(malloc(n)));
        drain_quarantine();
        exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

INSTANTIATE_TEST_SUITE_P(Sizes, CleanUseTest, ::testing::ValuesIn(kCleanSizes));

}  // namespace heapguard::test
