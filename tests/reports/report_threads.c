/* SPDX-License-Identifier: Apache-2.0
 *
 * A double free in a thread other than the main one, while four more
 * threads allocate and free as fast as they can. The threads that touch the
 * block are started one after another, each allocating first, so their
 * numbers are known: allocated by T1, freed by T2, freed again by T3 (the
 * churning threads are started only after T3 has its number).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "report_programs.h"

enum { kChurnThreads = 4, kChurnOpsBeforeGo = 2000 };

static char *g_block;
static atomic_int g_faulting_ready;
static atomic_int g_go;
static atomic_long g_churn_ops;

/* Gives the calling thread its thread cache, and so its number. */
static void take_thread_number(void) {
  free(opaque(malloc(1)));
}

static void *allocating_thread(void *arg) {
  (void)arg;
  take_thread_number();
  g_block = allocate_block(32);
  KEEP_FRAME();
  return NULL;
}

static void *freeing_thread(void *arg) {
  (void)arg;
  take_thread_number();
  release_block(g_block);
  KEEP_FRAME();
  return NULL;
}

static void *faulting_thread(void *arg) {
  (void)arg;
  take_thread_number();
  atomic_store(&g_faulting_ready, 1);
  while (!atomic_load(&g_go)) sched_yield();
  release_block_again(g_block);
  KEEP_FRAME();
  return NULL;
}

static void *churn_thread(void *arg) {
  uint32_t x = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
  void *held[64] = {0};
  for (;;) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    unsigned i = x % 64;
    free(held[i]);
    held[i] = malloc(1 + (x >> 8) % 2048);
    if (held[i] != NULL) memset(held[i], (int)i, 1);
    atomic_fetch_add(&g_churn_ops, 1);
  }
  return NULL;
}

static void run_to_end(pthread_t t) {
  if (pthread_join(t, NULL) != 0) {
    fprintf(stderr, "pthread_join failed\n");
    exit(3);
  }
}

int main(void) {
  require_heapguard();
  take_thread_number();
  pthread_t t;
  pthread_create(&t, NULL, allocating_thread, NULL);
  run_to_end(t);
  pthread_create(&t, NULL, freeing_thread, NULL);
  run_to_end(t);

  pthread_t faulting;
  pthread_create(&faulting, NULL, faulting_thread, NULL);
  while (!atomic_load(&g_faulting_ready)) sched_yield();
  for (uintptr_t i = 0; i < kChurnThreads; ++i) {
    pthread_t churn;
    pthread_create(&churn, NULL, churn_thread, (void *)(i + 1));
  }
  while (atomic_load(&g_churn_ops) < kChurnOpsBeforeGo) sched_yield();
  atomic_store(&g_go, 1);
  run_to_end(faulting);
  not_detected("double free in thread T3");
  return 0;
}
