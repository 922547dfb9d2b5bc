// SPDX-License-Identifier: Apache-2.0
// Fault signal handlers and alternate stacks (see signals.h). Async-signal
// safety: the handler touches only constinit globals, TLS of the
// initial-exec model, sigaction, sigaltstack, raise and write.
#include "platform/signals.h"

#include <errno.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>

#include "platform/platform.h"

namespace heapguard::pal {
namespace {

// Room for the report path: stack capture, symbolization and formatting
// use fixed buffers on the stack. Address space only until touched.
constexpr size_t kAltStackBytes = size_t{256} << 10;

constinit std::atomic<FaultCallback> g_callback{nullptr};
constinit std::atomic<bool> g_installed{false};
// The actions in place before heapguard's, written once at install (and
// for SA_RESETHAND, when the program's handler is first called).
constinit struct sigaction g_prev_segv {};
constinit struct sigaction g_prev_bus {};

constinit thread_local uintptr_t t_alt_stack = 0;  // our mapping (guard page first)
constinit thread_local bool t_alt_checked = false;
constinit thread_local bool t_alt_charged = false;  // its guard page cost one mapping split
constinit thread_local bool t_in_handler = false;

struct sigaction* prev_for(int signo) { return signo == SIGBUS ? &g_prev_bus : &g_prev_segv; }

void write_str(const char* s) {
  size_t n = 0;
  while (s[n] != '\0') ++n;
  Linux::write_all(2, s, n);
}

void set_default(int signo) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(signo, &dfl, nullptr);
}

FaultAccess access_of(const ucontext_t* uc) {
#if defined(__x86_64__)
  // Page-fault error code: bit 1 set for a write.
  return (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0 ? FaultAccess::Write : FaultAccess::Read;
#else
  (void)uc;
  return FaultAccess::Unknown;
#endif
}

void on_fault(int signo, siginfo_t* info, void* uctx) {
  int saved_errno = errno;
  if (t_in_handler) {
    // A fault while explaining a fault: nothing more can be said safely.
    write_str("==HeapGuard: fault inside the fault handler; giving up\n");
    set_default(signo);
    errno = saved_errno;
    return;  // re-executes and dies of the default action
  }
  FaultCallback cb = g_callback.load(std::memory_order_acquire);
  // si_code <= 0: sent by kill()/raise(), not an access: never heapguard's.
  if (cb != nullptr && info != nullptr && info->si_code > 0) {
    FaultInfo fi;
    fi.signo = signo;
    fi.code = info->si_code;
    fi.address = reinterpret_cast<uintptr_t>(info->si_addr);
    fi.ucontext = uctx;
    fi.pc = context_pc(uctx);
    fi.access = uctx != nullptr ? access_of(static_cast<const ucontext_t*>(uctx)) : FaultAccess::Unknown;
    t_in_handler = true;
    bool claimed = cb(fi);
    t_in_handler = false;
    if (claimed) {
      write_str("==HeapGuard: a claimed fault returned from its report; aborting\n");
      Linux::abort_process();
    }
  }
  chain_fault_signal(signo, info, uctx);
  errno = saved_errno;
}

}  // namespace

void chain_fault_signal(int signo, void* siginfo, void* ucontext) {
  siginfo_t* info = static_cast<siginfo_t*>(siginfo);
  struct sigaction* prev = prev_for(signo);
  struct sigaction act = *prev;
  // The kernel resets an SA_RESETHAND action before calling it: do the same
  // to our copy, so a second fault takes the default action.
  if ((act.sa_flags & SA_RESETHAND) != 0) {
    prev->sa_handler = SIG_DFL;
    prev->sa_flags &= ~SA_SIGINFO;
  }
  if ((act.sa_flags & SA_SIGINFO) != 0) {
    if (act.sa_sigaction != nullptr) {
      act.sa_sigaction(signo, info, ucontext);
      return;
    }
  } else if (act.sa_handler != SIG_DFL && act.sa_handler != SIG_IGN) {
    act.sa_handler(signo);
    return;
  }
  const bool sent = info == nullptr || info->si_code <= 0;
  // An ignored signal sent by a process stays ignored; an ignored fault
  // cannot be (the kernel would kill the process anyway).
  if (sent && act.sa_handler == SIG_IGN && (act.sa_flags & SA_SIGINFO) == 0) return;
  set_default(signo);
  // A real fault re-executes on return and now meets the default action; a
  // sent signal would not come back, so it is sent again (not blocked:
  // SA_NODEFER).
  if (sent) raise(signo);
}

bool install_fault_signals(FaultCallback callback) {
  g_callback.store(callback, std::memory_order_release);
  if (g_installed.load(std::memory_order_acquire)) return true;
  ensure_alt_stack();
  struct sigaction act {};
  act.sa_sigaction = on_fault;
  act.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&act.sa_mask);
  struct sigaction old_segv {}, old_bus {};
  if (sigaction(SIGSEGV, nullptr, &old_segv) != 0 || sigaction(SIGBUS, nullptr, &old_bus) != 0) return false;
  g_prev_segv = old_segv;
  g_prev_bus = old_bus;
  if (sigaction(SIGSEGV, &act, nullptr) != 0) return false;
  if (sigaction(SIGBUS, &act, nullptr) != 0) {
    sigaction(SIGSEGV, &old_segv, nullptr);
    return false;
  }
  g_installed.store(true, std::memory_order_release);
  return true;
}

bool fault_signals_installed() { return g_installed.load(std::memory_order_acquire); }

size_t alt_stack_size() { return kAltStackBytes; }

bool ensure_alt_stack() {
  if (t_alt_checked) return true;
  ScopedErrno keep;
  stack_t old {};
  if (sigaltstack(nullptr, &old) == 0 && (old.ss_flags & SS_DISABLE) == 0) {
    t_alt_checked = true;  // the program's own stack
    return true;
  }
  const size_t page = Linux::page_size();
  void* p = Linux::map(kAltStackBytes + page);
  if (p == nullptr) return false;
  // A guard page below: an overflow of the signal stack faults instead of
  // writing into whatever mapping lies below it.
  t_alt_charged = Linux::try_guard(p, page, 1) == GuardKind::Protect;
  stack_t ss {};
  ss.ss_sp = static_cast<char*>(p) + page;
  ss.ss_size = kAltStackBytes;
  ss.ss_flags = 0;
  if (sigaltstack(&ss, nullptr) != 0) {
    Linux::unmap(p, kAltStackBytes + page);
    return false;
  }
  t_alt_stack = reinterpret_cast<uintptr_t>(p);
  t_alt_checked = true;
  Linux::name_region(p, kAltStackBytes + page, "heapguard signal stack");
  return true;
}

void release_alt_stack() {
  if (t_alt_stack == 0) return;
  ScopedErrno keep;
  const size_t page = Linux::page_size();
  stack_t cur {};
  if (sigaltstack(nullptr, &cur) != 0 || (cur.ss_flags & SS_ONSTACK) != 0) return;
  if (reinterpret_cast<uintptr_t>(cur.ss_sp) == t_alt_stack + page) {
    stack_t off {};
    off.ss_flags = SS_DISABLE;
    if (sigaltstack(&off, nullptr) != 0) return;
  }
  Linux::unmap(reinterpret_cast<void*>(t_alt_stack), kAltStackBytes + page);
  if (t_alt_charged) Linux::guard_uncharge(1);
  t_alt_charged = false;
  t_alt_stack = 0;
  t_alt_checked = false;
}

uintptr_t context_pc(const void* ucontext) {
  if (ucontext == nullptr) return 0;
  const ucontext_t* uc = static_cast<const ucontext_t*>(ucontext);
#if defined(__x86_64__)
  return uintptr_t(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return uintptr_t(uc->uc_mcontext.pc);
#else
  (void)uc;
  return 0;
#endif
}

uintptr_t context_sp(const void* ucontext) {
  if (ucontext == nullptr) return 0;
  const ucontext_t* uc = static_cast<const ucontext_t*>(ucontext);
#if defined(__x86_64__)
  return uintptr_t(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
  return uintptr_t(uc->uc_mcontext.sp);
#else
  (void)uc;
  return 0;
#endif
}

}  // namespace heapguard::pal
