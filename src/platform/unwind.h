// SPDX-License-Identifier: Apache-2.0
// Stack capture (platform layer): return addresses of the calling thread,
// innermost first, from libunwind or from a fast walk (frame pointers inside
// heapguard, cached .eh_frame rules beyond: cfi_walk.h) that is used only
// for call chains it was shown to get right. Never recurses: a capture
// that re-enters on the same thread (libunwind allocating, a signal handler)
// returns 0 frames. Never calls malloc itself; see unwind.cpp for the one
// allocation libunwind makes per thread and why the caller must allow it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heapguard::pal {

inline constexpr unsigned kMaxStackFrames = 64;

// Capture contract, shared by the three entry points:
//  * pcs[0] is a return address into the caller of the capture function,
//    then that function's caller, and so on (return addresses, not call
//    sites: symbolizers subtract 1).
//  * When heapguard is a shared object (libheapguard.so), leading frames
//    inside it are dropped except the last of them, the API entry: frame #0
//    of an allocation stack is `malloc`, `operator new`... When heapguard is
//    linked into the executable (libheapguard.a) its code cannot be told
//    apart from the program's, so nothing is trimmed: frame #0 is the
//    function that called capture_stack.
//  * Before warm_up_unwinder() has run (early init), capture_stack returns 0
//    frames; capture_stack_slow and capture_stack_from_signal fall back to an
//    unverified frame-pointer walk (a report is better with a possibly short
//    stack than with none).
//  * The caller must hold no allocator lock: libunwind's first capture on
//    each thread allocates 16 bytes (its TLS block, through ld.so's
//    __tls_get_addr), which re-enters malloc (and gets 0 frames itself).

// The mode's choice: the verified fast walk (set_unwinder(1)) or
// libunwind (set_unwinder(0)).
unsigned capture_stack(uintptr_t* pcs, unsigned max);
// libunwind always (reports). Same frame convention as capture_stack.
unsigned capture_stack_slow(uintptr_t* pcs, unsigned max);
// From a signal handler: `ucontext` is the handler's third argument
// (ucontext_t*). Frame #0 is the interrupted pc, then its callers. Not
// trimmed. Safe on an alternate signal stack.
unsigned capture_stack_from_signal(const void* ucontext, uintptr_t* pcs, unsigned max);
// Loads libunwind (dlopen, RTLD_LOCAL: see unwind.cpp), finds heapguard's
// own text range and runs a first capture so libunwind's lazy setup happens
// here. Takes the loader lock and may allocate: call once the allocator is
// ready (library constructor), never inside malloc init. Idempotent.
void warm_up_unwinder();
// 0 = libunwind, 1 = verified fast walk. Any thread, any time.
void set_unwinder(int mode);
int unwinder_mode();

// Fork hooks. libunwind keeps an internal mutex (its unwind-rule cache); a
// fork while another thread holds it would leave the child deadlocked on its
// first unwind. prepare stops new entries into libunwind (they return the
// fallback) and waits, bounded, until none is inside; parent/child reopen.
// Call prepare before taking the allocator's locks (a thread inside libunwind
// may be allocating its TLS block), the others after releasing them.
void unwinder_fork_prepare();
void unwinder_fork_parent();
void unwinder_fork_child();
// The same gate around any other code that takes the loader's lock
// (dl_iterate_phdr in the CFI decoder): glibc's fork does not reset that
// lock, so a child forked while another thread held it would hang on its
// next dl_iterate_phdr or dlopen. enter returns false while a fork is
// waiting (the caller does without); each true is paired with a leave.
bool enter_loader_section();
void leave_loader_section();

// Counters for tests and benchmarks (relaxed, approximate under threads).
struct UnwindStats {
  uint64_t fast_hits;      // captures answered by the verified fast walk
  uint64_t verifications;  // chains seen for the first time: both unwinders run
  uint64_t mismatches;     // of those, chains where the walk was wrong
  uint64_t slow;           // captures answered by libunwind
};
UnwindStats unwind_stats();

// Test and benchmark hooks.
// The raw frame-pointer walk, unverified, no trimming (benchmark baseline).
unsigned capture_stack_fp_unverified_for_testing(uintptr_t* pcs, unsigned max);
// Forgets every verdict.
void reset_unwind_verdicts_for_testing();
// Pretends [lo, hi) is heapguard's own text (exercises trimming in a static
// test binary); lo == hi == 0 restores what warm-up found.
void set_own_text_range_for_testing(uintptr_t lo, uintptr_t hi);
// Marks the calling thread as inside a capture (re-entrancy tests).
void set_capture_busy_for_testing(bool busy);
bool libunwind_available();

}  // namespace heapguard::pal
