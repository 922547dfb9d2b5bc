// SPDX-License-Identifier: Apache-2.0
// The minimal fatal path that every layer may call: it formats into a fixed
// buffer on the stack, writes it raw to stderr, and aborts. It never
// allocates and never takes an allocator lock, so it is safe from any state,
// including a corrupted heap or a thread that holds allocator locks.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heapguard {

enum class ErrorKind : uint8_t {
#define HEAPGUARD_ERROR(id, name, meaning) id,
#include "ds/errors.def"
#undef HEAPGUARD_ERROR
};

inline constexpr unsigned kErrorKindCount = 0
#define HEAPGUARD_ERROR(id, name, meaning) +1
#include "ds/errors.def"
#undef HEAPGUARD_ERROR
    ;

const char* error_name(ErrorKind kind);

// Digits of v, most significant first, into out (no terminator); returns
// how many. Shared by every malloc-free text builder.
unsigned format_decimal(uint64_t v, char (&out)[20]);
unsigned format_hex(uint64_t v, char (&out)[16]);  // lower case, no 0x

// Appends text and numbers to a fixed buffer; silently truncates, because a
// report cut short is better than a report path that can fail.
class MessageBuilder {
 public:
  MessageBuilder& str(const char* s);
  MessageBuilder& dec(uint64_t v, unsigned min_width = 0);  // right-aligned in min_width
  MessageBuilder& hex(uint64_t v);  // 0x-prefixed
  MessageBuilder& ch(char c);
  const char* data() const { return buf_; }
  size_t size() const { return len_; }

 private:
  static constexpr size_t kCapacity = 1024;
  char buf_[kCapacity];
  size_t len_ = 0;
};

// Writes "==PID==ERROR: HeapGuard: <class> on address <addr>", the detail
// line (may be empty), and a SUMMARY line, then aborts. Re-entry (an error
// while reporting) aborts at once without writing.
// Once the reporter is up (set_fatal_hook at init), it writes the report
// instead, with stacks; layers below it keep calling this one function.
[[noreturn]] void report_fatal(ErrorKind kind, uintptr_t address, const MessageBuilder& detail);
// The hook must not return (report_fatal aborts if it does).
using FatalHook = void (*)(ErrorKind kind, uintptr_t address, const MessageBuilder& detail);
void set_fatal_hook(FatalHook hook);

// Writes one "==PID==HeapGuard: <text>" line to fd (stderr by default);
// for warnings, verbosity output and exit statistics. Never allocates.
void print_line(const MessageBuilder& text, int fd = 2);

}  // namespace heapguard
