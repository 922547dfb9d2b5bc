/* SPDX-License-Identifier: Apache-2.0
 *
 * The misuse steps shared by the report test programs. Each step is its own
 * named static function, kept out of line and kept from being a tail call,
 * so that the allocation, the free and the bad access or free each show up
 * as a frame of their own in a report; check_report.py looks for these names
 * under the report's headings. The programs are built -O1 -g without
 * -rdynamic: these static names are only in .symtab, which is what the
 * in-process ELF symbolizer has to read.
 */
#ifndef HEAPGUARD_TESTS_REPORTS_REPORT_PROGRAMS_H
#define HEAPGUARD_TESTS_REPORTS_REPORT_PROGRAMS_H

#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Weak: NULL unless heapguard is in the process. */
const char *heapguard_mode(void) __attribute__((weak));

/* The C++ operators, called by their Itanium ABI names (size_t is unsigned
 * long on the LP64 targets heapguard supports) so that a C static function
 * is the caller of operator new/delete itself, with no C++ wrapper frame in
 * between. Linked against libstdc++; under LD_PRELOAD heapguard's
 * definitions are the ones that run. */
void *_Znwm(size_t size);                 /* operator new(size_t) */
void _ZdlPv(void *p);                     /* operator delete(void*) */
void _ZdlPvm(void *p, size_t size);       /* operator delete(void*, size_t) */

#define REPORT_STEP static __attribute__((noinline, unused))

/* Hides a pointer's origin from the optimiser (no malloc/free elision, no
 * "free of a non-heap object" folding). */
static inline void *opaque(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}
/* Placed after a call so that the call is not in tail position and the
 * calling step keeps its frame. */
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

/* Refuses to test glibc: exit 2 unless heapguard serves this process in the
 * mode HEAPGUARD_MODE asked for. */
static __attribute__((unused)) void require_heapguard(void) {
  const char *want = getenv("HEAPGUARD_MODE");
  if (heapguard_mode == NULL) {
    fprintf(stderr, "heapguard is not loaded\n");
    exit(2);
  }
  if (want != NULL && strcmp(heapguard_mode(), want) != 0) {
    fprintf(stderr, "heapguard runs in mode %s, not %s\n", heapguard_mode(), want);
    exit(2);
  }
}

/* The program got past a step that should have been reported. */
static __attribute__((unused)) void not_detected(const char *what) {
  printf("NOT DETECTED: %s\n", what);
  fflush(stdout);
  exit(0);
}

static char g_global_buffer[64];

REPORT_STEP char *allocate_block(size_t n) {
  char *p = (char *)opaque(malloc(n));
  KEEP_FRAME();
  return p;
}

REPORT_STEP char *allocate_object(size_t n) {
  char *p = (char *)opaque(_Znwm(n));
  KEEP_FRAME();
  return p;
}

REPORT_STEP void release_block(char *p) {
  free(opaque(p));
  KEEP_FRAME();
}

REPORT_STEP void release_block_again(char *p) {
  free(opaque(p));
  KEEP_FRAME();
}

/* malloc'd, released by operator delete. */
REPORT_STEP void release_with_wrong_family(char *p) {
  _ZdlPv(opaque(p));
  KEEP_FRAME();
}

/* Sized delete with a size the block was not allocated with. */
REPORT_STEP void release_with_wrong_size(char *p, size_t wrong) {
  _ZdlPvm(opaque(p), wrong);
  KEEP_FRAME();
}

REPORT_STEP void write_past_end(char *p, size_t n) {
  *(volatile char *)opaque(p + n) = 0x41;
  KEEP_FRAME();
}

REPORT_STEP void write_before_start(char *p) {
  *(volatile char *)opaque(p - 1) = 0x41;
  KEEP_FRAME();
}

REPORT_STEP void write_after_free(char *p) {
  *(volatile char *)opaque(p + 5) = 0x41;
  KEEP_FRAME();
}

/* Flips bits of the checksum byte of a small block's chunk header, which in
 * debug and fuzz modes sits in front of the 16-byte left redzone. */
REPORT_STEP void smash_header(char *p) {
  volatile unsigned char *checksum = (volatile unsigned char *)opaque(p - 16 - 8);
  *checksum ^= 0x5a;
  KEEP_FRAME();
}

/* Allocates blocks of n bytes until a freed slot of n's class comes back
 * (the thread cache hands out its most recently freed slot first; a few
 * hundred cover any randomized choice). They are kept. */
REPORT_STEP void allocate_again(size_t n) {
  for (int i = 0; i < 256; ++i) (void)opaque(malloc(n));
  KEEP_FRAME();
}

REPORT_STEP void drain_quarantine_now(void) {
  malloc_trim(0);
  KEEP_FRAME();
}

REPORT_STEP void free_stack_pointer(void) {
  char local[32];
  memset(local, 0, sizeof local);
  free(opaque(local));
  KEEP_FRAME();
}

REPORT_STEP void free_global_pointer(void) {
  free(opaque(g_global_buffer));
  KEEP_FRAME();
}

REPORT_STEP void free_interior_pointer(char *p) {
  free(opaque(p + 16));
  KEEP_FRAME();
}

/* An address nothing is mapped at. */
REPORT_STEP void free_wild_pointer(void) {
  free(opaque((void *)0x1000));
  KEEP_FRAME();
}

#endif
