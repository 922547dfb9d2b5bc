// SPDX-License-Identifier: Apache-2.0
// A stack walk driven by the call-frame information (.eh_frame) every
// x86-64 module carries, frame pointers or not. Code built without frame
// pointers (Debian's libraries, most programs) defeats a frame-pointer walk;
// libunwind follows it but costs ~160 ns per capture, mostly fixed set-up.
// This walk keeps one decoded rule per return address in a lock-free cache,
// so a capture is a few loads per frame once the program's call sites have
// been seen. unwind.cpp still checks each new call chain against libunwind
// before trusting this walk for it.
//
// Only what a return-address walk needs is decoded: how to find the
// canonical frame address (CFA = rsp or rbp plus a constant), where the
// caller's rbp and the return address were saved. Anything else (DWARF
// expressions, signal frames, registers saved in registers) makes the rule
// Unknown and the walk stops there. Rules are never evicted on dlclose: a
// module loaded where another was unloaded could be walked with stale rules
// (every read stays on the stack, so the cost is a wrong frame, and a new
// chain is checked against libunwind before it is trusted).
#pragma once
#include <cstdint>

namespace heapguard::pal {

struct CfiRule {
  enum class Kind : uint8_t {
    Unknown,    // no FDE, or a rule this walk does not follow
    SpBased,    // CFA = caller-visible rsp + cfa_offset
    FpBased,    // CFA = rbp + cfa_offset
    Outermost,  // the return address is undefined: the stack's first frame
  };
  Kind kind = Kind::Unknown;
  bool fp_saved = false;   // the caller's rbp is at CFA + fp_offset (else unchanged)
  int32_t cfa_offset = 0;
  int32_t fp_offset = 0;
  int32_t ra_offset = 0;   // the return address is at CFA + ra_offset
};

// The rule in force at `pc` (an address inside a function; for a return
// address pass ra - 1, the call instruction). Cached; a miss reads the
// module's .eh_frame_hdr and .eh_frame, finding the module with
// dl_iterate_phdr (the loader's lock; never malloc). Not for signal handlers.
CfiRule cfi_rule_at(uintptr_t pc);

// Walks from a frame whose registers are (pc, sp, fp): out[0] = pc, then
// each caller's return address, at most `max`. `sp` must be on the thread's
// stack, whose top is `hi`; every read is inside [sp, hi), and the CFA must
// grow from frame to frame. Stops at the outermost frame, at a frame it
// cannot follow, or at `max`.
unsigned cfi_walk(uintptr_t pc, uintptr_t sp, uintptr_t fp, uintptr_t hi, uintptr_t* out, unsigned max);

// Captures on this thread that reused the thread's previous walk for
// their outer frames (tests and benchmarks).
uint64_t cfi_walk_replays();

// Forgets every cached rule and the thread's previous walk (tests).
void reset_cfi_cache_for_testing();

}  // namespace heapguard::pal
