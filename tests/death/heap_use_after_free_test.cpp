// SPDX-License-Identifier: Apache-2.0
// heap-use-after-free (hardened, debug, fuzz): a freed small block is
// poisoned and waits in quarantine; a write into it is reported, with the
// first modified byte, when malloc_trim(0) drains the quarantine, or, for a
// block that left the quarantine any other way (pressure from later frees)
// or never entered one (quarantine_size_mb=0), when its slot is handed out
// again. Hardened checks the first and last 16 bytes, so the writes here
// stay within them; debug and fuzz check every byte
// (heap_use_after_free_full_test.cpp). A freed small block's header is
// checked at the same moments. A freed large block is inaccessible while
// quarantined: any access faults at once.
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <new>
#include <vector>

#include "death_test_util.h"

namespace heapguard::test {

// Sizes of small blocks: one within the 32 bytes hardened checks, one
// spanning many of them (and not a multiple of 8, so its last 16 bytes
// straddle a word boundary).
inline constexpr size_t kSmallSizes[] = {20, 4999};

class UseAfterFreeDeathTest : public DeathTestBase {};

TEST_P(UseAfterFreeDeathTest, WriteNearTheStartFoundWhenTheQuarantineDrains) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        memset(p, 0x11, n);
        free(p);
        poke(p + 5, 0x41);
        drain_quarantine();
      },
      use_after_free_report(n, 5));
}

TEST_P(UseAfterFreeDeathTest, WriteNearTheEndFoundWhenTheQuarantineDrains) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        free(p);
        poke(p + n - 3, 0x41);
        drain_quarantine();
      },
      use_after_free_report(n, n - 3));
}

// The lowest modified address is named, not the first write in time; all
// three writes are within the first 16 bytes, which every mode checks.
TEST_P(UseAfterFreeDeathTest, TheFirstModifiedByteIsNamed) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        free(p);
        poke(p + 13, 0x41);
        poke(p + 6, 0x42);
        poke(p + 14, 0x43);
        drain_quarantine();
      },
      use_after_free_report(n, 6));
}

// The edges of what hardened checks: the 16th byte from either end.
TEST_P(UseAfterFreeDeathTest, WriteToTheLastOfTheFirstSixteenBytes) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        free(p);
        poke(p + 15, 0x41);
        drain_quarantine();
      },
      use_after_free_report(n, 15));
}

TEST_P(UseAfterFreeDeathTest, WriteToTheFirstOfTheLastSixteenBytes) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        free(p);
        poke(p + n - 16, 0x41);
        drain_quarantine();
      },
      use_after_free_report(n, n - 16));
}

// A block pushed out of the quarantine by later frees goes back to the
// cache unchecked; the write is found when its slot is handed out again.
TEST_P(UseAfterFreeDeathTest, FoundWhenThePushedOutSlotIsHandedOutAgain) {
  size_t n = GetParam();
  ScopedOptions options("quarantine_size_mb=1");
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        free(p);
        poke(p + 1, 0x41);
        push_out_of_quarantine();
        hand_out_again(n);
        exit(0);
      },
      use_after_free_report(n, 1, kFoundHandedOutAgain));
}

// Pushed out, the block is not checked: quarantine pressure alone never
// reports, whatever was written (the slot is checked when it is reused).
TEST_P(UseAfterFreeDeathTest, PushedOutOfTheQuarantineWithoutAReport) {
  size_t n = GetParam();
  ScopedOptions options("quarantine_size_mb=1");
  EXPECT_EXIT(
      {
        char* p = opaque_chars(malloc(n));
        free(p);
        poke(p, 0x41);
        push_out_of_quarantine();
        // Not exit(): nothing may allocate (and reuse the slot) after this.
        _exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// Without a quarantine the freed slot goes straight back to the cache, and
// the next allocation of its size gets it: the check still runs.
TEST_P(UseAfterFreeDeathTest, FoundOnReuseWithoutAQuarantine) {
  size_t n = GetParam();
  ScopedOptions options("quarantine_size_mb=0");
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        free(p);
        poke(p + n - 1, 0x41);
        hand_out_again(n);
        exit(0);
      },
      use_after_free_report(n, n - 1, kFoundHandedOutAgain));
}

// A dangling write that reaches the freed block's own header (an underflow
// through a stale pointer) is caught wherever the block is checked.
std::string freed_header_report(const char* what) {
  return report_head("heap-metadata-corruption") + "the chunk header at 0x[0-9a-f]+ of the " + what +
         " at 0x[0-9a-f]+ failed its integrity check";
}

TEST_P(UseAfterFreeDeathTest, OverwrittenHeaderFoundWhenTheQuarantineDrains) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        free(p);
        flip(small_header(p) + 3);
        drain_quarantine();
      },
      freed_header_report("quarantined block"));
}

TEST_P(UseAfterFreeDeathTest, OverwrittenHeaderFoundWhenTheSlotIsHandedOutAgain) {
  size_t n = GetParam();
  ScopedOptions options("quarantine_size_mb=1");
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        free(p);
        flip(small_header(p) + 3);
        push_out_of_quarantine();
        hand_out_again(n);
        exit(0);
      },
      freed_header_report("freed slot") + " when the slot was handed out again");
}

TEST_P(UseAfterFreeDeathTest, OverwrittenHeaderFoundOnReuseWithoutAQuarantine) {
  size_t n = GetParam();
  ScopedOptions options("quarantine_size_mb=0");
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        free(p);
        flip(small_header(p) + 3);
        hand_out_again(n);
        exit(0);
      },
      freed_header_report("freed slot") + " when the slot was handed out again");
}

TEST_P(UseAfterFreeDeathTest, StalePointerAfterReallocMovedTheBlock) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        // Far beyond the class, so realloc must move the block.
        char* q = opaque_chars(realloc(p, n * 64));
        poke(p + 1, 0x41);
        free(q);
        drain_quarantine();
      },
      use_after_free_report(n, 1));
}

TEST_P(UseAfterFreeDeathTest, CallocAndOperatorNewBlocksToo) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(calloc(n, 1));
        free(p);
        poke(p + 2, 0x41);
        drain_quarantine();
      },
      use_after_free_report(n, 2));
  EXPECT_DEATH(
      {
        char* p = static_cast<char*>(opaque(::operator new(n)));
        ::operator delete(p);
        poke(p + 3, 0x41);
        drain_quarantine();
      },
      use_after_free_report(n, 3));
}

// Negative control: reading freed memory and freeing without touching it
// are no reason to report.
TEST_P(UseAfterFreeDeathTest, AFreeWithoutWritesIsFine) {
  size_t n = GetParam();
  EXPECT_EXIT(
      {
        char* p = opaque_chars(malloc(n));
        memset(p, 0x41, n);
        free(p);
        unsigned sum = 0;
        for (size_t i = 0; i < n; ++i) sum += peek(p + i);
        drain_quarantine();
        for (int i = 0; i < 1000; ++i) free(opaque(malloc(n)));
        drain_quarantine();
        exit(sum == 0x12345678 ? 1 : 0);
      },
      ::testing::ExitedWithCode(0), "");
}

// The same on the other path: pushed out unchecked, then reused, with and
// without a quarantine, the slot was never written and nothing reports.
TEST_P(UseAfterFreeDeathTest, ReusingSlotsThatWereNotWrittenIsFine) {
  size_t n = GetParam();
  for (const char* options : {"quarantine_size_mb=1", "quarantine_size_mb=0"}) {
    ScopedOptions scoped(options);
    EXPECT_EXIT(
        {
          std::vector<char*> blocks;
          for (int i = 0; i < 100; ++i) blocks.push_back(opaque_chars(malloc(n)));
          for (char* b : blocks) memset(b, 0x41, n);
          for (char* b : blocks) free(b);
          push_out_of_quarantine();
          hand_out_again(n, 1000);
          exit(0);
        },
        ::testing::ExitedWithCode(0), "")
        << options;
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, UseAfterFreeDeathTest, ::testing::ValuesIn(kSmallSizes));

// Large blocks: the quarantine takes their pages away.
class LargeUseAfterFreeDeathTest : public DeathTestBase {};

TEST_P(LargeUseAfterFreeDeathTest, ReadAfterFreeFaults) {
  size_t n = GetParam();
  EXPECT_EXIT(
      {
        char* p = opaque_chars(malloc(n));
        memset(p, 0x41, n);
        free(p);
        exit(peek(p + n / 2) == 0x41 ? 0 : 1);
      },
      ::testing::KilledBySignal(SIGABRT),
      fault_report("heap-use-after-free", "READ", "0x[0-9a-f]+ is located [0-9]+ bytes inside of " + region(n)));
}

TEST_P(LargeUseAfterFreeDeathTest, WriteAfterFreeFaults) {
  size_t n = GetParam();
  EXPECT_EXIT(
      {
        char* p = opaque_chars(malloc(n));
        free(p);
        poke(p, 0x41);
        exit(0);
      },
      ::testing::KilledBySignal(SIGABRT),
      fault_report("heap-use-after-free", "WRITE", "0x[0-9a-f]+ is located 0 bytes inside of " + region(n)));
}

TEST_P(LargeUseAfterFreeDeathTest, FreedAgainWhileQuarantinedIsADoubleFree) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        void* p = opaque(malloc(n));
        free(p);
        free(opaque(p));
      },
      double_free_report());
}

INSTANTIATE_TEST_SUITE_P(Sizes, LargeUseAfterFreeDeathTest, ::testing::Values(size_t{300001}, size_t{200000}));

}  // namespace heapguard::test
