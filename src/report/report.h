// SPDX-License-Identifier: Apache-2.0
// report: the error reporter (PRODUCT.md section 5, docs/report-format.md),
// the umbrella of the report layer. One report at a time, written without
// malloc into a fixed buffer, to stderr or log_path, as text or JSON; then
// the process halts unless the error is recoverable and the user asked to
// continue. The frontend, the guarded pool, the fault handler and the leak
// checker report through here; ds/fatal.h stays as the lowest-level fallback
// for layers below and for errors inside the reporter itself.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ds/ds.h"
#include "report/json.h"
#include "report/sink.h"
#include "report/suppressions.h"
#include "report/symbolizer.h"

namespace heapguard {

// Where ReportInfo::address lies relative to the block [region_start,
// region_start + region_size).
enum class Relation : uint8_t { None, Inside, Left, Right };

struct ReportInfo {
  ErrorKind kind;
  uintptr_t address;
  uintptr_t pc = 0;  // faulting pc; 0 = take frame #0 of `current`
  // The failing call's stack, innermost first; nullptr: the reporter
  // captures it (slow unwinder, heapguard's own frames dropped).
  const uintptr_t* current = nullptr;
  unsigned current_n = 0;
  const char* access = nullptr;  // "WRITE of size 1" (faults); nullptr otherwise
  // The block the address belongs to or is next to; size 0 = no block.
  // Relation None with a block: derived from the addresses.
  uintptr_t region_start = 0;
  size_t region_size = 0;
  Relation relation = Relation::None;
  const MessageBuilder* detail = nullptr;  // extra lines, '\n'-separated
  TraceRef allocated, freed;               // stack 0 = not known (heading omitted)
  bool recoverable = false;                // halt_on_error=0 may continue
  // The reporting thread's number; kUnknownThread: ask the source set by
  // set_thread_number_source().
  uint32_t thread = kUnknownThread;
};

// Writes the report (text or JSON, to stderr or log_path), applying
// suppressions; then aborts (abort_on_error) or _exits with exitcode, unless
// info.recoverable and (halt_on_error=0 or the error is suppressed), in
// which case it returns (fuzz mode always halts). A suppressed recoverable
// error writes nothing; a suppressed fatal one is still reported.
// Never allocates. Reports from several threads are written one after
// another; an error raised while this thread is reporting aborts at once.
void report_error(const ReportInfo& info);

// In a fork child (the atfork child handler): the child's exit status
// answers for its own errors, not its parent's, and a report lock held by
// another parent thread at the fork is released.
void report_after_fork_child();

// Errors reported so far (suppressed ones not counted): with
// halt_on_error=0 the process exits with exitcode at exit when nonzero.
uint32_t errors_reported();

// Where the reporter gets the calling thread's number (the frontend's
// thread-cache numbering; T0 is the main thread). Unset, or returning
// kUnknownThread, prints "T?" (JSON null).
using ThreadNumberFn = uint32_t (*)();
void set_thread_number_source(ThreadNumberFn fn);

// The options the reporter acts on, as read at each report.
struct ReportSettings {
  bool halt_on_error = true;
  bool abort_on_error = true;
  int exitcode = 1;
  bool json = false;
  bool symbolize = false;
  bool fuzz = false;  // fuzz mode: always halts
};
ReportSettings report_settings();
// Tests: use *s instead of the options (nullptr: the options again).
void set_report_settings_for_testing(const ReportSettings* s);

// The memory-leak report, written by the leak checker at exit:
//   LeakReportWriter w; w.begin(blocks, bytes); w.group(...)...; w.end();
// begin() takes the reporter's lock and end() releases it. Groups whose
// allocation stack matches a `memory-leak:` suppression are left out;
// callers that want the totals of begin() to exclude them ask
// is_leak_suppressed() first.
class LeakReportWriter {
 public:
  void begin(uint64_t total_blocks, uint64_t total_bytes);
  // One group of leaked blocks with the same allocation stack. False when
  // the group was suppressed (nothing written).
  bool group(uint64_t bytes, uint64_t blocks, TraceRef alloc);
  // Writes the SUMMARY (or closes the JSON object) and releases the lock.
  // Returns the number of groups written.
  unsigned end();

 private:
  uint64_t total_blocks_ = 0;
  uint64_t total_bytes_ = 0;
  uint64_t shown_blocks_ = 0;
  uint64_t shown_bytes_ = 0;
  unsigned groups_ = 0;
  bool active_ = false;
};

bool is_leak_suppressed(TraceRef alloc);

}  // namespace heapguard
