// SPDX-License-Identifier: Apache-2.0
// Attack 1, tcache / fastbin poisoning: a use-after-free write replaces a
// freed block's next pointer with an address the attacker chose, and the
// following allocations are expected to return that address. heapguard
// keeps no pointers in freed blocks (bins are out-of-line arrays, quarantine
// entries live in their own ring, both encoded), so no allocation may ever
// return the chosen address in any mode; with write-after-free checks
// (hardened, debug, fuzz) the write itself is reported, when the quarantine
// is drained or when the block's slot is handed out again.
#include <unistd.h>

#include <cstring>

#include "death_test_util.h"

namespace heapguard::test {

alignas(64) char g_target[512];

// What the attacker hopes malloc will return: a global, and the stack.
bool attacker_chosen(const char* p, const char* stack_target) {
  return (p >= g_target && p < g_target + sizeof g_target) || (p >= stack_target && p < stack_target + 512);
}

[[noreturn]] void overlap_found(const char* what) {
  (void)!write(2, what, strlen(what));
  _exit(3);
}

// Frees two blocks and poisons every word of the first 64 bytes of the
// last one freed (where a free-list link would be; all modes check at least
// its first 16) with the target.
char* free_two_and_poison(size_t n, char* target) {
  char* a = opaque_chars(malloc(n));
  char* b = opaque_chars(malloc(n));
  free(b);
  free(a);
  uintptr_t forged = reinterpret_cast<uintptr_t>(target);
  for (size_t k = 0; k + 8 <= n && k < 64; k += 8) memcpy(opaque(a + k), &forged, 8);
  return a;
}

void allocate_and_check(size_t n, int count, const char* stack_buf) {
  for (int i = 0; i < count; ++i) {
    char* p = opaque_chars(malloc(n));
    if (attacker_chosen(p, stack_buf)) overlap_found("malloc returned the address written into a freed block\n");
  }
}

// Allocates well past the point where a LIFO free list would have handed
// out the target (nothing is freed meanwhile, so the poisoned block stays
// in the quarantine where there is one), drains the quarantine, frees and
// allocates again, and exits 0.
[[noreturn]] void poison_then_drain(size_t n, bool stack) {
  alignas(64) char stack_buf[512];
  opaque(stack_buf);
  free_two_and_poison(n, stack ? stack_buf : g_target + 64);
  char* got[2000];
  for (char*& p : got) {
    p = opaque_chars(malloc(n));
    if (attacker_chosen(p, stack_buf)) overlap_found("malloc returned the address written into a freed block\n");
  }
  drain_quarantine();
  for (char* p : got) free(p);
  drain_quarantine();
  allocate_and_check(n, 100, stack_buf);
  _exit(0);
}

// The quarantine gives the poisoned block back without a check (pushed out
// by later frees, quarantine_size_mb=1), and the attacker keeps allocating
// its size: the slot is checked as it is handed out again.
[[noreturn]] void poison_then_push_out_and_allocate(size_t n, bool stack) {
  alignas(64) char stack_buf[512];
  opaque(stack_buf);
  free_two_and_poison(n, stack ? stack_buf : g_target + 64);
  push_out_of_quarantine();
  allocate_and_check(n, 2000, stack_buf);
  _exit(0);
}

std::string expectation(size_t n, const char* found) {
  return report_head("heap-use-after-free") + "0x[0-9a-f]+ is located [0-9]+ bytes inside of " + region(n) +
         "\nthe block was written after it was freed\nthe write was found " + found;
}

class NextPointerPoisoningTest : public DeathTestBase {};

TEST_P(NextPointerPoisoningTest, TargetInAGlobal) {
  size_t n = GetParam();
  if (hardening_mode()) {
    EXPECT_DEATH(poison_then_drain(n, false), expectation(n, kFoundLeavingQuarantine));
  } else {
    EXPECT_EXIT(poison_then_drain(n, false), ::testing::ExitedWithCode(0), "");
  }
}

TEST_P(NextPointerPoisoningTest, TargetOnTheStack) {
  size_t n = GetParam();
  if (hardening_mode()) {
    EXPECT_DEATH(poison_then_drain(n, true), expectation(n, kFoundLeavingQuarantine));
  } else {
    EXPECT_EXIT(poison_then_drain(n, true), ::testing::ExitedWithCode(0), "");
  }
}

TEST_P(NextPointerPoisoningTest, TargetInAGlobalAfterTheQuarantineGaveTheBlockBack) {
  size_t n = GetParam();
  if (hardening_mode()) {
    ScopedOptions options("quarantine_size_mb=1");
    EXPECT_DEATH(poison_then_push_out_and_allocate(n, false), expectation(n, kFoundHandedOutAgain));
  } else {
    EXPECT_EXIT(poison_then_push_out_and_allocate(n, false), ::testing::ExitedWithCode(0), "");
  }
}

TEST_P(NextPointerPoisoningTest, TargetOnTheStackAfterTheQuarantineGaveTheBlockBack) {
  size_t n = GetParam();
  if (hardening_mode()) {
    ScopedOptions options("quarantine_size_mb=1");
    EXPECT_DEATH(poison_then_push_out_and_allocate(n, true), expectation(n, kFoundHandedOutAgain));
  } else {
    EXPECT_EXIT(poison_then_push_out_and_allocate(n, true), ::testing::ExitedWithCode(0), "");
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, NextPointerPoisoningTest, ::testing::Values(size_t{24}, size_t{112}, size_t{5000}));

}  // namespace heapguard::test
