/* SPDX-License-Identifier: Apache-2.0
 *
 * dlopen/dlclose of an allocating plugin, 50 times. Each load runs the
 * plugin's constructors (which allocate) and each unload its destructors
 * (which free blocks from both sides); the program frees what the plugin
 * allocated. Unloading is checked with RTLD_NOLOAD so that the destructors
 * really run every cycle.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "plugin.h"
#include "preload_check.h"

enum { kCycles = 50, kProgramBlocks = 4, kMaxTaken = 16 };

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PLUGIN.so\n", argv[0]);
    return 64;
  }
  heapguard_test_require_loaded();
  int taken_total = 0;
  int adopted_freed = 0;
  int adopted_given = 0;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    void *handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
      fprintf(stderr, "dlopen: %s\n", dlerror());
      return 1;
    }
    PluginTakeFn take = (PluginTakeFn)dlsym(handle, "plugin_take");
    PluginAdoptFn adopt = (PluginAdoptFn)dlsym(handle, "plugin_adopt");
    PluginTableSizeFn table_size = (PluginTableSizeFn)dlsym(handle, "plugin_table_size");
    HEAPGUARD_TEST_REQUIRE(take != NULL && adopt != NULL && table_size != NULL);
    HEAPGUARD_TEST_REQUIRE(table_size() == 100);

    /* Every other cycle the program takes and frees the plugin's blocks;
     * otherwise the plugin's destructor frees them itself. */
    if (cycle % 2 == 0) {
      void *blocks[kMaxTaken];
      size_t sizes[kMaxTaken];
      int n = take(blocks, sizes, kMaxTaken);
      HEAPGUARD_TEST_REQUIRE(n > 0);
      for (int b = 0; b < n; ++b) {
        const char *p = blocks[b];
        HEAPGUARD_TEST_REQUIRE(heapguard_test_owned(p));
        for (size_t i = 0; i < sizes[b]; ++i) HEAPGUARD_TEST_REQUIRE(p[i] == PLUGIN_BLOCK_BYTE(b, i));
        free(blocks[b]);
      }
      taken_total += n;
    }

    void *mine[kProgramBlocks];
    size_t mine_sizes[kProgramBlocks];
    for (int k = 0; k < kProgramBlocks; ++k) {
      mine_sizes[k] = (k == kProgramBlocks - 1) ? 140000 : (size_t)(40 + 300 * k + cycle);
      char *p = malloc(mine_sizes[k]);
      HEAPGUARD_TEST_REQUIRE(p != NULL);
      for (size_t i = 0; i < mine_sizes[k]; ++i) p[i] = PROGRAM_BLOCK_BYTE(i);
      mine[k] = p;
    }
    adopt(mine, mine_sizes, kProgramBlocks, &adopted_freed);
    adopted_given += kProgramBlocks;

    HEAPGUARD_TEST_REQUIRE(dlclose(handle) == 0);
    HEAPGUARD_TEST_REQUIRE(dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD) == NULL);
    HEAPGUARD_TEST_REQUIRE(adopted_freed == adopted_given);
  }
  printf("dlopen_cycle: %d cycles, program freed %d plugin blocks, plugin freed %d program blocks\n",
         kCycles, taken_total, adopted_freed);
  return 0;
}
