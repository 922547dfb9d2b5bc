// SPDX-License-Identifier: Apache-2.0
// Suppressions (layer report): known third-party bugs a user chooses not to
// stop on. The file named by the suppressions option is read once at init
// into a fixed buffer; each line `CLASS:PATTERN` (CLASS an error class name
// such as heap-buffer-overflow or memory-leak, or `*`; `#` starts a comment)
// names frames by function name, module path or module basename, with `*`
// wildcards. Matching symbolizes with the malloc-free ELF reader only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ds/ds.h"

namespace heapguard {

inline constexpr size_t kMaxSuppressionFileBytes = 64 * 1024;
inline constexpr unsigned kMaxSuppressions = 1024;

// Reads and parses the file named by string_options().suppressions (nothing
// when empty or under AT_SECURE). Malformed lines get one warning line each
// on stderr naming file:line, and are ignored. Called once by init, before
// other threads exist; may be called again (tests), replacing the set.
void load_suppressions();

// Parses `text` (n bytes, copied) as a suppressions file named `file_name`
// in warnings. Returns the number of suppressions now in effect.
unsigned parse_suppressions(const char* text, size_t n, const char* file_name);

// How many suppressions are in effect.
unsigned suppression_count();

// True if a suppression of class `class_name` (or `*`) matches any frame of
// pcs[0, n) (innermost first, as captured: frame 0 may be exact, the others
// are return addresses). Never allocates.
bool is_suppressed(const char* class_name, const uintptr_t* pcs, unsigned n);
bool is_suppressed(ErrorKind kind, const uintptr_t* pcs, unsigned n);

// Pure: shell-style match of the whole of `text` against `pattern`, where
// `*` matches any run of characters (also none). Exposed for tests.
bool wildcard_match(const char* pattern, const char* text);

// The address to symbolize for frame i: return addresses (every frame but
// the first) point after their call instruction, which may already belong
// to the next function or line, so the byte before is looked up.
inline uintptr_t frame_lookup_pc(const uintptr_t* pcs, unsigned i) {
  return i == 0 || pcs[i] == 0 ? pcs[i] : pcs[i] - 1;
}

}  // namespace heapguard
