// SPDX-License-Identifier: Apache-2.0
// Suppressions; see suppressions.h. The file is copied once into a static
// buffer and split in place (NUL-terminated classes and patterns), so
// matching later needs no allocation and no lock: the set is written only
// at init, before other threads exist.
#include "report/suppressions.h"

#include "config/config.h"
#include "platform/platform.h"
#include "report/symbolizer.h"

namespace heapguard {
namespace {

struct Suppression {
  const char* class_name;  // "*" for every class
  const char* pattern;
};

constinit char g_text[kMaxSuppressionFileBytes + 1] = {};
constinit Suppression g_entries[kMaxSuppressions] = {};
constinit unsigned g_count = 0;

// memory-leak is also matched by name: the leak writer passes the class
// as a string.
constexpr const char* kLeakClass = "memory-leak";

bool same(const char* a, const char* b) {
  while (*a != '\0' && *a == *b) {
    ++a;
    ++b;
  }
  return *a == *b;
}

bool known_class(const char* name) {
  if (same(name, "*") || same(name, kLeakClass)) return true;
  for (unsigned k = 0; k < kErrorKindCount; ++k) {
    if (same(name, error_name(static_cast<ErrorKind>(k)))) return true;
  }
  return false;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

void warn_line(const char* file, unsigned line, const char* what, const char* text) {
  MessageBuilder m;
  m.str("suppressions ").str(file).ch(':').dec(line).str(": ").str(what);
  if (text != nullptr) m.str(" '").str(text).ch('\'');
  m.str("; line ignored");
  print_line(m);
}

// Reads up to cap bytes of the file at path: bytes read, -1 on error.
long read_file(const char* path, char* buf, size_t cap) {
  int fd = pal::open_read_only(path);
  if (fd < 0) return -1;
  size_t got = 0;
  while (got < cap) {
    long r = pal::read_some(fd, buf + got, cap - got);
    if (r < 0) {
      pal::close_fd(fd);
      return -1;
    }
    if (r == 0) break;
    got += size_t(r);
  }
  pal::close_fd(fd);
  return long(got);
}

const char* basename_of(const char* path) {
  const char* base = path;
  for (const char* p = path; *p != '\0'; ++p) {
    if (*p == '/') base = p + 1;
  }
  return base;
}


}  // namespace

bool wildcard_match(const char* pattern, const char* text) {
  // Greedy with backtracking to the last `*`: linear in practice, and never
  // recursive, so a hostile pattern cannot exhaust the stack.
  const char* star = nullptr;
  const char* resume = nullptr;
  while (*text != '\0') {
    if (*pattern == '*') {
      star = pattern++;
      resume = text;
    } else if (*pattern == *text) {
      ++pattern;
      ++text;
    } else if (star != nullptr) {
      pattern = star + 1;
      text = ++resume;
    } else {
      return false;
    }
  }
  while (*pattern == '*') ++pattern;
  return *pattern == '\0';
}

unsigned parse_suppressions(const char* text, size_t n, const char* file_name) {
  g_count = 0;
  if (n > kMaxSuppressionFileBytes) n = kMaxSuppressionFileBytes;
  for (size_t i = 0; i < n; ++i) g_text[i] = text[i];
  g_text[n] = '\0';
  unsigned line_no = 0;
  char* p = g_text;
  char* end = g_text + n;
  while (p < end) {
    ++line_no;
    char* line = p;
    while (p < end && *p != '\n') ++p;
    char* line_end = p;
    if (p < end) *p++ = '\0';
    // Trim, then drop comments and blank lines.
    while (line < line_end && is_space(*line)) ++line;
    while (line_end > line && is_space(line_end[-1])) --line_end;
    *line_end = '\0';
    if (line == line_end || *line == '#') continue;
    char* colon = line;
    while (colon < line_end && *colon != ':') ++colon;
    if (colon == line_end) {
      warn_line(file_name, line_no, "expected CLASS:PATTERN, got", line);
      continue;
    }
    char* class_end = colon;
    while (class_end > line && is_space(class_end[-1])) --class_end;
    char* pattern = colon + 1;
    while (pattern < line_end && is_space(*pattern)) ++pattern;
    *class_end = '\0';
    if (line == class_end || pattern == line_end) {
      warn_line(file_name, line_no, "empty class or pattern in", nullptr);
      continue;
    }
    if (!known_class(line)) {
      warn_line(file_name, line_no, "unknown error class", line);
      continue;
    }
    if (g_count == kMaxSuppressions) {
      warn_line(file_name, line_no, "too many suppressions (the limit is 1024)", nullptr);
      break;
    }
    g_entries[g_count++] = Suppression{line, pattern};
  }
  return g_count;
}

void load_suppressions() {
  g_count = 0;
  const char* path = string_options().suppressions;
  if (path == nullptr || path[0] == '\0') return;
  // Under AT_SECURE the option is not read at all (config ignores the
  // environment); this guards a value that arrived some other way.
  if (pal::Pal::is_secure()) return;
  // g_text doubles as the read buffer: parse_suppressions copies onto
  // itself (same offsets), so nothing bigger than one file is kept.
  long n = read_file(path, g_text, kMaxSuppressionFileBytes + 1);
  if (n < 0) {
    MessageBuilder m;
    m.str("cannot read suppressions file '").str(path).str("'; no suppressions in effect");
    print_line(m);
    return;
  }
  if (size_t(n) > kMaxSuppressionFileBytes) {
    MessageBuilder m;
    m.str("suppressions file '").str(path).str("' is larger than 64 KiB; only its first 64 KiB are read");
    print_line(m);
    n = long(kMaxSuppressionFileBytes);
  }
  parse_suppressions(g_text, size_t(n), path);
}

unsigned suppression_count() { return g_count; }

bool is_suppressed(const char* class_name, const uintptr_t* pcs, unsigned n) {
  if (g_count == 0 || n == 0) return false;
  bool any = false;
  for (unsigned s = 0; s < g_count; ++s) {
    if (same(g_entries[s].class_name, "*") || same(g_entries[s].class_name, class_name)) any = true;
  }
  if (!any) return false;
  for (unsigned i = 0; i < n; ++i) {
    FrameInfo info{};
    if (!symbolize_frame(frame_lookup_pc(pcs, i), &info)) continue;
    for (unsigned s = 0; s < g_count; ++s) {
      const Suppression& e = g_entries[s];
      if (!same(e.class_name, "*") && !same(e.class_name, class_name)) continue;
      if (info.function != nullptr && wildcard_match(e.pattern, info.function)) return true;
      if (info.module != nullptr &&
          (wildcard_match(e.pattern, info.module) || wildcard_match(e.pattern, basename_of(info.module)))) {
        return true;
      }
    }
  }
  return false;
}

bool is_suppressed(ErrorKind kind, const uintptr_t* pcs, unsigned n) {
  return is_suppressed(error_name(kind), pcs, n);
}

}  // namespace heapguard
