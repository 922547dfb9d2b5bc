/* SPDX-License-Identifier: Apache-2.0
 * calloc in a program that locked its memory (mlockall, as real-time
 * programs do): purging empty slabs fails on locked pages, which then keep
 * their contents, so calloc must clear them. Needs CAP_IPC_LOCK or a large
 * enough RLIMIT_MEMLOCK (CI runs as root). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/mman.h>

#include "preload_check.h"

enum { kBlocks = 64, kSize = 5000 };

int main(void) {
  heapguard_test_require_loaded();
  if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
    perror("mlockall (this test needs CAP_IPC_LOCK)");
    return 1;
  }
  int dirty = 0;
  for (int round = 0; round < 20; ++round) {
    char *blocks[kBlocks];
    for (int i = 0; i < kBlocks; ++i) {
      blocks[i] = calloc(1, kSize);
      HEAPGUARD_TEST_REQUIRE(blocks[i] != NULL);
      for (int k = 0; k < kSize; ++k) dirty += blocks[i][k] != 0;
      memset(blocks[i], 0xa5, kSize);
    }
    for (int i = 0; i < kBlocks; ++i) free(blocks[i]);
    malloc_trim(0);
  }
  munlockall();
  printf("calloc under mlockall: %d non-zero bytes\n", dirty);
  return dirty == 0 ? 0 : 1;
}
