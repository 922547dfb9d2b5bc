// SPDX-License-Identifier: Apache-2.0
// Report destinations; see sink.h. Everything here runs with the reporter's
// lock held, from any state (a corrupted heap, a signal handler): no malloc,
// no stdio, raw pal calls only.
#include "report/sink.h"

#include "config/config.h"
#include "ds/ds.h"
#include "platform/platform.h"

namespace heapguard {
namespace {

constexpr int kStderr = 2;
constexpr size_t kMaxPath = 512;

// The descriptor reports go to and the process it was chosen in: after
// fork the child's pid differs and it chooses (and opens) again.
constinit int g_sink_fd = -1;
constinit int g_sink_pid = 0;
// The log file's identity: the descriptor number alone is not ours to
// trust, since the program may close it and reuse the number (or a fork
// child may) for a file of its own.
constinit pal::FileId g_sink_id{};

bool still_our_file(int fd) {
  pal::FileId now{};
  return pal::file_id(fd, &now) && now.inode == g_sink_id.inode && now.device == g_sink_id.device;
}

constinit bool g_test_pattern_set = false;
constinit char g_test_pattern[kMaxPath] = {};

const char* log_pattern() {
  if (g_test_pattern_set) return g_test_pattern;
  return string_options().log_path;
}

}  // namespace

void ReportBuffer::set_fd(int fd) {
  flush();
  fd_ = fd;
}

ReportBuffer& ReportBuffer::put(const char* s, size_t n) {
  while (n > 0) {
    if (len_ == kCapacity) flush();
    size_t take = kCapacity - len_;
    if (take > n) take = n;
    for (size_t i = 0; i < take; ++i) buf_[len_ + i] = s[i];
    len_ += take;
    s += take;
    n -= take;
  }
  return *this;
}

ReportBuffer& ReportBuffer::str(const char* s) {
  if (s == nullptr) return *this;
  size_t n = 0;
  while (s[n] != '\0') ++n;
  return put(s, n);
}

ReportBuffer& ReportBuffer::ch(char c) {
  if (len_ == kCapacity) flush();
  buf_[len_++] = c;
  return *this;
}

ReportBuffer& ReportBuffer::dec(uint64_t v) {
  char digits[20];
  return put(digits, format_decimal(v, digits));
}

ReportBuffer& ReportBuffer::hex(uint64_t v) {
  char digits[16];
  put("0x", 2);
  return put(digits, format_hex(v, digits));
}

ReportBuffer& ReportBuffer::pid_prefix() {
  return put("==", 2).dec(uint64_t(pal::Pal::process_id())).put("==", 2);
}

void ReportBuffer::flush() {
  if (len_ != 0 && fd_ >= 0) pal::Pal::write_all(fd_, buf_, len_);
  len_ = 0;
}

size_t format_log_path(const char* pattern, int pid, char* out, size_t cap) {
  if (pattern == nullptr || pattern[0] == '\0' || cap == 0) return 0;
  char digits[12];
  unsigned nd = 0;
  unsigned v = unsigned(pid);
  do {
    digits[nd++] = char('0' + v % 10);
    v /= 10;
  } while (v != 0);
  size_t len = 0;
  bool has_pid = false;
  auto put = [&](char c) {
    if (len + 1 < cap) out[len] = c;
    ++len;
  };
  auto put_pid = [&] {
    for (unsigned i = nd; i > 0; --i) put(digits[i - 1]);
  };
  for (const char* p = pattern; *p != '\0'; ++p) {
    if (p[0] == '%' && p[1] == 'p') {
      put_pid();
      has_pid = true;
      ++p;
    } else {
      put(*p);
    }
  }
  if (!has_pid) {
    put('.');
    put_pid();
  }
  if (len + 1 > cap) {
    out[0] = '\0';
    return 0;
  }
  out[len] = '\0';
  return len;
}

int open_report_log(const char* pattern) {
  char path[kMaxPath];
  int fd = -1;
  size_t len = format_log_path(pattern, pal::Pal::process_id(), path, sizeof path);
  if (len != 0) fd = pal::open_log_file(path);
  if (fd < 0) {
    MessageBuilder m;
    m.str("cannot open log_path file '").str(len != 0 ? path : pattern)
        .str("' (a symlink, not a regular file owned by this user, or not writable); reports go to stderr");
    print_line(m, kStderr);
  }
  return fd;
}

int report_sink_fd() {
  int pid = pal::Pal::process_id();
  const bool ours = g_sink_fd > kStderr && still_our_file(g_sink_fd);
  if (g_sink_fd >= 0 && g_sink_pid == pid && (g_sink_fd == kStderr || ours)) return g_sink_fd;
  // A fork child inherits its parent's log descriptor and writes to a file
  // of its own: close the inherited one, but only if it still is the log
  // file (a daemon may have reused the number). A descriptor the program
  // took over is left alone, and the log is opened again.
  if (ours && g_sink_pid != pid) pal::close_fd(g_sink_fd);
  g_sink_pid = pid;
  g_sink_fd = kStderr;
  const char* pattern = log_pattern();
  // Under AT_SECURE the path came from a less privileged user: ignored.
  if (pattern != nullptr && pattern[0] != '\0' && !pal::Pal::is_secure()) {
    int fd = open_report_log(pattern);
    if (fd >= 0 && pal::file_id(fd, &g_sink_id)) g_sink_fd = fd;
    else if (fd >= 0) pal::close_fd(fd);
  }
  return g_sink_fd;
}

void set_log_path_for_testing(const char* pattern) {
  if (g_sink_fd > kStderr) pal::close_fd(g_sink_fd);
  g_sink_fd = -1;
  g_test_pattern_set = pattern != nullptr;
  if (pattern == nullptr) return;
  size_t i = 0;
  for (; pattern[i] != '\0' && i + 1 < kMaxPath; ++i) g_test_pattern[i] = pattern[i];
  g_test_pattern[i] = '\0';
}

}  // namespace heapguard
