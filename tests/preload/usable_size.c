/* SPDX-License-Identifier: Apache-2.0
 *
 * malloc_usable_size() contract as programs rely on it: every byte it reports
 * belongs to the caller, and realloc() keeps all of them, not only the bytes
 * first requested. Redis's sds strings grow into that slack and then
 * realloc; an allocator that copies only the requested size truncates them.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload_check.h"

static unsigned char byte_at(size_t i) { return (unsigned char)(i * 7 + 1); }

static void fill(unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = byte_at(i);
}

/* Returns how many leading bytes still hold the pattern. */
static size_t kept(const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n && p[i] == byte_at(i)) ++i;
  return i;
}

int main(void) {
  heapguard_test_require_loaded();
  int sizes = 0;
  int failures = 0;
  for (size_t n = 1; n <= 400000; n = n * 5 / 4 + 1, ++sizes) {
    /* Grow: the whole old usable size must survive the move. */
    unsigned char *p = malloc(n);
    HEAPGUARD_TEST_REQUIRE(p != NULL);
    size_t usable = malloc_usable_size(p);
    HEAPGUARD_TEST_REQUIRE(usable >= n);
    fill(p, usable);
    unsigned char *q = realloc(p, usable * 2 + 100);
    HEAPGUARD_TEST_REQUIRE(q != NULL);
    size_t grown = kept(q, usable);
    if (grown != usable) {
      fprintf(stderr, "FAIL: malloc(%zu) has usable size %zu, realloc to %zu kept %zu bytes\n", n, usable,
              usable * 2 + 100, grown);
      ++failures;
    }
    free(q);

    /* Shrink within the usable size: everything up to the new size stays. */
    p = malloc(n);
    HEAPGUARD_TEST_REQUIRE(p != NULL);
    usable = malloc_usable_size(p);
    fill(p, usable);
    size_t smaller = usable > 1 ? usable - 1 : 1;
    q = realloc(p, smaller);
    HEAPGUARD_TEST_REQUIRE(q != NULL && malloc_usable_size(q) >= smaller);
    size_t shrunk = kept(q, smaller);
    if (shrunk != smaller) {
      fprintf(stderr, "FAIL: malloc(%zu) has usable size %zu, realloc to %zu kept %zu bytes\n", n, usable,
              smaller, shrunk);
      ++failures;
    }
    free(q);

    /* Aligned blocks report their usable size the same way. */
    void *a = NULL;
    HEAPGUARD_TEST_REQUIRE(posix_memalign(&a, 64, n) == 0);
    HEAPGUARD_TEST_REQUIRE(((uintptr_t)a & 63) == 0 && malloc_usable_size(a) >= n);
    fill(a, malloc_usable_size(a));
    free(a);
  }
  if (failures != 0) {
    fprintf(stderr, "usable_size: %d of %d checks failed\n", failures, 2 * sizes);
    return 1;
  }
  printf("usable_size: %d sizes, whole usable size kept by growing and shrinking realloc\n", sizes);
  return 0;
}
