/* SPDX-License-Identifier: Apache-2.0
 *
 * heapguard under a tight address-space limit (RLIMIT_AS = 1 GiB, as some
 * sandboxes and CI systems set with ulimit -v). The slab reservation shrinks
 * to fit; a size class that fills its smaller region spills into the large
 * heap instead of failing. The program re-executes itself so the limit is in
 * force before heapguard initialises.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "preload_check.h"

enum { kBlocks = 600, kSize = 80000 };

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "limited") != 0) {
    struct rlimit lim = {1UL << 30, 1UL << 30};
    HEAPGUARD_TEST_REQUIRE(setrlimit(RLIMIT_AS, &lim) == 0);
    char *args[] = {argv[0], "limited", NULL};
    execv("/proc/self/exe", args);
    perror("execv");
    return 1;
  }
  heapguard_test_require_loaded();
  static unsigned char *blocks[kBlocks];
  int owned = 0, intact = 0;
  for (int i = 0; i < kBlocks; ++i) {
    blocks[i] = malloc(kSize);
    HEAPGUARD_TEST_REQUIRE(blocks[i] != NULL);
    memset(blocks[i], i & 0xff, kSize);
  }
  for (int i = 0; i < kBlocks; ++i) {
    owned += heapguard_test_owned(blocks[i]);
    intact += blocks[i][0] == (i & 0xff) && blocks[i][kSize - 1] == (i & 0xff);
  }
  /* realloc and aligned allocation keep working while the class is full. */
  unsigned char *grown = realloc(blocks[0], kSize + 10);
  HEAPGUARD_TEST_REQUIRE(grown != NULL && grown[kSize - 1] == 0);
  blocks[0] = grown;
  void *aligned = aligned_alloc(4096, kSize - 5000);
  HEAPGUARD_TEST_REQUIRE(aligned != NULL && ((size_t)aligned & 4095) == 0);
  free(aligned);
  for (int i = 0; i < kBlocks; ++i) free(blocks[i]);
  printf("%d blocks of %d bytes under a 1 GiB address-space limit: %d owned, %d intact\n", kBlocks, kSize, owned, intact);
  return owned == kBlocks && intact == kBlocks ? 0 : 1;
}
