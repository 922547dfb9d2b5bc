/* SPDX-License-Identifier: Apache-2.0
 *
 * Allocation from constructors: a linked shared library's constructor (see
 * ctor_lib.c) and this program's own constructor at the earliest user
 * priority (101). Both run before main(), so both may meet an allocator that
 * is not yet initialised; the blocks must still be heapguard's and intact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctor_lib.h"
#include "preload_check.h"

enum { kEarlyBlocks = 8 };

static char *early_blocks[kEarlyBlocks];
static int lib_ready_in_ctor;

__attribute__((constructor(101))) static void program_early_init(void) {
  /* Dependencies are initialised first, so the library's blocks exist. */
  lib_ready_in_ctor = ctor_lib_block_count() > 0 && ctor_lib_blocks_intact();
  for (int i = 0; i < kEarlyBlocks; ++i) {
    early_blocks[i] = strdup(i % 2 ? "program constructor block" : "early");
    if (early_blocks[i] == NULL) abort();
  }
  /* Grow one block across the small/large boundary before main runs. */
  char *big = realloc(early_blocks[0], 256 * 1024);
  if (big == NULL) abort();
  memset(big + 6, 'x', 256 * 1024 - 6);
  early_blocks[0] = big;
}

__attribute__((destructor(101))) static void program_late_fini(void) {
  for (int i = 0; i < kEarlyBlocks; ++i) free(early_blocks[i]);
  printf("program destructor: %d constructor blocks freed\n", kEarlyBlocks);
}

int main(void) {
  heapguard_test_require_loaded();
  HEAPGUARD_TEST_REQUIRE(lib_ready_in_ctor);
  HEAPGUARD_TEST_REQUIRE(ctor_lib_blocks_intact());
  int lib_blocks = ctor_lib_block_count();
  for (int i = 0; i < lib_blocks; ++i) HEAPGUARD_TEST_REQUIRE(heapguard_test_owned(ctor_lib_block(i)));
  for (int i = 0; i < kEarlyBlocks; ++i) HEAPGUARD_TEST_REQUIRE(heapguard_test_owned(early_blocks[i]));
  HEAPGUARD_TEST_REQUIRE(memcmp(early_blocks[0], "early", 5) == 0);
  HEAPGUARD_TEST_REQUIRE(early_blocks[0][256 * 1024 - 1] == 'x');
  HEAPGUARD_TEST_REQUIRE(strcmp(early_blocks[1], "program constructor block") == 0);
  printf("main: %d library constructor blocks and %d program constructor blocks owned by heapguard\n",
         lib_blocks, kEarlyBlocks);
  return 0;
}
