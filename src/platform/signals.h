// SPDX-License-Identifier: Apache-2.0
// Fault signals (layer platform): SIGSEGV and SIGBUS handlers that let the
// frontend explain a touch of a guard page or of freed memory, without
// displacing the program's own handling. The previous actions are kept and
// faults the frontend does not claim are passed on to them: a handler is
// called as the kernel would (with siginfo when it asked for it); SIG_DFL
// and SIG_IGN are reset to the default action and the fault re-executes (a
// signal sent by kill() is raised again), so the process dies of the same
// signal as without heapguard. Handlers run on an alternate signal stack
// (per thread, from pal::Pal::map) so a fault on a nearly full stack can
// still be reported. Nothing here allocates.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heapguard::pal {

enum class FaultAccess : uint8_t { Unknown, Read, Write };

// What the kernel told the handler about one fault.
struct FaultInfo {
  int signo = 0;           // SIGSEGV or SIGBUS
  int code = 0;            // si_code (<= 0: sent by a process, not a fault)
  uintptr_t address = 0;   // si_addr
  uintptr_t pc = 0;        // the faulting instruction (0 if unknown)
  FaultAccess access = FaultAccess::Unknown;  // x86-64: page-fault error code bit 1
  const void* ucontext = nullptr;             // the interrupted context (ucontext_t*)
};

// Called on the faulting thread, on the alternate stack, with the signal
// unblocked (SA_NODEFER: a fault inside the callback is not held pending).
// Return false for a fault that is not the frontend's; it is then passed
// on. A claimed fault must not return (report and terminate): returning
// true re-executes the faulting instruction, so install_fault_signals
// treats it as a bug and aborts instead.
using FaultCallback = bool (*)(const FaultInfo& info);

// Installs the SIGSEGV and SIGBUS handlers (SA_SIGINFO | SA_ONSTACK |
// SA_NODEFER), saving the previous actions, and gives the calling thread an
// alternate stack (ensure_alt_stack). Once per process; later calls only
// replace the callback. False if sigaction failed (nothing installed).
bool install_fault_signals(FaultCallback callback);
bool fault_signals_installed();

// Gives the calling thread an alternate signal stack from pal::Pal::map
// (with a guard page below it), unless it has one already: one the program
// set is kept. Cheap after the first call on a thread (a TLS flag). Call it
// when a thread starts using the allocator (thread cache creation).
bool ensure_alt_stack();
// Thread exit: disables and unmaps the stack ensure_alt_stack mapped for
// this thread (a program's own stack is left alone).
void release_alt_stack();
size_t alt_stack_size();

// The pc and the stack pointer of an interrupted context (0 if unknown).
uintptr_t context_pc(const void* ucontext);
uintptr_t context_sp(const void* ucontext);

// Passes a fault on to the action that was installed before heapguard's,
// as described above. Returns when the fault should re-execute.
void chain_fault_signal(int signo, void* siginfo, void* ucontext);

}  // namespace heapguard::pal
