/* SPDX-License-Identifier: Apache-2.0
 *
 * A shared library that allocates in its ELF constructor and frees in its
 * destructor. Library constructors run before the program's, during the
 * dynamic loader's start-up, so malloc here may be heapguard's first call or
 * race its lazy init; the destructor runs inside exit(), after main.
 */
#include "ctor_lib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kBlocks = 12 };

static char *blocks[kBlocks];
static size_t block_sizes[kBlocks];
static int block_count;

static char block_byte(int block, size_t i) { return (char)('a' + (block * 7 + i) % 26); }

__attribute__((constructor)) static void ctor_lib_init(void) {
  for (int b = 0; b < kBlocks; ++b) {
    /* Small classes, a calloc, a realloc that moves, and one large block. */
    size_t n = (b == kBlocks - 1) ? 200000 : (size_t)(8 << b);
    char *p;
    if (b % 3 == 1) {
      p = calloc(n, 1);
      for (size_t i = 0; p != NULL && i < n; ++i) {
        if (p[i] != 0) abort();
      }
    } else if (b % 3 == 2) {
      p = malloc(n / 2 + 1);
      if (p != NULL) p = realloc(p, n);
    } else {
      p = malloc(n);
    }
    if (p == NULL) abort();
    for (size_t i = 0; i < n; ++i) p[i] = block_byte(b, i);
    blocks[b] = p;
    block_sizes[b] = n;
  }
  block_count = kBlocks;
}

int ctor_lib_blocks_intact(void) {
  for (int b = 0; b < block_count; ++b) {
    for (size_t i = 0; i < block_sizes[b]; ++i) {
      if (blocks[b][i] != block_byte(b, i)) return 0;
    }
  }
  return 1;
}

__attribute__((destructor)) static void ctor_lib_fini(void) {
  int intact = ctor_lib_blocks_intact();
  for (int b = 0; b < block_count; ++b) free(blocks[b]);
  /* Printed from exit(): stdio is flushed after the destructors run, so this
   * line reaching stdout also shows exit-time stdio still works. */
  printf("ctor_lib destructor: %d blocks %s and freed\n", block_count,
         intact ? "intact" : "CORRUPTED");
  block_count = 0;
}

int ctor_lib_block_count(void) { return block_count; }

const char *ctor_lib_block(int i) { return (i >= 0 && i < block_count) ? blocks[i] : NULL; }
