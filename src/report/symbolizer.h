// SPDX-License-Identifier: Apache-2.0
// Symbolizer (report layer): names the frames of a report. In process, from
// the ELF symbol tables of the mapped files (symbolize_frame); after the raw
// report is written, file:line from llvm-symbolizer or addr2line run as a
// child process (symbolize_external). Both work with a corrupt heap and from
// a signal handler: no malloc, no stdio, no dl_iterate_phdr/dladdr (loader
// locks, which the crashing thread may hold), no fork (atfork handlers take
// the allocator locks), and no lock that can block forever.
#pragma once

#include <cstdint>

namespace heapguard {

struct FrameInfo {
  uintptr_t pc = 0;
  // Linkage (mangled) name of the enclosing function, pointing into the
  // module's symbol table, which stays mapped for the life of the process.
  // nullptr when unknown.
  const char* function = nullptr;
  // Full path of the module ("[vdso]" for the vdso), in static storage kept
  // for the life of the process. nullptr when pc is in no file mapping.
  const char* module = nullptr;
  // pc - load bias: the link-time address, as llvm-symbolizer and addr2line
  // take it (for a PIE or library, the offset from its load address; for a
  // non-PIE executable, pc itself). Valid when module != nullptr.
  uintptr_t module_offset = 0;
  // pc - start of `function`. Valid when function != nullptr.
  uintptr_t function_offset = 0;
};

// Looks pc up as given. A return address (every frame of a captured stack
// but a faulting pc) belongs to the call before it, which may be the last
// instruction of a function and on another source line: pass pc - 1 for
// those to get the caller's name and line (what the sanitizers do).
//
// Fills *out: module and module_offset whenever pc is in a file-backed
// executable mapping (or the vdso), function when a symbol encloses it
// (.symtab first, so static functions of an executable built without
// -rdynamic are named; then .dynsym). Returns true when the module is known
// (module and module_offset set; function may still be nullptr, e.g. in a
// stripped library's local function), false when pc is in no file mapping
// (heap, stack, JIT code, a pc that is not one) or the module table is full. The module list comes from /proc/self/maps at every call (so
// dlopen/dlclose are seen); each module's file is mapped read-only once and
// kept in a fixed table of 256 modules (lock-free, append-only). Uses about
// 2.5 KiB of stack.
bool symbolize_frame(uintptr_t pc, FrameInfo* out);
// The same for n pcs with one pass over /proc/self/maps; returns how many
// are in a known module.
unsigned symbolize_frames(const uintptr_t* pcs, unsigned n, FrameInfo* out);

// Receives one call per pc, in order: function (demangled) or nullptr when
// unknown, file or nullptr when unknown, line (0 when unknown). The strings
// live until the callback returns.
using ExternalFrameFn = void (*)(void* ctx, unsigned index, const char* function, const char* file,
                                 unsigned line);

// Resolves pcs (looked up as given; see symbolize_frame for return
// addresses) with llvm-symbolizer (found on PATH as llvm-symbolizer or
// llvm-symbolizer-14, else /usr/lib/llvm-14/bin/llvm-symbolizer), fed
// "MODULE 0xOFFSET" lines so PIE and libraries work, or else with
// `addr2line -f -C -e MODULE` once per module. The tool runs with an empty
// environment (no LD_PRELOAD: heapguard does not debug its own symbolizer),
// stderr to /dev/null, and 2 seconds in total, after which it is killed.
// Returns false without calling sink when no tool is found, the process is
// AT_SECURE (a setuid program must not run PATH lookups) or another thread
// is inside this function. Otherwise sink gets exactly one call per pc, in
// index order, and the result is false when the tool failed to start or to
// answer in time (the pcs it did not answer are reported unknown).
// Buffers are static (one caller at a time) or small on the stack; never
// mallocs. Only call it after the raw report is written.
bool symbolize_external(const uintptr_t* pcs, unsigned n, ExternalFrameFn sink, void* ctx);

// Tests: false skips the fixed-path fallback (/usr/lib/llvm-14/bin), so an
// empty PATH means "no tool".
void set_symbolizer_fallbacks_for_testing(bool enabled);

}  // namespace heapguard
