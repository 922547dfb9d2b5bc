// SPDX-License-Identifier: Apache-2.0
// Stack capture: frames through a chain of known functions, trimming of
// heapguard's own frames, the re-entrancy guard, signal contexts, the
// .eh_frame rules and the fast walk's verdict against libunwind for code
// built without frame pointers or without CFI (assembly trampolines, so the
// test does not depend on compiler flags), and the reuse of a thread's
// previous walk.
#include <gtest/gtest.h>
#include <setjmp.h>
#include <signal.h>
#include <ucontext.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "platform/cfi_walk.h"
#include "platform/platform.h"
#include "unwind_trampolines.h"

namespace heapguard::test {
namespace {

using pal::kMaxStackFrames;
using CaptureFn = unsigned (*)(uintptr_t*, unsigned);


uintptr_t addr_of(const void* p) { return reinterpret_cast<uintptr_t>(p); }
template <typename F>
uintptr_t addr_of(F* f) {
  return reinterpret_cast<uintptr_t>(f);
}

// Whether pc is a return address inside the function starting at `fn`
// (functions here are small; 2 KiB is a generous bound).
template <typename F>
bool inside(uintptr_t pc, F* fn, uintptr_t size = 2048) {
  return pc > addr_of(fn) && pc < addr_of(fn) + size;
}

// __builtin_frame_address makes gcc and clang keep a frame pointer in the
// function, whatever -fomit-frame-pointer says, so these links are walkable.
// noipa (gcc): no clones or interprocedural shortcuts, so a function's pcs
// lie inside its own symbol.
#if defined(__clang__)
#define TEST_NOINLINE __attribute__((noinline))
#else
#define TEST_NOINLINE __attribute__((noinline, noipa))
#endif

#define KEEP_FRAME() asm volatile("" : : "r"(__builtin_frame_address(0)) : "memory")

struct Chain {
  CaptureFn capture = nullptr;
  unsigned max = kMaxStackFrames;
  uintptr_t pcs[kMaxStackFrames] = {};
  unsigned n = 0;
  uintptr_t ret_c = 0;  // return address into chain_b (recorded in chain_c)
  uintptr_t ret_b = 0;  // into chain_a, or into a trampoline
  uintptr_t ret_a = 0;  // into the test body
  uintptr_t ret_run = 0;  // into run_chain's caller
};

TEST_NOINLINE void chain_c(Chain* c) {
  KEEP_FRAME();
  c->ret_c = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  c->n = c->capture(c->pcs, c->max);
  asm volatile("" ::: "memory");
}

TEST_NOINLINE void chain_b(Chain* c) {
  KEEP_FRAME();
  c->ret_b = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  chain_c(c);
  asm volatile("" ::: "memory");
}

void chain_b_thunk(void* c) { chain_b(static_cast<Chain*>(c)); }

TEST_NOINLINE void chain_a(Chain* c) {
  KEEP_FRAME();
  c->ret_a = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  chain_b(c);
  asm volatile("" ::: "memory");
}

// a -> trampoline -> b -> c -> capture
TEST_NOINLINE void chain_a_via(Chain* c, void (*trampoline)(void (*)(void*), void*)) {
  KEEP_FRAME();
  c->ret_a = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  trampoline(&chain_b_thunk, c);
  asm volatile("" ::: "memory");
}

// Every capture of a test goes through these, so that repeated captures
// come from the same call sites (the same chain, down to the test body).
TEST_NOINLINE void run_chain(Chain* c) {
  KEEP_FRAME();
  c->ret_run = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  chain_a(c);
  asm volatile("" ::: "memory");
}

TEST_NOINLINE void run_chain_via(Chain* c, void (*trampoline)(void (*)(void*), void*)) {
  KEEP_FRAME();
  chain_a_via(c, trampoline);
  asm volatile("" ::: "memory");
}

class UnwindTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pal::warm_up_unwinder();
    ASSERT_TRUE(pal::libunwind_available()) << "libunwind.so.8 could not be loaded";
    saved_mode_ = pal::unwinder_mode();
    pal::reset_unwind_verdicts_for_testing();
  }
  void TearDown() override {
    pal::set_unwinder(saved_mode_);
    pal::set_own_text_range_for_testing(0, 0);
  }
  int saved_mode_ = 0;
};

void expect_chain(const Chain& c) {
  ASSERT_GE(c.n, 4u);
  EXPECT_TRUE(inside(c.pcs[0], &chain_c)) << std::hex << c.pcs[0];
  EXPECT_EQ(c.pcs[1], c.ret_c);
  EXPECT_EQ(c.pcs[2], c.ret_b);
  EXPECT_EQ(c.pcs[3], c.ret_a);
}

TEST_F(UnwindTest, SlowCaptureNamesEveryFunctionOfTheChain) {
  Chain c;
  c.capture = &pal::capture_stack_slow;
  run_chain(&c);
  expect_chain(c);
  EXPECT_LE(c.n, kMaxStackFrames);
}

TEST_F(UnwindTest, BothModesGiveTheSameFrames) {
  for (int mode : {0, 1}) {
    pal::set_unwinder(mode);
    for (int round = 0; round < 3; ++round) {
      Chain c;
      c.capture = &pal::capture_stack;
      run_chain(&c);
      expect_chain(c);
      Chain ref;
      ref.capture = &pal::capture_stack_slow;
      run_chain(&ref);
      ASSERT_EQ(c.n, ref.n) << "mode " << mode;
      // Frame #4 is the return address into this test body: two call sites.
      for (unsigned i = 0; i < c.n; ++i) {
        if (i != 4) EXPECT_EQ(c.pcs[i], ref.pcs[i]) << "frame " << i << " mode " << mode;
      }
    }
  }
}

TEST_F(UnwindTest, MaxLimitsTheFrames) {
  for (unsigned max : {1u, 2u, 5u}) {
    Chain c;
    c.capture = &pal::capture_stack;
    c.max = max;
    run_chain(&c);
    EXPECT_EQ(c.n, max);
    EXPECT_TRUE(inside(c.pcs[0], &chain_c));
  }
  uintptr_t pcs[1];
  EXPECT_EQ(pal::capture_stack(pcs, 0), 0u);
}

TEST_F(UnwindTest, VerifiedWalkAnswersOnceProven) {
  pal::set_unwinder(1);
  const pal::UnwindStats before = pal::unwind_stats();
  // Four frames: chain_c, chain_b, chain_a and the test body's return
  // address, all read from frames that keep a frame pointer.
  Chain first;
  first.capture = &pal::capture_stack;
  first.max = 4;
  run_chain(&first);
  expect_chain(first);
  const pal::UnwindStats mid = pal::unwind_stats();
  EXPECT_EQ(mid.verifications, before.verifications + 1);
  EXPECT_EQ(mid.mismatches, before.mismatches);
  Chain second;
  second.capture = &pal::capture_stack;
  second.max = 4;
  run_chain(&second);
  expect_chain(second);
  const pal::UnwindStats after = pal::unwind_stats();
  EXPECT_EQ(after.fast_hits, mid.fast_hits + 1);
  EXPECT_EQ(after.verifications, mid.verifications);
}

// Two threads run the same code, so their stacks hold the same return
// addresses: the first proves the chain, the second is answered by the walk.
struct ThreadCapture {
  unsigned n = 0;
  uintptr_t pcs[kMaxStackFrames] = {};
  uint64_t fast_hits = 0;
};

TEST_NOINLINE void capture_on_this_thread(ThreadCapture* out) {
  const pal::UnwindStats before = pal::unwind_stats();
  Chain c;
  c.capture = &pal::capture_stack;
  run_chain(&c);
  out->n = c.n;
  for (unsigned i = 0; i < c.n; ++i) out->pcs[i] = c.pcs[i];
  out->fast_hits = pal::unwind_stats().fast_hits - before.fast_hits;
}

// A thread's outermost frames (start_thread, clone3) have CFI but no frame
// pointers: the walk reaches them as libunwind does, and is trusted.
TEST_F(UnwindTest, WalkThroughThreadStartIsTrusted) {
  pal::set_unwinder(1);
  pal::reset_unwind_verdicts_for_testing();
  ThreadCapture first, second;
  std::thread(&capture_on_this_thread, &first).join();
  std::thread(&capture_on_this_thread, &second).join();
  ASSERT_GE(second.n, 4u);
  EXPECT_EQ(first.fast_hits, 0u);
  EXPECT_EQ(second.fast_hits, 1u) << "the second thread's capture should come from the trusted walk";
  EXPECT_EQ(second.n, first.n);
  for (unsigned i = 0; i < second.n; ++i) EXPECT_EQ(first.pcs[i], second.pcs[i]) << "frame " << i;
}

// A function without a frame pointer hides its caller from a frame-pointer
// walk; the CFI walk follows its call-frame information instead, so after
// the first capture proves the chain, the walk answers.
TEST_F(UnwindTest, FunctionWithoutFramePointerIsFollowedByItsCfi) {
  pal::set_unwinder(1);
  for (int round = 0; round < 3; ++round) {
    const pal::UnwindStats before = pal::unwind_stats();
    Chain c;
    c.capture = &pal::capture_stack;
    c.max = 6;
    run_chain_via(&c, &hg_test_nofp_call);
    ASSERT_GE(c.n, 5u);
    EXPECT_TRUE(inside(c.pcs[0], &chain_c));
    EXPECT_EQ(c.pcs[1], c.ret_c);
    EXPECT_EQ(c.pcs[2], c.ret_b);
    EXPECT_TRUE(c.pcs[2] > addr_of(&hg_test_nofp_call) && c.pcs[2] < addr_of(&hg_test_nofp_call_end));
    EXPECT_TRUE(inside(c.pcs[3], &chain_a_via)) << "the trampoline's caller was skipped: " << std::hex << c.pcs[3]
                                                << " " << addr_of(&chain_a_via) << " n " << c.n << " " << c.pcs[4];
    EXPECT_EQ(c.pcs[4], c.ret_a);
    const pal::UnwindStats after = pal::unwind_stats();
    EXPECT_EQ(after.mismatches, before.mismatches) << "round " << round;
    if (round == 0) {
      EXPECT_EQ(after.verifications, before.verifications + 1);
    } else {
      EXPECT_EQ(after.fast_hits, before.fast_hits + 1) << "round " << round;
    }
  }
  // The raw frame-pointer walk really does skip it.
  Chain raw;
  raw.capture = &pal::capture_stack_fp_unverified_for_testing;
  raw.max = 6;
  run_chain_via(&raw, &hg_test_nofp_call);
  ASSERT_GE(raw.n, 4u);
  EXPECT_FALSE(inside(raw.pcs[4], &chain_a_via));
}

// Code without call-frame information stops the CFI walk short of
// libunwind's answer: the verdict records the mismatch and every capture
// of the chain is libunwind's, frame for frame.
TEST_NOINLINE void run_nocfi_chain(Chain* c) {
  KEEP_FRAME();
  run_chain_via(c, &hg_test_nocfi_call);
  asm volatile("" ::: "memory");
}

TEST_F(UnwindTest, CodeWithoutCfiIsLeftToLibunwind) {
  pal::set_unwinder(1);
  for (int round = 0; round < 3; ++round) {
    Chain c[2];
    c[0].capture = &pal::capture_stack_slow;
    c[1].capture = &pal::capture_stack;
    pal::UnwindStats before{}, after{};
    for (int i = 0; i < 2; ++i) {
      c[i].max = 8;
      if (i == 1) before = pal::unwind_stats();
      run_nocfi_chain(&c[i]);
      if (i == 1) after = pal::unwind_stats();
    }
    ASSERT_GE(c[0].n, 3u);
    ASSERT_EQ(c[1].n, c[0].n) << "round " << round;
    // Up to the trampoline; beyond it libunwind guesses from rbp, and the
    // test body's own return address differs between the two captures.
    for (unsigned i = 0; i < 3; ++i) EXPECT_EQ(c[1].pcs[i], c[0].pcs[i]) << "round " << round << " frame " << i;
    EXPECT_EQ(c[1].pcs[2], c[1].ret_b);
    EXPECT_EQ(after.fast_hits, before.fast_hits) << "round " << round;
    if (round == 0) EXPECT_EQ(after.mismatches, before.mismatches + 1);
  }
  // The walk itself stops at the trampoline, one frame after entering it.
  const pal::CfiRule rule = pal::cfi_rule_at(addr_of(&hg_test_nocfi_call) + 1);
  EXPECT_EQ(rule.kind, pal::CfiRule::Kind::Unknown);
}

// The rules decoded from the trampolines' CFI, at each instruction that
// changes them (both start with a one-byte push).
TEST_F(UnwindTest, CfiRulesFollowTheDirectives) {
  pal::reset_cfi_cache_for_testing();
  for (int pass = 0; pass < 2; ++pass) {  // decoded, then from the cache
    const pal::CfiRule entry = pal::cfi_rule_at(addr_of(&hg_test_nofp_call));
    EXPECT_EQ(entry.kind, pal::CfiRule::Kind::SpBased);
    EXPECT_EQ(entry.cfa_offset, 8);
    EXPECT_EQ(entry.ra_offset, -8);
    EXPECT_FALSE(entry.fp_saved);
    const pal::CfiRule pushed = pal::cfi_rule_at(addr_of(&hg_test_nofp_call) + 1);
    EXPECT_EQ(pushed.kind, pal::CfiRule::Kind::SpBased);
    EXPECT_EQ(pushed.cfa_offset, 16);
    EXPECT_EQ(pushed.ra_offset, -8);
    EXPECT_FALSE(pushed.fp_saved) << "rbx is saved, not rbp";
    const pal::CfiRule fp = pal::cfi_rule_at(addr_of(&hg_test_zero_fp_call) + 1);
    EXPECT_EQ(fp.kind, pal::CfiRule::Kind::SpBased);
    EXPECT_EQ(fp.cfa_offset, 16);
    EXPECT_TRUE(fp.fp_saved);
    EXPECT_EQ(fp.fp_offset, -16);
    // Compiled code with a frame pointer: CFA from rbp after its prologue.
    const pal::CfiRule body = pal::cfi_rule_at(addr_of(&chain_a_via) + 16);
    EXPECT_EQ(body.kind, pal::CfiRule::Kind::FpBased);
    EXPECT_EQ(body.cfa_offset, 16);
    EXPECT_EQ(body.fp_offset, -16);
    EXPECT_EQ(pal::cfi_rule_at(0x1000).kind, pal::CfiRule::Kind::Unknown) << "no module maps page 1";
  }
}

// Two callers with the same code, so the frames below them can sit at the
// same addresses with the same return addresses: a walk that reuses the
// previous capture's outer frames must notice that the caller changed.
TEST_NOINLINE void via_one(Chain* c) {
  KEEP_FRAME();
  run_chain(c);
  asm volatile("" ::: "memory");
}
TEST_NOINLINE void via_two(Chain* c) {
  KEEP_FRAME();
  run_chain(c);
  asm volatile("" ::: "memory");
}

TEST_F(UnwindTest, ReusedOuterFramesFollowTheStack) {
  pal::set_unwinder(1);
  pal::reset_cfi_cache_for_testing();
  void (*const order[])(Chain*) = {&via_one, &via_two, &via_two, &via_one, &via_one, &via_two};
  for (unsigned round = 0; round < 2; ++round) {  // the second with every chain proven
    for (unsigned k = 0; k < std::size(order); ++k) {
      Chain c;
      c.capture = &pal::capture_stack;
      c.max = 16;  // malloc_context_size's default; longer walks are not reused
      const uint64_t replays = pal::cfi_walk_replays();
      order[k](&c);
      expect_chain(c);
      ASSERT_GE(c.n, 5u);
      EXPECT_EQ(c.pcs[4], c.ret_run) << "round " << round << " capture " << k << ": the caller of run_chain is wrong";
      // Straight after a capture from the same caller, the walk is reused
      // (otherwise only the frames above the test body can be).
      if (k > 0 && order[k - 1] == order[k]) EXPECT_EQ(pal::cfi_walk_replays(), replays + 1) << "capture " << k;
    }
  }
}

// One frame deeper than via_one, so the frames it shares with the previous
// capture sit at other positions of the walk.
TEST_NOINLINE void via_deeper(Chain* c) {
  KEEP_FRAME();
  via_one(c);
  asm volatile("" ::: "memory");
}

// Captures fn's chain twice: first with the thread's previous walk
// available, then from a fresh start. The two calls are at different
// addresses of this function; every other frame is the same.
TEST_NOINLINE void capture_reused_then_fresh(void (*fn)(Chain*), Chain* c) {
  KEEP_FRAME();
  fn(&c[0]);
  pal::reset_cfi_cache_for_testing();
  fn(&c[1]);
  asm volatile("" ::: "memory");
}

TEST_F(UnwindTest, ReusedFramesEqualAFreshWalk) {
  pal::set_unwinder(1);
  void (*const order[])(Chain*) = {&via_one, &via_deeper, &via_one, &via_two, &via_deeper, &via_deeper, &via_one};
  for (unsigned k = 0; k < std::size(order); ++k) {
    Chain c[2];
    for (Chain& one : c) {
      one.capture = &pal::capture_stack;
      one.max = 16;
    }
    capture_reused_then_fresh(order[k], c);
    ASSERT_EQ(c[0].n, c[1].n) << "capture " << k;
    for (unsigned i = 0; i < c[0].n; ++i) {
      if (inside(c[0].pcs[i], &capture_reused_then_fresh) && inside(c[1].pcs[i], &capture_reused_then_fresh)) continue;
      EXPECT_EQ(c[0].pcs[i], c[1].pcs[i]) << "capture " << k << " frame " << i;
    }
    EXPECT_EQ(c[0].pcs[4], c[0].ret_run) << "capture " << k;
  }
}

TEST_F(UnwindTest, ZeroedFramePointerDoesNotTruncate) {
  pal::set_unwinder(1);
  for (int round = 0; round < 2; ++round) {
    Chain c;
    c.capture = &pal::capture_stack;
    c.max = 8;
    run_chain_via(&c, &hg_test_zero_fp_call);
    ASSERT_GE(c.n, 5u);
    EXPECT_TRUE(c.pcs[2] > addr_of(&hg_test_zero_fp_call) && c.pcs[2] < addr_of(&hg_test_zero_fp_call_end));
    EXPECT_TRUE(inside(c.pcs[3], &chain_a_via));
    EXPECT_EQ(c.pcs[4], c.ret_a);
  }
}

TEST_F(UnwindTest, SlowModeNeverUsesTheWalk) {
  pal::set_unwinder(0);
  const pal::UnwindStats before = pal::unwind_stats();
  for (int i = 0; i < 3; ++i) {
    Chain c;
    c.capture = &pal::capture_stack;
    run_chain(&c);
    expect_chain(c);
  }
  const pal::UnwindStats after = pal::unwind_stats();
  EXPECT_EQ(after.fast_hits, before.fast_hits);
  EXPECT_EQ(after.slow, before.slow + 3);
}

// Functions standing in for heapguard's own code (an API entry and an
// internal helper) in a section of their own, so that the test knows their
// address range the way warm-up knows libheapguard.so's.
extern "C" const char __start_hg_test_own_text[];
extern "C" const char __stop_hg_test_own_text[];

TEST_NOINLINE __attribute__((section("hg_test_own_text"))) void fake_own_inner(Chain* c) {
  KEEP_FRAME();
  c->ret_c = reinterpret_cast<uintptr_t>(__builtin_return_address(0));  // into fake_own_entry
  c->n = c->capture(c->pcs, c->max);
  asm volatile("" ::: "memory");
}

TEST_NOINLINE __attribute__((section("hg_test_own_text"))) void fake_own_entry(Chain* c) {
  KEEP_FRAME();
  c->ret_b = reinterpret_cast<uintptr_t>(__builtin_return_address(0));  // into the "program"
  fake_own_inner(c);
  asm volatile("" ::: "memory");
}

TEST_F(UnwindTest, LeadingOwnFramesTrimmedToTheApiEntry) {
  pal::set_own_text_range_for_testing(addr_of(__start_hg_test_own_text), addr_of(__stop_hg_test_own_text));
  for (CaptureFn fn : {&pal::capture_stack, &pal::capture_stack_slow}) {
    for (int mode : {0, 1}) {
      pal::set_unwinder(mode);
      Chain c;
      c.capture = fn;
      c.max = 4;
      fake_own_entry(&c);
      ASSERT_GE(c.n, 2u);
      // Frame #0 is the last heapguard frame (the entry), then the program.
      EXPECT_EQ(c.pcs[0], c.ret_c);
      EXPECT_EQ(c.pcs[1], c.ret_b);
      EXPECT_EQ(c.n, 4u) << "trimming must not cost frames";
    }
  }
}

TEST_F(UnwindTest, ReentrantCaptureReturnsNothing) {
  uintptr_t pcs[kMaxStackFrames];
  pal::set_capture_busy_for_testing(true);
  EXPECT_EQ(pal::capture_stack(pcs, kMaxStackFrames), 0u);
  EXPECT_EQ(pal::capture_stack_slow(pcs, kMaxStackFrames), 0u);
  ucontext_t uc;
  getcontext(&uc);
  EXPECT_EQ(pal::capture_stack_from_signal(&uc, pcs, kMaxStackFrames), 0u);
  pal::set_capture_busy_for_testing(false);
  EXPECT_GT(pal::capture_stack(pcs, kMaxStackFrames), 0u);
}

std::atomic<unsigned> g_handler_frames{~0u};
void capture_in_handler(int) {
  uintptr_t pcs[kMaxStackFrames];
  g_handler_frames.store(pal::capture_stack(pcs, kMaxStackFrames));
}

TEST_F(UnwindTest, SignalDuringCaptureGetsNoFrames) {
  struct sigaction sa = {}, old = {};
  sa.sa_handler = &capture_in_handler;
  sigaction(SIGUSR1, &sa, &old);
  pal::set_capture_busy_for_testing(true);  // as if the signal hit mid-capture
  raise(SIGUSR1);
  EXPECT_EQ(g_handler_frames.load(), 0u);
  pal::set_capture_busy_for_testing(false);
  raise(SIGUSR1);
  EXPECT_GT(g_handler_frames.load(), 0u);
  sigaction(SIGUSR1, &old, nullptr);
}

// A real fault, handled on an alternate stack: frame #0 is the faulting
// instruction, frame #1 the return address into its caller.
sigjmp_buf g_fault_jump;
uintptr_t g_fault_pcs[kMaxStackFrames];
unsigned g_fault_n = 0;
uintptr_t g_fault_rip = 0;

void fault_handler(int, siginfo_t*, void* uc) {
  g_fault_rip = static_cast<uintptr_t>(static_cast<ucontext_t*>(uc)->uc_mcontext.gregs[REG_RIP]);
  g_fault_n = pal::capture_stack_from_signal(uc, g_fault_pcs, kMaxStackFrames);
  siglongjmp(g_fault_jump, 1);
}

volatile uintptr_t g_bad_address = 16;
TEST_NOINLINE int faulting_read() {
  KEEP_FRAME();
  int v = *reinterpret_cast<volatile int*>(g_bad_address);
  asm volatile("" ::: "memory");
  return v;
}

uintptr_t g_fault_caller_ret = 0;
TEST_NOINLINE int fault_caller() {
  KEEP_FRAME();
  g_fault_caller_ret = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  int v = faulting_read();
  asm volatile("" ::: "memory");
  return v + 1;
}

TEST_F(UnwindTest, FromSignalStartsAtTheFaultingPc) {
  std::vector<char> alt(1 << 16);
  stack_t ss = {}, old_ss = {};
  ss.ss_sp = alt.data();
  ss.ss_size = alt.size();
  ASSERT_EQ(sigaltstack(&ss, &old_ss), 0);
  struct sigaction sa = {}, old = {};
  sa.sa_sigaction = &fault_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigaction(SIGSEGV, &sa, &old);
  if (sigsetjmp(g_fault_jump, 1) == 0) {
    fault_caller();
    ADD_FAILURE() << "no fault";
  }
  sigaction(SIGSEGV, &old, nullptr);
  sigaltstack(&old_ss, nullptr);
  ASSERT_GE(g_fault_n, 3u);
  EXPECT_EQ(g_fault_pcs[0], g_fault_rip);
  EXPECT_TRUE(inside(g_fault_pcs[0], &faulting_read));
  EXPECT_TRUE(inside(g_fault_pcs[1], &fault_caller));
  EXPECT_EQ(g_fault_pcs[2], g_fault_caller_ret);
}

TEST_F(UnwindTest, ThreadsCaptureConcurrently) {
  pal::set_unwinder(1);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&failures, t] {
      for (int i = 0; i < 200; ++i) {
        Chain c;
        c.capture = (i + t) % 3 == 0 ? &pal::capture_stack_slow : &pal::capture_stack;
        c.max = (i % 2) ? 4 : kMaxStackFrames;
        run_chain(&c);
        if (c.n < 4 || !inside(c.pcs[0], &chain_c) || c.pcs[1] != c.ret_c || c.pcs[2] != c.ret_b ||
            c.pcs[3] != c.ret_a) {
          failures.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace heapguard::test
