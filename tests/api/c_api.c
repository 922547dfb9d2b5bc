/* SPDX-License-Identifier: Apache-2.0
 * The core API checks compiled as C, so the C declarations, C calling code and C
 * errno handling are exercised too. Each check returns 0 on success or the __LINE__
 * of the first failed condition; c_api_test.cpp runs them under GoogleTest. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <heapguard/heapguard.h>

/* C23 names that glibc 2.36's headers do not declare yet; heapguard exports them. */
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);

#define C_CHECK(cond)      \
  do {                     \
    if (!(cond)) return __LINE__; \
  } while (0)

/* Read through a volatile so the compiler neither folds nor warns about it. */
static size_t opaque(size_t n) {
  volatile size_t v = n;
  return v;
}

static int aligned_to(const void *p, size_t alignment) {
  return (uintptr_t)p % alignment == 0;
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; ++i) p[i] = (unsigned char)(seed * 167u + i + (i >> 8) * 7u);
}

static int intact(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != (unsigned char)(seed * 167u + i + (i >> 8) * 7u)) return 0;
  }
  return 1;
}

int c_api_loaded(void) {
  void *p = malloc(1);
  C_CHECK(p != NULL);
  C_CHECK(heapguard_owns(p) == 1);
  free(p);
  C_CHECK(heapguard_mode() != NULL);
  C_CHECK(heapguard_version() != NULL && heapguard_version()[0] != '\0');
  return 0;
}

int c_api_malloc_free(void) {
  void *zero_a = malloc(0);
  void *zero_b = malloc(0);
  C_CHECK(zero_a != NULL && zero_b != NULL && zero_a != zero_b);
  free(zero_a);
  free(zero_b);
  static const size_t sizes[] = {1, 16, 100, 4096, 131072, 131073, 4u << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
    unsigned char *p = malloc(sizes[i]);
    C_CHECK(p != NULL);
    C_CHECK(aligned_to(p, 16));
    C_CHECK(malloc_usable_size(p) >= sizes[i]);
    fill(p, sizes[i], (unsigned)i);
    C_CHECK(intact(p, sizes[i], (unsigned)i));
    errno = 77;
    free(p);
    C_CHECK(errno == 77);
  }
  errno = 0;
  C_CHECK(malloc(opaque(SIZE_MAX)) == NULL);
  C_CHECK(errno == ENOMEM);
  errno = 0;
  C_CHECK(malloc(opaque((size_t)PTRDIFF_MAX + 1)) == NULL);
  C_CHECK(errno == ENOMEM);
  errno = 5;
  free(NULL);
  C_CHECK(errno == 5);
  C_CHECK(malloc_usable_size(NULL) == 0);
  return 0;
}

int c_api_calloc(void) {
  for (int round = 0; round < 20; ++round) {
    unsigned char *dirty = malloc(3000);
    C_CHECK(dirty != NULL);
    memset(dirty, 0xFF, 3000);
    free(dirty);
    unsigned char *p = calloc(1000, 3);
    C_CHECK(p != NULL);
    for (size_t i = 0; i < 3000; ++i) C_CHECK(p[i] == 0);
    free(p);
  }
  errno = 0;
  C_CHECK(calloc(opaque(SIZE_MAX / 2), 3) == NULL);
  C_CHECK(errno == ENOMEM);
  void *empty = calloc(0, 0);
  C_CHECK(empty != NULL);
  free(empty);
  return 0;
}

int c_api_realloc(void) {
  unsigned char *p = realloc(NULL, 100);
  C_CHECK(p != NULL);
  fill(p, 100, 1);
  unsigned char *q = realloc(p, 200000);
  C_CHECK(q != NULL);
  C_CHECK(intact(q, 100, 1));
  fill(q, 200000, 2);
  p = realloc(q, 50);
  C_CHECK(p != NULL);
  C_CHECK(intact(p, 50, 2));
  errno = 0;
  C_CHECK(realloc(p, opaque(SIZE_MAX)) == NULL);
  C_CHECK(errno == ENOMEM);
  C_CHECK(intact(p, 50, 2));
  errno = 0;
  C_CHECK(reallocarray(p, opaque(SIZE_MAX / 2), 3) == NULL);
  C_CHECK(errno == ENOMEM);
  C_CHECK(intact(p, 50, 2));
  q = reallocarray(p, 25, 4);
  C_CHECK(q != NULL);
  C_CHECK(intact(q, 50, 2));
  C_CHECK(realloc(q, 0) == NULL);
  return 0;
}

int c_api_aligned(void) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  for (size_t alignment = 1; alignment <= ((size_t)1 << 20); alignment <<= 1) {
    void *a = aligned_alloc(alignment, alignment * 2);
    C_CHECK(a != NULL && aligned_to(a, alignment));
    memset(a, 1, alignment * 2);
    free(a);
    void *m = memalign(alignment, 10);
    C_CHECK(m != NULL && aligned_to(m, alignment));
    free(m);
    if (alignment >= sizeof(void *)) {
      void *pm = NULL;
      C_CHECK(posix_memalign(&pm, alignment, 33) == 0);
      C_CHECK(pm != NULL && aligned_to(pm, alignment));
      free(pm);
    }
  }
  void *sentinel = (void *)0x1234;
  void *pm = sentinel;
  errno = 3;
  C_CHECK(posix_memalign(&pm, 24, 64) == EINVAL);
  C_CHECK(posix_memalign(&pm, 4, 64) == EINVAL);
  C_CHECK(pm == sentinel && errno == 3);
  C_CHECK(posix_memalign(&pm, 64, opaque(SIZE_MAX)) == ENOMEM);
  C_CHECK(pm == sentinel);
  errno = 0;
  C_CHECK(aligned_alloc(opaque(SIZE_MAX), 16) == NULL);
  C_CHECK(errno == EINVAL);
  void *v = valloc(10);
  C_CHECK(v != NULL && aligned_to(v, page));
  free(v);
  void *pv = pvalloc(page + 1);
  C_CHECK(pv != NULL && aligned_to(pv, page));
  C_CHECK(malloc_usable_size(pv) >= 2 * page);
  free(pv);
  void *pz = pvalloc(0);
  C_CHECK(pz != NULL && aligned_to(pz, page));
  free(pz);
  return 0;
}

int c_api_sized_free(void) {
  void *p = malloc(123);
  C_CHECK(p != NULL);
  free_sized(p, 123);
  void *big = malloc(1u << 20);
  C_CHECK(big != NULL);
  free_sized(big, 1u << 20);
  void *a = aligned_alloc(256, 512);
  C_CHECK(a != NULL);
  free_aligned_sized(a, 256, 512);
  free_sized(NULL, 0);
  free_aligned_sized(NULL, 16, 0);
  return 0;
}

int c_api_tuning(void) {
  C_CHECK(mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1);
  int trimmed = malloc_trim(0);
  C_CHECK(trimmed == 0 || trimmed == 1);
  struct mallinfo2 info = mallinfo2();
  C_CHECK(info.uordblks + info.hblkhd > 0);
  return 0;
}
