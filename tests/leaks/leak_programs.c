/* SPDX-License-Identifier: Apache-2.0
 *
 * Leak-check programs (issue #4, item 7), one case per argv[1], run under
 * LD_PRELOAD=libheapguard.so with HEAPGUARD_MODE=debug and detect_leaks=1
 * by tests/leaks/CMakeLists.txt. Built -O1 -g. Allocations happen in named
 * noinline functions so the report can name them, and every case scrubs
 * the stack before returning from main: a stale copy of a leaked pointer in
 * a dead frame would otherwise make the conservative scan call it reachable.
 * Block sizes are distinct per role so the expected text can tell them apart.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../preload/preload_check.h"

#define NOINLINE __attribute__((noinline))

static void *volatile g_root;   /* a global root */
static void *volatile g_sink;   /* overwritten: what it held leaks */
static int g_ready_pipe[2];
static int g_block_pipe[2];

NOINLINE static void scrub_stack(void) {
  volatile char pad[32768];
  memset((char *)pad, 0, sizeof(pad));
  __asm__ volatile("" : : "r"(pad) : "memory");
}

/* (a) A true leak: the only pointer is overwritten. A reachable block next
 * to it must not be reported. */
NOINLINE static void make_leak(void) {
  g_sink = malloc(48);
  memset(g_sink, 0x11, 48);
}

NOINLINE static void make_large_leak(void) {
  g_sink = malloc(300000);
  memset(g_sink, 0x22, 300000);
}

/* (b) Reachable from a global. */
NOINLINE static void make_reachable(void) {
  g_root = malloc(64);
  memset(g_root, 0, 64);
}

/* (d) Reachable only through a chain of heap blocks: global -> a (small)
 * -> interior of b (large) -> c (small). */
struct node {
  void *next;
  char pad[40];
};
NOINLINE static void make_chain(void) {
  struct node *a = malloc(sizeof(struct node));
  char *b = malloc(200000);
  struct node *c = malloc(sizeof(struct node));
  memset(a, 0, sizeof(*a));
  memset(b, 0, 200000);
  memset(c, 0, sizeof(*c));
  a->next = b + 1000;                   /* interior pointer */
  memcpy(b + 150000, &c, sizeof(c));    /* aligned word deep in b */
  c->next = NULL;
  g_root = a;
}

/* (c), (e) Threads alive at exit. holder(): its block is reachable only from
 * its own stack (a volatile local); it then blocks in read() forever. */
NOINLINE static void *holder(void *arg) {
  void *volatile mine = malloc(72); /* a stack slot, not a register */
  memset((void *)mine, 0x33, 72);
  (void)arg;
  char c = 1;
  if (write(g_ready_pipe[1], &c, 1) != 1) abort();
  for (;;) {
    if (read(g_block_pipe[0], &c, 1) <= 0) pause();
  }
  return (void *)mine;
}

/* Keeps its block in a register-heavy spin; never blocks. */
static volatile int g_spin = 1;
NOINLINE static void *spinner(void *arg) {
  void *volatile mine = malloc(88); /* usually a stack slot */
  memset((void *)mine, 0x44, 88);
  (void)arg;
  char c = 1;
  if (write(g_ready_pipe[1], &c, 1) != 1) abort();
  while (g_spin) {
  }
  return (void *)mine;
}

static void start_threads(void *(*fn)(void *), int n) {
  for (int i = 0; i < n; ++i) {
    pthread_t t;
    if (pthread_create(&t, NULL, fn, NULL) != 0) abort();
    pthread_detach(t);
    char c;
    if (read(g_ready_pipe[0], &c, 1) != 1) abort();
  }
}

/* An indirect leak: a leaked block (40) holding the only pointer to
 * another (24). */
NOINLINE static void make_leak_with_child(void) {
  void **parent = malloc(40);
  memset(parent, 0, 40);
  parent[0] = malloc(24);
  memset(parent[0], 0, 24);
  g_sink = parent;
}

static void *noop(void *arg) { return arg; }

/* (f) Reachable only from static TLS: the main thread's (mapped by the
 * dynamic loader, away from its stack) and a blocked thread's (at the top
 * of its stack mapping). The scan reads exactly these TLS blocks, not the
 * whole anonymous mapping around them. */
static __thread void *volatile t_root;
NOINLINE static void make_tls_reachable(size_t size) {
  t_root = malloc(size);
  memset((void *)t_root, 0x55, size);
}
NOINLINE static void *tls_holder(void *arg) {
  make_tls_reachable(104);
  (void)arg;
  scrub_stack();
  char c = 1;
  if (write(g_ready_pipe[1], &c, 1) != 1) abort();
  for (;;) {
    if (read(g_block_pipe[0], &c, 1) <= 0) pause();
  }
  return NULL;
}

int main(int argc, char **argv) {
  heapguard_test_require_loaded();
  if (argc < 2) return 2;
  const char *c = argv[1];
  if (pipe(g_ready_pipe) != 0 || pipe(g_block_pipe) != 0) return 2;
  if (strcmp(c, "true_leak") == 0) {
    make_reachable();
    make_leak();
    g_sink = NULL;
  } else if (strcmp(c, "large_leak") == 0) {
    make_large_leak();
    g_sink = NULL;
  } else if (strcmp(c, "reachable_global") == 0) {
    make_reachable();
  } else if (strcmp(c, "heap_chain") == 0) {
    make_chain();
  } else if (strcmp(c, "thread_stack") == 0) {
    start_threads(holder, 1);
  } else if (strcmp(c, "threads_running_leak") == 0) {
    start_threads(holder, 3);
    start_threads(spinner, 2);
    make_leak_with_child();
    g_sink = NULL;
  } else if (strcmp(c, "threads_joined") == 0) {
    /* Joined threads leave their stacks (DTV and all) in glibc's cache:
     * nothing of the program's leaks. */
    for (int i = 0; i < 8; ++i) {
      pthread_t t;
      if (pthread_create(&t, NULL, noop, NULL) != 0) abort();
      pthread_join(t, NULL);
    }
    make_reachable();
  } else if (strcmp(c, "reachable_tls") == 0) {
    make_tls_reachable(96);
    start_threads(tls_holder, 1);
  } else {
    return 2;
  }
  scrub_stack();
  return 0;
}
