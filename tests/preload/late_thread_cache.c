/* SPDX-License-Identifier: Apache-2.0
 * Threads whose first allocation happens inside a pthread key destructor,
 * after heapguard's own key destructor has had its turn: their caches must
 * still be given back when the thread ends, not leak one per thread. */
#include <heapguard/heapguard.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "preload_check.h"

int heapguard_get_stats(struct heapguard_stats *out) __attribute__((weak));

static pthread_key_t g_key;

static void destructor(void *value) {
  (void)value;
  void *p = malloc(64);
  free(p);
}

static void *body(void *arg) {
  (void)arg;
  pthread_setspecific(g_key, (void *)1);  /* no allocation before exit */
  return NULL;
}

int main(void) {
  heapguard_test_require_loaded();
  HEAPGUARD_TEST_REQUIRE(heapguard_get_stats != NULL);
  HEAPGUARD_TEST_REQUIRE(pthread_key_create(&g_key, destructor) == 0);
  struct heapguard_stats before, after;
  heapguard_get_stats(&before);
  for (int i = 0; i < 500; ++i) {
    pthread_t t;
    HEAPGUARD_TEST_REQUIRE(pthread_create(&t, NULL, body, NULL) == 0);
    pthread_join(t, NULL);
  }
  heapguard_get_stats(&after);
  printf("500 threads allocating only in a key destructor: %s\n",
         after.thread_caches <= before.thread_caches + 1 ? "caches returned" : "caches leaked");
  if (after.thread_caches > before.thread_caches + 1)
    fprintf(stderr, "thread caches before %zu, after %zu\n", before.thread_caches, after.thread_caches);
  return after.thread_caches <= before.thread_caches + 1 ? 0 : 1;
}
