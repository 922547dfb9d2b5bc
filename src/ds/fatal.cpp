// SPDX-License-Identifier: Apache-2.0
// The minimal fatal path; see fatal.h. Async-signal-safe and malloc-free.
#include "ds/fatal.h"

#include <atomic>

#include "core/core.h"
#include "platform/platform.h"

namespace heapguard {
namespace {

constexpr const char* kErrorNames[] = {
#define HEAPGUARD_ERROR(id, name, meaning) name,
#include "ds/errors.def"
#undef HEAPGUARD_ERROR
};

constinit std::atomic<bool> g_reporting{false};
constinit std::atomic<FatalHook> g_fatal_hook{nullptr};

MessageBuilder& prefix(MessageBuilder& m) { return m.str("==").dec(uint64_t(pal::Pal::process_id())).str("=="); }

}  // namespace

const char* error_name(ErrorKind kind) { return kErrorNames[static_cast<unsigned>(kind)]; }

MessageBuilder& MessageBuilder::str(const char* s) {
  while (*s != '\0' && len_ < kCapacity) buf_[len_++] = *s++;
  return *this;
}

MessageBuilder& MessageBuilder::ch(char c) {
  if (len_ < kCapacity) buf_[len_++] = c;
  return *this;
}

unsigned format_decimal(uint64_t v, char (&out)[20]) {
  char tmp[20];
  unsigned n = 0;
  do {
    tmp[n++] = char('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (unsigned i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

unsigned format_hex(uint64_t v, char (&out)[16]) {
  char tmp[16];
  unsigned n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v != 0);
  for (unsigned i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

MessageBuilder& MessageBuilder::dec(uint64_t v, unsigned min_width) {
  char digits[20];
  unsigned n = format_decimal(v, digits);
  for (unsigned i = n; i < min_width; ++i) ch(' ');
  for (unsigned i = 0; i < n; ++i) ch(digits[i]);
  return *this;
}

MessageBuilder& MessageBuilder::hex(uint64_t v) {
  str("0x");
  char digits[16];
  unsigned n = format_hex(v, digits);
  for (unsigned i = 0; i < n; ++i) ch(digits[i]);
  return *this;
}

void set_fatal_hook(FatalHook hook) { g_fatal_hook.store(hook, std::memory_order_release); }

void report_fatal(ErrorKind kind, uintptr_t address, const MessageBuilder& detail) {
  FatalHook hook = g_fatal_hook.load(std::memory_order_acquire);
  if (hook != nullptr) {
    hook(kind, address, detail);
    pal::Pal::abort_process();
  }
  if (g_reporting.exchange(true)) pal::Pal::abort_process();
  MessageBuilder m;
  prefix(m).str("ERROR: HeapGuard: ").str(error_name(kind)).str(" on address ").hex(address).ch('\n');
  if (detail.size() != 0) {
    for (size_t i = 0; i < detail.size(); ++i) m.ch(detail.data()[i]);
    m.ch('\n');
  }
  m.str("SUMMARY: HeapGuard: ").str(error_name(kind)).ch('\n');
  pal::Pal::write_all(2, m.data(), m.size());
  pal::Pal::abort_process();
}

void print_line(const MessageBuilder& text, int fd) {
  MessageBuilder m;
  prefix(m).str("HeapGuard: ");
  for (size_t i = 0; i < text.size(); ++i) m.ch(text.data()[i]);
  m.ch('\n');
  pal::Pal::write_all(fd, m.data(), m.size());
}

void check_failed(const char* file, int line, const char* condition) {
  MessageBuilder detail;
  detail.str("check failed: ").str(condition).str(" at ").str(file).ch(':').dec(uint64_t(line));
  report_fatal(ErrorKind::InternalCheck, 0, detail);
}

}  // namespace heapguard
