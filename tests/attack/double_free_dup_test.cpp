// SPDX-License-Identifier: Apache-2.0
// Attack 2, fastbin dup / tcache dup: free a block twice so that two later
// allocations return it, and two "different" objects overlap. The second
// free must be reported in every mode, also with other frees in between
// (free(a); free(b); free(a) defeats glibc's fastbin top check), from
// another thread, and through realloc. A replay at the same address (the
// attacker restores the block's allocated header before the second free)
// is caught in hardened, debug and fuzz before the slot reaches two owners;
// in fast mode it is a documented limit (docs/hardening.md, section 1,
// "Header replay in fast mode"), asserted as such below.
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "death_test_util.h"

namespace heapguard::test {

// Allocates `count` blocks of n bytes and exits 3 if two are the same.
void check_no_duplicates(size_t n, int count) {
  std::vector<char*> got;
  for (int i = 0; i < count; ++i) got.push_back(opaque_chars(malloc(n)));
  std::sort(got.begin(), got.end());
  if (std::adjacent_find(got.begin(), got.end()) != got.end()) {
    const char msg[] = "the same block was handed out twice\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(3);
  }
}

[[noreturn]] void fail_if_duplicated(size_t n) {
  // Reached only if the double free went unreported: show what it bought,
  // straight away (a LIFO cache) and once the quarantine gave blocks back.
  int count = is_large(n) ? 16 : 300;
  check_no_duplicates(n, count);
  drain_quarantine();
  check_no_duplicates(n, count);
  _exit(0);
}

std::string dup_report(size_t n, const char* api = "free\\(\\)") {
  // Without a quarantine a freed large mapping is gone from the table:
  // still a report, as an invalid free.
  if (is_large(n) && !hardening_mode()) return report_head("invalid-free") + "0x[0-9a-f]+ (is not a heap address: nothing is mapped there|was not allocated by heapguard: it points into)[^\n]*a large block already freed";
  return double_free_report(api);
}

// Once the block went back to its slab and the slab was returned to the OS
// (fast mode, many frees in between), the slab's record of slots ever used
// still tells a double free.
std::string dup_or_purged_report(size_t n) {
  if (hardening_mode()) return dup_report(n);
  return report_head("double-free") + "0x[0-9a-f]+ is (located 0 bytes inside of " + any_region() +
         "\nthe block is already free \\(or waiting in quarantine\\)|the start of a block that was already freed \\(its memory has since been returned to "
         "the OS\\))\nthe pointer was passed to free\\(\\)";
}

class DoubleFreeDupTest : public DeathTestBase {};

TEST_P(DoubleFreeDupTest, FreeAFreeBFreeA) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        void* a = opaque(malloc(n));
        void* b = opaque(malloc(n));
        free(a);
        free(b);
        free(opaque(a));
        fail_if_duplicated(n);
      },
      dup_report(n));
}

TEST_P(DoubleFreeDupTest, ManyFreesInBetween) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        void* a = opaque(malloc(n));
        void* others[300];
        for (void*& o : others) o = opaque(malloc(n));
        free(a);
        for (void* o : others) free(o);
        free(opaque(a));
        fail_if_duplicated(n);
      },
      dup_or_purged_report(n));
}

TEST_P(DoubleFreeDupTest, SecondFreeOnAnotherThread) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        // The thread exists first: its own start-up allocations could
        // otherwise take a's slot and make the second free legitimate.
        void* a = opaque(malloc(n));
        std::atomic<bool> go{false};
        std::thread t([a, &go] {
          while (!go.load()) {
          }
          free(opaque(a));
        });
        free(a);
        go.store(true);
        t.join();
        fail_if_duplicated(n);
      },
      dup_report(n));
}

TEST_P(DoubleFreeDupTest, SecondReleaseThroughRealloc) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        void* a = opaque(malloc(n));
        free(a);
        (void)opaque(realloc(opaque(a), n / 2));
        fail_if_duplicated(n);
      },
      dup_report(n, "realloc\\(\\)"));
}

// Saves a's allocated header, frees a, writes the header back (a write-
// after-free primitive) and frees a again, then shows what that bought.
[[noreturn]] void replay_header_and_free_again(size_t n) {
  char* a = opaque_chars(malloc(n));
  char* header = small_header(a);
  uint64_t saved;
  memcpy(&saved, header, 8);
  free(a);
  memcpy(opaque(header), &saved, 8);
  free(opaque(a));
  fail_if_duplicated(n);
}

// Fast mode keeps a block's state only in its keyed header, so a restored
// header makes the second free look valid: docs/hardening.md (section 1,
// "Header replay in fast mode") documents that fast mode accepts it and
// hands the block out twice. That documented outcome is what fast mode must
// show; the other modes must not reach it.
TEST_P(DoubleFreeDupTest, SecondFreeAfterTheHeaderWasRestored) {
  size_t n = GetParam();
  if (mode_is("fast")) {
    EXPECT_EXIT(replay_header_and_free_again(n), ::testing::ExitedWithCode(3), "the same block was handed out twice");
    return;
  }
  // The slot reaches a cache twice; whichever comes first of the two
  // reports (a quarantine check of the header, or the slot about to be
  // handed out while its header says live) ends the process before the
  // block has two owners.
  EXPECT_DEATH(replay_header_and_free_again(n),
               "(" + report_head("double-free") +
                   "the slot at 0x[0-9a-f]+ was about to be handed out while its header says its block is live|" +
                   report_head("heap-metadata-corruption") + ")");
}

INSTANTIATE_TEST_SUITE_P(Sizes, DoubleFreeDupTest, ::testing::ValuesIn(kSlabDeathSizes));

// The large-block form: in quarantine the block is inaccessible and known
// to the large-block table; without a quarantine its mapping is gone.
class LargeDoubleFreeDupTest : public DeathTestBase {};

TEST_P(LargeDoubleFreeDupTest, FreeAFreeBFreeA) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        void* a = opaque(malloc(n));
        void* b = opaque(malloc(n));
        free(a);
        free(b);
        free(opaque(a));
        fail_if_duplicated(n);
      },
      dup_report(n));
}

INSTANTIATE_TEST_SUITE_P(Sizes, LargeDoubleFreeDupTest, ::testing::Values(size_t{300000}));

}  // namespace heapguard::test
