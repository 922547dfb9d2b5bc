// SPDX-License-Identifier: Apache-2.0
// Internal invariant checks. HEAPGUARD_CHECK is always on (cheap checks whose
// failure means the heap can no longer be trusted); HEAPGUARD_DCHECK only in
// builds with HEAPGUARD_DEBUG_CHECKS. A failure ends the process through the
// fatal path, which never allocates.
#pragma once

namespace heapguard {
[[noreturn]] void check_failed(const char* file, int line, const char* condition);
}

#define HEAPGUARD_CHECK(cond)                                              \
  do {                                                                     \
    if (__builtin_expect(!(cond), 0)) ::heapguard::check_failed(__FILE__, __LINE__, #cond); \
  } while (0)

#ifdef HEAPGUARD_DEBUG_CHECKS
#define HEAPGUARD_DCHECK(cond) HEAPGUARD_CHECK(cond)
#else
#define HEAPGUARD_DCHECK(cond) \
  do {                         \
  } while (0 && (cond))
#endif
