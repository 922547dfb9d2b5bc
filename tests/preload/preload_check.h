/* SPDX-License-Identifier: Apache-2.0
 *
 * Shared checks for the preload programs. They are not linked with heapguard,
 * so a run without LD_PRELOAD would quietly test glibc instead: every program
 * first proves, through weak declarations, that heapguard serves its malloc
 * and runs in the mode the test asked for, and exits 2 when it does not.
 */
#ifndef HEAPGUARD_TESTS_PRELOAD_CHECK_H
#define HEAPGUARD_TESTS_PRELOAD_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif
/* Weak: NULL unless a heapguard library is in the process. */
int heapguard_owns(const void *p) __attribute__((weak));
const char *heapguard_mode(void) __attribute__((weak));
#ifdef __cplusplus
}
#endif

/* Exit code for "heapguard is not in this process"; distinct from check
 * failures (1) so the negative test can tell the two apart. */
#define HEAPGUARD_TEST_NOT_LOADED_EXIT 2

/* Fails the program with the location and the condition. Output goes to
 * stderr, which the driver requires to be empty on success. */
#define HEAPGUARD_TEST_REQUIRE(cond)                                         \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
      fflush(stderr);                                                        \
      exit(1);                                                               \
    }                                                                        \
  } while (0)

/* Same as HEAPGUARD_TEST_REQUIRE but for a child process or a context where
 * exit handlers must not run (they would flush stdio buffers twice). */
#define HEAPGUARD_TEST_REQUIRE_NOEXIT(cond)                                  \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
      fflush(stderr);                                                        \
      _exit(1);                                                              \
    }                                                                        \
  } while (0)

/* True when p is a live heapguard block. Only meaningful after
 * heapguard_test_require_loaded() has succeeded. */
static inline int heapguard_test_owned(const void *p) {
  return heapguard_owns != NULL && heapguard_owns(p) == 1;
}

/* The guard every preload program calls first in main(). A fresh malloc must
 * be owned by heapguard and the active mode must be the one HEAPGUARD_MODE
 * names, or the test would pass without exercising the allocator. */
static inline void heapguard_test_require_loaded(void) {
  if (heapguard_owns == NULL || heapguard_mode == NULL) {
    fprintf(stderr, "heapguard is not loaded (heapguard_owns is NULL); run with LD_PRELOAD=libheapguard.so\n");
    exit(HEAPGUARD_TEST_NOT_LOADED_EXIT);
  }
  void *p = malloc(24);
  if (p == NULL || heapguard_owns(p) != 1) {
    fprintf(stderr, "heapguard is not loaded: heapguard_owns(malloc(24)) != 1\n");
    exit(HEAPGUARD_TEST_NOT_LOADED_EXIT);
  }
  free(p);
  const char *want = getenv("HEAPGUARD_MODE");
  const char *got = heapguard_mode();
  if (want != NULL && (got == NULL || strcmp(want, got) != 0)) {
    fprintf(stderr, "heapguard runs in mode '%s', HEAPGUARD_MODE asked for '%s'\n",
            got ? got : "(null)", want);
    exit(1);
  }
}

#endif /* HEAPGUARD_TESTS_PRELOAD_CHECK_H */
