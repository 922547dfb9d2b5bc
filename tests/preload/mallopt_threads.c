/* SPDX-License-Identifier: Apache-2.0
 * mallopt(M_TRIM_THRESHOLD) from several threads at once, and from
 * .preinit_array before heapguard's initialisation: neither may crash, and
 * the early setting must survive initialisation. */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "preload_check.h"

static int g_early_result = -1;

static void early(int argc, char **argv, char **envp) {
  (void)argc;
  (void)argv;
  (void)envp;
  g_early_result = mallopt(M_TRIM_THRESHOLD, 64 * 1024);
}
__attribute__((section(".preinit_array"), used)) static void (*const g_early)(int, char **, char **) = early;

static void *setter(void *arg) {
  int ok = 1;
  for (int i = 0; i < 20000; ++i) {
    ok &= mallopt(M_TRIM_THRESHOLD, (int)(((size_t)arg + (size_t)i) % 4096) * 1024) == 1;
    free(malloc(700));
  }
  return (void *)(size_t)ok;
}

int main(void) {
  heapguard_test_require_loaded();
  pthread_t threads[4];
  for (size_t i = 0; i < 4; ++i) HEAPGUARD_TEST_REQUIRE(pthread_create(&threads[i], NULL, setter, (void *)i) == 0);
  int ok = 1;
  for (int i = 0; i < 4; ++i) {
    void *r;
    pthread_join(threads[i], &r);
    ok &= r != NULL;
  }
  printf("mallopt before init: %d; from 4 threads: %s\n", g_early_result, ok ? "ok" : "FAILED");
  return g_early_result == 1 && ok ? 0 : 1;
}
