/* SPDX-License-Identifier: Apache-2.0
 * A program linked with libheapguard.a "first", without --whole-archive:
 * every entry point (including ones only libc would call) and the fork
 * handlers must come along with malloc. Forks while threads allocate. */
#include <heapguard/heapguard.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int g_stop;

static void *churn(void *arg) {
  (void)arg;
  void *ring[64] = {0};
  for (unsigned i = 0; !g_stop; ++i) {
    free(ring[i % 64]);
    ring[i % 64] = malloc((i * 2654435761u >> 20) & 4095);
  }
  for (int i = 0; i < 64; ++i) free(ring[i]);
  return NULL;
}

int main(void) {
  void *m = memalign(64, 100), *v = valloc(100), *a = aligned_alloc(256, 100), *p = NULL;
  int ok = posix_memalign(&p, 128, 100) == 0 && heapguard_owns(m) && heapguard_owns(v) && heapguard_owns(a) &&
           heapguard_owns(p);
  free(m);
  free(v);
  free(a);
  free(p);
  pthread_t threads[2];
  for (int i = 0; i < 2; ++i) pthread_create(&threads[i], NULL, churn, NULL);
  int children_ok = 0;
  for (int i = 0; i < 200; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      alarm(10);
      for (int k = 0; k < 100; ++k) free(malloc((size_t)k * 40));
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    children_ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  g_stop = 1;
  for (int i = 0; i < 2; ++i) pthread_join(threads[i], NULL);
  printf("aligned entry points owned: %s; forks with threads: %d/200\n", ok ? "yes" : "no", children_ok);
  return ok && children_ok == 200 ? 0 : 1;
}
