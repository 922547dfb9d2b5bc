// SPDX-License-Identifier: Apache-2.0
// Stack capture (platform layer): libunwind, plus a fast walk (heapguard's
// own frames by frame pointer, the rest by cached .eh_frame rules, see
// cfi_walk.h) that answers only for call chains already shown equal to
// libunwind's answer.
// Invariants: no recursion (per-thread busy flag), no malloc of our own, no
// lock of our own; reads of stack memory stay inside the thread's stack.
//
// Why libunwind is dlopen'ed (RTLD_LOCAL) and not linked:
//  * Debian's libunwind.a is not position-independent (R_X86_64_32S in
//    Lregs.o, Linit.o, Ltrace.o, mempool.o...), so it cannot go into
//    libheapguard.so.
//  * libunwind.so.8 as a DT_NEEDED of a preloaded library joins the global
//    symbol scope, and it exports unversioned _Unwind_RaiseException & co.
//    and a weak `backtrace`. Depending on load order those would interpose
//    on libgcc_s's exception unwinder and glibc's backtrace for the whole
//    program. Opened with RTLD_LOCAL its symbols are visible only through
//    dlsym on its handle, so nothing in the program can bind to them.
//  * dlopen takes the loader lock and allocates, so it happens in
//    warm_up_unwinder (library constructor), never inside malloc.
//
// What libunwind 1.6.2 does on the local path (unw_backtrace -> tdep_trace,
// falling back to unw_step), checked by reading its source and by counting
// allocations around calls (see the report in issue 4):
//  * malloc: one 16-byte allocation per thread, on its first capture: ld.so's
//    __tls_get_addr allocating libunwind's dynamic TLS block (it is a
//    dlopen'ed module with general-dynamic TLS). It re-enters our malloc,
//    which then captures nothing (busy flag). Nothing else on the path
//    allocates with malloc: its per-thread trace cache (256 KiB, grown by 4x
//    when half full) and its mempools come from mmap. Modules without
//    .eh_frame_hdr would make it read .debug_frame with malloc; none of
//    Debian's do.
//  * locks: dl_iterate_phdr (ld.so's recursive dl_load_write_lock) on each
//    new pc, with all signals blocked around it (two sigprocmask syscalls);
//    a pthread mutex around its global unwind-rule cache, also with signals
//    blocked; pthread_once/pthread_setspecific for the trace-cache key. The
//    mutex is why unwinder_fork_prepare exists.
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <libunwind.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <ucontext.h>

#include <atomic>

#include "core/core.h"
#include "platform/cfi_walk.h"
#include "platform/platform.h"

namespace heapguard::pal {
namespace {

// Leading heapguard frames (malloc -> Allocator -> trace recording ->
// capture) captured beyond `max` so that trimming them still leaves `max`.
constexpr unsigned kOwnFrameBudget = 12;
constexpr unsigned kRawMax = kMaxStackFrames + kOwnFrameBudget;
// unw_backtrace's first entries are our own helper frames; ra0 (the return
// address into the capture function's caller) is looked for among these.
constexpr unsigned kSearchSlack = 6;

// libunwind entry points (the UNW_LOCAL_ONLY names), set once by warm-up
// before g_state becomes kReady (release), read after an acquire load.
using BacktraceFn = int (*)(void**, int);
using InitLocal2Fn = int (*)(unw_cursor_t*, unw_context_t*, int);
using StepFn = int (*)(unw_cursor_t*);
using GetRegFn = int (*)(unw_cursor_t*, unw_regnum_t, unw_word_t*);
struct Libunwind {
  BacktraceFn backtrace = nullptr;
  InitLocal2Fn init_local2 = nullptr;
  StepFn step = nullptr;
  GetRegFn get_reg = nullptr;
};
constinit Libunwind g_lib{};

enum : int { kCold = 0, kWarming = 1, kReady = 2 };
constinit std::atomic<int> g_state{kCold};
constinit std::atomic<int> g_mode{1};

// Heapguard's own executable segment when it is a shared object; empty when
// linked into the executable (nothing to trim by address then).
constinit std::atomic<uintptr_t> g_own_lo{0}, g_own_hi{0};
constinit uintptr_t g_found_lo = 0, g_found_hi = 0;

// Fork gate (see unwinder_fork_prepare): threads inside libunwind or the
// CFI decoder (both take the loader's lock) and whether a fork is waiting
// for them to leave.
constinit std::atomic<int> g_inside_libunwind{0};
constinit std::atomic<bool> g_fork_pending{false};

// Per-thread state. Initial-exec TLS (the library's flags), so reading it
// never calls __tls_get_addr and so never allocates.
constinit thread_local bool t_busy = false;
constinit thread_local uintptr_t t_stack_lo = 0, t_stack_hi = 0;
enum : uint8_t { kStackUnknown = 0, kStackKnown = 1, kStackUnavailable = 2 };
constinit thread_local uint8_t t_stack_state = kStackUnknown;
constinit thread_local UnwindStats t_stats{};

bool ready() { return g_state.load(std::memory_order_acquire) == kReady; }

// Marks the thread as capturing: a nested capture (libunwind's TLS malloc,
// a signal handler that allocates) sees it and returns 0 frames.
class BusyScope {
 public:
  BusyScope() {
    t_busy = true;
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  ~BusyScope() {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_busy = false;
  }
  BusyScope(const BusyScope&) = delete;
  BusyScope& operator=(const BusyScope&) = delete;
};

bool enter_libunwind() { return g_lib.backtrace != nullptr && enter_loader_section(); }

void leave_libunwind() { leave_loader_section(); }

// The thread's stack as glibc knows it. pthread_getattr_np allocates (its
// cpuset; for the main thread it reads /proc/self/maps through stdio), so it
// runs at most once per thread, under the busy flag, and only where the
// caller allows it (never in a signal handler).
HEAPGUARD_SLOW_PATH void query_stack_bounds() {
  pthread_attr_t attr;
  t_stack_state = kStackUnavailable;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
  void* addr = nullptr;
  size_t size = 0;
  if (pthread_attr_getstack(&attr, &addr, &size) == 0 && size != 0) {
    t_stack_lo = reinterpret_cast<uintptr_t>(addr);
    t_stack_hi = t_stack_lo + size;
    t_stack_state = kStackKnown;
  }
  pthread_attr_destroy(&attr);
}

// True when `sp` is on the thread's own stack; *hi is then its top. Every
// address in [sp, hi) is mapped, which is what makes the walk's reads safe.
// An alternate signal stack or a coroutine stack is not the thread's stack:
// no walk there.
HEAPGUARD_FAST_PATH bool stack_top(uintptr_t sp, uintptr_t* hi, bool may_query) {
  if (HEAPGUARD_UNLIKELY(t_stack_state == kStackUnknown) && may_query) query_stack_bounds();
  if (t_stack_state != kStackKnown || sp < t_stack_lo || sp >= t_stack_hi) return false;
  *hi = t_stack_hi;
  return true;
}

// Whether a frame record (saved rbp, return address) at `fp` is an aligned
// pair of words inside [lo, hi).
HEAPGUARD_FAST_PATH bool frame_on_stack(uintptr_t fp, uintptr_t lo, uintptr_t hi) {
  return fp >= lo && fp <= hi - 2 * sizeof(uintptr_t) && (fp & (sizeof(uintptr_t) - 1)) == 0;
}

// Follows saved frame pointers from `fp` (a frame whose [fp] holds the
// caller's frame pointer and [fp+8] a return address). Stops at the top of
// the stack, at a misaligned or non-increasing frame pointer, or at a null
// return address. Reads only [fp, fp+16) with fp in [lo, hi-16].
HEAPGUARD_FAST_PATH unsigned fp_walk(uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t* out, unsigned max) {
  unsigned n = 0;
  while (n < max) {
    if (!frame_on_stack(fp, lo, hi)) break;
    const auto* frame = reinterpret_cast<const uintptr_t*>(fp);
    const uintptr_t ra = frame[1];
    if (ra < 4096) break;
    out[n++] = ra;
    const uintptr_t next = frame[0];
    if (next <= fp) break;
    fp = next;
  }
  return n;
}

// ---- Verdict cache --------------------------------------------------------
// One word per chain: hash(pcs, n) with the low two bits replaced by
// "known" (bit 0) and "the walk was right" (bit 1). Open addressing with a
// short linear probe; a full neighbourhood evicts (a lost verdict only costs
// a second verification). Lock-free and fork-safe: single-word stores.
constexpr size_t kVerdictSlots = size_t{1} << 14;
constexpr unsigned kVerdictProbe = 8;
constinit std::atomic<uint64_t> g_verdicts[kVerdictSlots] = {};

enum class Verdict : uint8_t { Unknown, Right, Wrong };

Verdict lookup_verdict(uint64_t h) {
  const uint64_t key = h & ~uint64_t{3};
  for (unsigned i = 0; i < kVerdictProbe; ++i) {
    const uint64_t e = g_verdicts[(h + i) & (kVerdictSlots - 1)].load(std::memory_order_relaxed);
    if (e == 0) return Verdict::Unknown;
    if ((e & ~uint64_t{3}) == key) return (e & 2) ? Verdict::Right : Verdict::Wrong;
  }
  return Verdict::Unknown;
}

void record_verdict(uint64_t h, bool right) {
  const uint64_t key = h & ~uint64_t{3};
  const uint64_t entry = key | 1 | (right ? 2 : 0);
  for (unsigned i = 0; i < kVerdictProbe; ++i) {
    auto& slot = g_verdicts[(h + i) & (kVerdictSlots - 1)];
    uint64_t e = slot.load(std::memory_order_relaxed);
    if (e == 0 && slot.compare_exchange_strong(e, entry, std::memory_order_relaxed)) return;
    if ((e & ~uint64_t{3}) == key) {
      slot.store(entry, std::memory_order_relaxed);
      return;
    }
  }
  g_verdicts[h & (kVerdictSlots - 1)].store(entry, std::memory_order_relaxed);
}

// ---- Capture ----------------------------------------------------------------

unsigned raw_frames_needed(unsigned max) {
  const unsigned budget = g_own_hi.load(std::memory_order_relaxed) != 0 ? kOwnFrameBudget : 0;
  const unsigned need = max + budget;
  return need < kRawMax ? need : kRawMax;
}

// Drops leading frames inside heapguard except the last one, copies at most
// `max` frames to `out`.
unsigned finish(const uintptr_t* raw, unsigned n, uintptr_t* out, unsigned max) {
  const uintptr_t lo = g_own_lo.load(std::memory_order_relaxed);
  const uintptr_t hi = g_own_hi.load(std::memory_order_relaxed);
  unsigned start = 0;
  if (hi > lo) {
    unsigned own = 0;
    while (own < n && raw[own] >= lo && raw[own] < hi) ++own;
    if (own > 0) start = own - 1;
  }
  unsigned count = n - start;
  if (count > max) count = max;
  for (unsigned i = 0; i < count; ++i) out[i] = raw[start + i];
  return count;
}

// libunwind's answer starting at ra0, at most `need` frames. unw_backtrace
// (libunwind's cached fast trace, with its own unw_step fallback) reports
// our helper frames first; ra0 marks where the caller's part begins.
HEAPGUARD_SLOW_PATH unsigned libunwind_raw(uintptr_t ra0, uintptr_t* out, unsigned need) {
  if (!enter_libunwind()) return 0;
  void* buf[kRawMax + kSearchSlack];
  int got;
  {
    ScopedErrno keep;
    got = g_lib.backtrace(buf, static_cast<int>(need + kSearchSlack));
  }
  leave_libunwind();
  for (int i = 0; i < got && i <= static_cast<int>(kSearchSlack); ++i) {
    if (reinterpret_cast<uintptr_t>(buf[i]) != ra0) continue;
    unsigned n = 0;
    for (int j = i; j < got && n < need; ++j) out[n++] = reinterpret_cast<uintptr_t>(buf[j]);
    return n;
  }
  return 0;
}

// The walk without libunwind, for reports when libunwind is missing, and
// for the benchmark baseline. Never queries the stack bounds (may be early
// in init or in a signal handler).
unsigned unverified_walk(uintptr_t fp0, uintptr_t* out, unsigned need) {
  uintptr_t hi;
  if (!stack_top(fp0, &hi, false)) return 0;
  return fp_walk(fp0, fp0, hi, out, need);
}

// The fast walk: heapguard's own frames (all built with frame pointers)
// by their saved rbp, then, from the first frame outside heapguard (the
// program's call into malloc), the CFI walk, which needs no frame pointers.
// Each step starts from the caller's registers as they are when the callee
// returns: pc = the return address, rsp just above it, rbp as saved.
// Writes the frames already trimmed as finish() trims them: the last own
// frame (the API entry), then the program's.
HEAPGUARD_FAST_PATH unsigned walk(uintptr_t fp, uintptr_t hi, uintptr_t* out, unsigned max) {
  const uintptr_t own_lo = g_own_lo.load(std::memory_order_relaxed);
  const uintptr_t own_hi = g_own_hi.load(std::memory_order_relaxed);
  const uintptr_t lo = fp;
  uintptr_t last_own = 0;
  for (unsigned own = 0; own < kOwnFrameBudget + 1; ++own) {
    if (!frame_on_stack(fp, lo, hi)) return 0;
    const auto* frame = reinterpret_cast<const uintptr_t*>(fp);
    const uintptr_t ra = frame[1];
    const uintptr_t caller_fp = frame[0];
    if (ra < own_lo || ra >= own_hi) {
      unsigned n = 0;
      if (last_own != 0) out[n++] = last_own;
      if (n == max) return n;
      return n + cfi_walk(ra, fp + 2 * sizeof(uintptr_t), caller_fp, hi, out + n, max - n);
    }
    last_own = ra;
    if (caller_fp <= fp) return 0;
    fp = caller_fp;
  }
  return 0;  // deeper inside heapguard than it ever is: leave it to libunwind
}

// Capture overview:
//   capture_stack / capture_stack_slow  (noinline: ra0 and fp0 are theirs)
//     busy flag, ready check
//     capture_impl(mode)
//       mode 1: walk (own frames by rbp, then CFI; trimmed) -> hash_words -> lookup_verdict
//                 Right   -> the walk's frames                (fast path)
//                 Unknown -> libunwind_raw + finish, compare, record -> libunwind's
//                 Wrong   -> fall through
//       libunwind_raw -> finish
unsigned capture_impl(uintptr_t ra0, uintptr_t fp0, uintptr_t* out, unsigned max, int mode) {
  const unsigned need = raw_frames_needed(max);
  uintptr_t raw[kRawMax];
  if (mode == 1) {
    uintptr_t hi;
    if (stack_top(fp0, &hi, true)) {
      const unsigned n = walk(fp0, hi, out, max);
      if (n > 0) {
        const uint64_t h = hash_words(out, n, 0x243f6a8885a308d3ULL);  // the chain's identity
        const Verdict v = lookup_verdict(h);
        if (v == Verdict::Right) {
          ++t_stats.fast_hits;
          return n;
        }
        if (v == Verdict::Unknown) {
          const unsigned m_raw = libunwind_raw(ra0, raw, need);
          if (m_raw == 0) return 0;  // fork pending or libunwind failed: nothing proven
          uintptr_t ref[kMaxStackFrames];
          const unsigned m = finish(raw, m_raw, ref, max);
          // Right only when the walk found exactly libunwind's frames: the
          // CFI walk reaches the outermost frame (_start, clone3) as
          // libunwind does, and a walk that stopped short (a rule it does
          // not follow) must not be trusted for the chain, since the same
          // chain can be entered again from deeper callers.
          bool same = m == n;
          for (unsigned i = 0; same && i < n; ++i) same = out[i] == ref[i];
          record_verdict(h, same);
          ++t_stats.verifications;
          if (!same) ++t_stats.mismatches;
          for (unsigned i = 0; i < m; ++i) out[i] = ref[i];
          return m;
        }
      }
    }
  }
  ++t_stats.slow;
  const unsigned m = libunwind_raw(ra0, raw, need);
  return finish(raw, m, out, max);
}

struct OwnObjectSearch {
  uintptr_t target;
  unsigned index;
  bool found;
  bool is_main_program;
  uintptr_t lo, hi;
};

int find_own_object(dl_phdr_info* info, size_t, void* data) {
  auto* s = static_cast<OwnObjectSearch*>(data);
  const unsigned index = s->index++;
  for (unsigned i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
    const uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    const uintptr_t hi = lo + ph.p_memsz;
    if (s->target < lo || s->target >= hi) continue;
    s->found = true;
    // The first object dl_iterate_phdr reports is the executable.
    s->is_main_program = index == 0;
    s->lo = lo;
    s->hi = hi;
    return 1;
  }
  return 0;
}

}  // namespace

HEAPGUARD_SLOW_PATH unsigned capture_stack(uintptr_t* pcs, unsigned max) {
  if (max == 0 || t_busy) return 0;
  BusyScope busy;
  if (!ready()) return 0;
  if (max > kMaxStackFrames) max = kMaxStackFrames;
  const auto ra0 = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  const auto fp0 = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  return capture_impl(ra0, fp0, pcs, max, g_mode.load(std::memory_order_relaxed));
}

HEAPGUARD_SLOW_PATH unsigned capture_stack_slow(uintptr_t* pcs, unsigned max) {
  if (max == 0 || t_busy) return 0;
  BusyScope busy;
  if (max > kMaxStackFrames) max = kMaxStackFrames;
  const auto ra0 = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  const auto fp0 = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  if (ready() && g_lib.backtrace != nullptr) return capture_impl(ra0, fp0, pcs, max, 0);
  uintptr_t raw[kRawMax];
  return finish(raw, unverified_walk(fp0, raw, raw_frames_needed(max)), pcs, max);
}

unsigned capture_stack_from_signal(const void* ucontext, uintptr_t* pcs, unsigned max) {
  if (ucontext == nullptr || max == 0 || t_busy) return 0;
  BusyScope busy;
  if (max > kMaxStackFrames) max = kMaxStackFrames;
  // libunwind reads the registers in place and never writes them on the
  // local unwind path; the cast only matches its prototype.
  auto* uc = static_cast<ucontext_t*>(const_cast<void*>(ucontext));
  unsigned n = 0;
  if (ready() && enter_libunwind()) {
    ScopedErrno keep;
    unw_cursor_t cursor;
    if (g_lib.init_local2(&cursor, uc, UNW_INIT_SIGNAL_FRAME) == 0) {
      do {
        unw_word_t ip = 0;
        if (g_lib.get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0) break;
        pcs[n++] = ip;
      } while (n < max && g_lib.step(&cursor) > 0);
    }
    leave_libunwind();
  }
  if (n > 0) return n;
  // Fallback: the interrupted pc, then the frame-pointer chain if the
  // interrupted code was on the thread's own (already measured) stack.
  const auto& gregs = uc->uc_mcontext.gregs;
  pcs[n++] = static_cast<uintptr_t>(gregs[REG_RIP]);
  uintptr_t hi;
  const auto sp = static_cast<uintptr_t>(gregs[REG_RSP]);
  if (n < max && stack_top(sp, &hi, false)) n += fp_walk(static_cast<uintptr_t>(gregs[REG_RBP]), sp, hi, pcs + n, max - n);
  return n;
}

void warm_up_unwinder() {
  int expected = kCold;
  if (!g_state.compare_exchange_strong(expected, kWarming, std::memory_order_acq_rel)) return;
  {
    ScopedErrno keep;
    OwnObjectSearch search{reinterpret_cast<uintptr_t>(&warm_up_unwinder), 0, false, false, 0, 0};
    dl_iterate_phdr(find_own_object, &search);
    if (search.found && !search.is_main_program) {
      g_found_lo = search.lo;
      g_found_hi = search.hi;
      g_own_lo.store(search.lo, std::memory_order_relaxed);
      g_own_hi.store(search.hi, std::memory_order_relaxed);
    }
    // RTLD_LOCAL: see the file comment. RTLD_NOW: no lazy binding (and its
    // loader lock) later, inside a capture.
    if (void* handle = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL)) {
      Libunwind lib;
      lib.backtrace = reinterpret_cast<BacktraceFn>(dlsym(handle, "unw_backtrace"));
      lib.init_local2 = reinterpret_cast<InitLocal2Fn>(dlsym(handle, "_ULx86_64_init_local2"));
      lib.step = reinterpret_cast<StepFn>(dlsym(handle, "_ULx86_64_step"));
      lib.get_reg = reinterpret_cast<GetRegFn>(dlsym(handle, "_ULx86_64_get_reg"));
      if (lib.backtrace != nullptr && lib.init_local2 != nullptr && lib.step != nullptr && lib.get_reg != nullptr) {
        g_lib = lib;
      }
    }
  }
  g_state.store(kReady, std::memory_order_release);
  // First captures on this thread: libunwind's trace cache, key and TLS
  // block, and this thread's stack bounds, set up here rather than in malloc.
  uintptr_t pcs[kMaxStackFrames];
  capture_stack_slow(pcs, kMaxStackFrames);
  capture_stack(pcs, kMaxStackFrames);
}

void set_unwinder(int mode) { g_mode.store(mode == 1 ? 1 : 0, std::memory_order_relaxed); }
int unwinder_mode() { return g_mode.load(std::memory_order_relaxed); }

void unwinder_fork_prepare() {
  g_fork_pending.store(true, std::memory_order_seq_cst);
  // Bounded: a thread stopped inside libunwind (by a debugger, or blocked in
  // a signal handler) must not hang fork forever. Past the bound the fork
  // goes ahead with the old risk.
  for (unsigned i = 0; i < 100000 && g_inside_libunwind.load(std::memory_order_seq_cst) != 0; ++i) sched_yield();
}

void unwinder_fork_parent() { g_fork_pending.store(false, std::memory_order_release); }

void unwinder_fork_child() {
  // Only the forking thread exists in the child, and it is not inside libunwind.
  g_inside_libunwind.store(0, std::memory_order_relaxed);
  g_fork_pending.store(false, std::memory_order_release);
}

bool enter_loader_section() {
  // Dekker pairing with unwinder_fork_prepare: both sides are seq_cst, so
  // either the preparer sees our count or we see its flag.
  g_inside_libunwind.fetch_add(1, std::memory_order_seq_cst);
  if (HEAPGUARD_UNLIKELY(g_fork_pending.load(std::memory_order_seq_cst))) {
    g_inside_libunwind.fetch_sub(1, std::memory_order_seq_cst);
    return false;
  }
  return true;
}

void leave_loader_section() { g_inside_libunwind.fetch_sub(1, std::memory_order_release); }

UnwindStats unwind_stats() { return t_stats; }

HEAPGUARD_SLOW_PATH unsigned capture_stack_fp_unverified_for_testing(uintptr_t* pcs, unsigned max) {
  if (max > kMaxStackFrames) max = kMaxStackFrames;
  const auto fp0 = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  uintptr_t hi;
  if (!stack_top(fp0, &hi, true)) return 0;
  return fp_walk(fp0, fp0, hi, pcs, max);
}

void reset_unwind_verdicts_for_testing() {
  for (auto& slot : g_verdicts) slot.store(0, std::memory_order_relaxed);
}

void set_own_text_range_for_testing(uintptr_t lo, uintptr_t hi) {
  if (lo == 0 && hi == 0) {
    lo = g_found_lo;
    hi = g_found_hi;
  }
  g_own_lo.store(lo, std::memory_order_relaxed);
  g_own_hi.store(hi, std::memory_order_relaxed);
}

void set_capture_busy_for_testing(bool busy) { t_busy = busy; }

bool libunwind_available() { return ready() && g_lib.backtrace != nullptr; }

}  // namespace heapguard::pal
