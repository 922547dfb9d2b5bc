// SPDX-License-Identifier: Apache-2.0
// Leak check at exit (layer frontend, detect_leaks=1, debug mode). With
// every other thread stopped, a conservative mark phase from the program's
// roots (writable segments of loaded modules, thread stacks from their
// saved sp, saved registers, each thread's static TLS block and descriptor)
// over every live block, interior pointers included; live blocks never
// reached are reported as memory-leak, grouped by allocation stack, and the
// process exits with exitcode. A block still reachable is never reported.
// Never allocates: blocks, worklist and groups live in mapped memory.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ds/ds.h"

namespace heapguard {

// The allocation trace of the live block whose user pointer is `user`
// (frontend block traces; implemented by the allocator). Called with the
// world stopped: it must take no lock another thread may hold.
TraceRef block_allocation_trace(uintptr_t user);

// Enumerates live blocks of another heap (the guarded pool): calls fn for
// every live block, without locks (the world is stopped), never for freed
// or quarantined ones.
using LiveBlockFn = void (*)(uintptr_t user, size_t requested, void* ctx);
using LiveBlockEnumerator = void (*)(LiveBlockFn fn, void* ctx);
// Registered once at init, before run_leak_check can run.
void set_leak_guarded_enumerator(LiveBlockEnumerator enumerate);

struct LeakTotals {
  size_t live_blocks = 0;
  size_t direct_blocks = 0, direct_bytes = 0;
  size_t indirect_blocks = 0, indirect_bytes = 0;
  size_t groups_reported = 0;          // after suppressions
  unsigned threads_not_scanned = 0;    // never answered, sp unknown
};

// The exit hook: runs the check when options().detect_leaks is set in
// debug mode, writes the report, and ends the process with
// options().exitcode (after flushing stdio) when a leak group was
// reported. Returns otherwise. Call it once, from an atexit handler
// registered after init, so it runs after the program's own handlers and
// static destructors.
void run_leak_check();

// The check itself, whatever the options; reports and returns the totals
// without exiting. For tests and for run_leak_check.
LeakTotals check_for_leaks();

}  // namespace heapguard
