// SPDX-License-Identifier: Apache-2.0
// Where reports go (layer report): stderr, or the file named by log_path
// (`%p` → pid; `.%p` appended when the path has none, so a forked child
// never writes into its parent's file). The file is opened lazily at the
// first report, never under AT_SECURE, with O_NOFOLLOW (a planted symlink is
// refused) and re-opened after fork. ReportBuffer batches a report into a
// fixed buffer flushed in pieces: the report path never allocates.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heapguard {

// A fixed buffer in front of a file descriptor. Text that does not fit is
// not lost: a full buffer is written out and refilled, so a report of any
// length costs only kCapacity bytes. Not thread-safe: the reporter holds its
// lock while one is in use.
class ReportBuffer {
 public:
  static constexpr size_t kCapacity = 4096;

  constexpr ReportBuffer() = default;
  explicit constexpr ReportBuffer(int fd) : fd_(fd) {}

  // Flushes what is pending to the previous descriptor first.
  void set_fd(int fd);
  int fd() const { return fd_; }

  ReportBuffer& put(const char* s, size_t n);
  ReportBuffer& str(const char* s);  // nullptr writes nothing
  ReportBuffer& ch(char c);
  ReportBuffer& dec(uint64_t v);
  ReportBuffer& hex(uint64_t v);  // 0x-prefixed, lower case
  // "==PID==": the prefix of every line heapguard writes on its own.
  ReportBuffer& pid_prefix();
  // Writes out what is pending (pal::Pal::write_all: retries short writes
  // and EINTR).
  void flush();

 private:
  int fd_ = 2;
  size_t len_ = 0;
  char buf_[kCapacity] = {};
};

// The descriptor the next report goes to: stderr, or the log file, opened
// on first use in this process (a fork child opens its own). On failure to
// open, one warning line goes to stderr and stderr is used from then on.
// Called with the reporter's lock held (not thread-safe on its own).
int report_sink_fd();

// Pure: the log file name for `pattern` in process `pid` (`%p` → pid, every
// occurrence; `.%p` appended when there is none). Writes a NUL-terminated
// name into out; returns its length, or 0 if the pattern is empty or the
// name does not fit in cap bytes.
size_t format_log_path(const char* pattern, int pid, char* out, size_t cap);

// Expands `pattern` for this process and opens it as a log file: a regular
// file owned by the effective user, created 0600, appended to, never through
// a symlink (pal::open_log_file). -1 on failure (after one warning on
// stderr naming the file).
int open_report_log(const char* pattern);

// Tests: reports go to the file named by `pattern` (nullptr: back to the
// log_path option), opened again at the next report.
void set_log_path_for_testing(const char* pattern);

}  // namespace heapguard
