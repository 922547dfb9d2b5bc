/* SPDX-License-Identifier: Apache-2.0
 * A library whose constructor registers fork handlers that use the heap
 * (OpenBLAS and many logging or RPC libraries do). As a dependency of the
 * program it is initialised before libheapguard, so its prepare handler
 * runs after heapguard's has taken the allocator's locks. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static int g_calls;

static void use_heap(void) {
  /* One small and one large block: a class lock and the large-table locks. */
  char *small = malloc(100);
  char *large = malloc(1 << 20);
  if (small != NULL && large != NULL) {
    memset(small, 1, 100);
    large[0] = 1;
    ++g_calls;
  }
  free(small);
  free(large);
}

static void prepare(void) { use_heap(); }
static void parent(void) { use_heap(); }
static void child(void) { use_heap(); }

__attribute__((constructor)) static void atfork_lib_init(void) { pthread_atfork(prepare, parent, child); }

int atfork_lib_calls(void) { return g_calls; }
