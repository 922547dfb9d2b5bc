/* SPDX-License-Identifier: Apache-2.0
 *
 * Guard-page faults, one case per run (argv[1]), for run_fault.py. The
 * allocation, the free and the faulting access are separate named static
 * functions, kept out of line and out of tail position, so the report must
 * name each under its heading (built -O1 -g without -rdynamic: the names are
 * only in .symtab). Also the program's own SIGSEGV handler, installed before
 * heapguard's (.preinit_array runs before any library constructor) or after
 * it (in main), which must still receive the faults that are not
 * heapguard's; and a wild fault with no handler, which must still kill the
 * process with SIGSEGV.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Weak: NULL unless heapguard is in the process. */
const char *heapguard_mode(void) __attribute__((weak));
int heapguard_owns(const void *p) __attribute__((weak));

#define STEP static __attribute__((noinline, unused))
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

static inline void *opaque(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}

STEP char *make_block(size_t n) {
  char *p = opaque(malloc(n));
  KEEP_FRAME();
  return p;
}

STEP void release_block(char *p) {
  free(opaque(p));
  KEEP_FRAME();
}

STEP void overflow_write(char *p, size_t i) {
  ((volatile char *)p)[i] = 'x';
  KEEP_FRAME();
}

STEP int overflow_read(char *p, size_t i) {
  int v = ((volatile char *)p)[i];
  KEEP_FRAME();
  return v;
}

STEP void underflow_write(char *p, size_t i) {
  ((volatile char *)p)[-(ptrdiff_t)i] = 'x';
  KEEP_FRAME();
}

STEP int underflow_read(char *p, size_t i) {
  int v = ((volatile char *)p)[-(ptrdiff_t)i];
  KEEP_FRAME();
  return v;
}

STEP int read_after_free(char *p, size_t i) {
  int v = ((volatile char *)p)[i];
  KEEP_FRAME();
  return v;
}

STEP void write_after_free(char *p, size_t i) {
  ((volatile char *)p)[i] = 'y';
  KEEP_FRAME();
}

/* A page of the program's own that faults: not heapguard memory. */
static char *g_wild_page;

STEP void wild_write(void) {
  ((volatile char *)g_wild_page)[8] = 1;
  KEEP_FRAME();
}

static sigjmp_buf g_jump;
static volatile sig_atomic_t g_own_hits;
static volatile uintptr_t g_own_addr;

static void own_handler(int sig, siginfo_t *info, void *uctx) {
  (void)sig;
  (void)uctx;
  g_own_hits = g_own_hits + 1;
  g_own_addr = (uintptr_t)info->si_addr;
  siglongjmp(g_jump, 1);
}

static void install_own_handler(void) {
  struct sigaction act;
  memset(&act, 0, sizeof act);
  act.sa_sigaction = own_handler;
  act.sa_flags = SA_SIGINFO;
  sigemptyset(&act.sa_mask);
  sigaction(SIGSEGV, &act, NULL);
}

static int current_is_own_handler(void) {
  struct sigaction cur;
  sigaction(SIGSEGV, NULL, &cur);
  return (cur.sa_flags & SA_SIGINFO) != 0 && cur.sa_sigaction == own_handler;
}

static int g_preinit_installed;

/* Runs before every shared library's constructor, heapguard's included,
 * when argv[1] asks for it (preinit functions get argc and argv). */
static void preinit(int argc, char **argv, char **envp) {
  (void)envp;
  if (argc > 1 && strncmp(argv[1], "own_before", 10) == 0) {
    install_own_handler();
    g_preinit_installed = 1;
  }
}
__attribute__((section(".preinit_array"), used)) static void (*const g_preinit)(int, char **, char **) = preinit;

static int expect_own_handler_gets_wild_fault(void) {
  g_wild_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (g_wild_page == MAP_FAILED) return 4;
  if (sigsetjmp(g_jump, 1) == 0) {
    wild_write();
    fprintf(stderr, "the wild write did not fault\n");
    return 5;
  }
  if (g_own_hits != 1 || g_own_addr != (uintptr_t)g_wild_page + 8) {
    fprintf(stderr, "own handler: %d hits, address %#lx (want %p)\n", (int)g_own_hits,
            (unsigned long)g_own_addr, (void *)(g_wild_page + 8));
    return 6;
  }
  printf("own handler received the fault at the wild page\n");
  return 0;
}

static size_t arg_size(int argc, char **argv, int i, size_t fallback) {
  return argc > i ? (size_t)strtoull(argv[i], NULL, 0) : fallback;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CASE [SIZE]\n", argv[0]);
    return 2;
  }
  if (heapguard_mode == NULL) {
    fprintf(stderr, "heapguard is not loaded\n");
    return 2;
  }
  const char *c = argv[1];
  size_t n = arg_size(argc, argv, 2, 32);
  /* Blocks end at a 16-byte boundary against the guard: the first byte past
   * the rounded size is the guard page. */
  size_t rounded = (n + 15) & ~(size_t)15;

  if (strcmp(c, "overflow_write") == 0) {
    char *p = make_block(n);
    overflow_write(p, rounded);
  } else if (strcmp(c, "overflow_read") == 0) {
    char *p = make_block(n);
    return overflow_read(p, rounded);
  } else if (strcmp(c, "underflow_write") == 0) {
    char *p = make_block(n);
    underflow_write(p, 1);
  } else if (strcmp(c, "underflow_read") == 0) {
    char *p = make_block(n);
    return underflow_read(p, 1);
  } else if (strcmp(c, "read_after_free") == 0) {
    char *p = make_block(n);
    p[0] = 1;
    release_block(p);
    return read_after_free(p, 8);
  } else if (strcmp(c, "write_after_free") == 0) {
    char *p = make_block(n);
    release_block(p);
    write_after_free(p, 8);
  } else if (strcmp(c, "wild") == 0) {
    /* No handler of the program's: the default action must still kill it. */
    g_wild_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    free(make_block(16));
    wild_write();
    return 7;
  } else if (strcmp(c, "own_after") == 0) {
    free(make_block(16)); /* heapguard is initialised and its handler in place */
    if (current_is_own_handler()) return 3;
    struct sigaction cur;
    sigaction(SIGSEGV, NULL, &cur);
    if (cur.sa_handler == SIG_DFL) {
      fprintf(stderr, "heapguard installed no SIGSEGV handler\n");
      return 3;
    }
    install_own_handler();
    return expect_own_handler_gets_wild_fault();
  } else if (strcmp(c, "own_before") == 0 || strcmp(c, "own_before_heap") == 0) {
    free(make_block(16));
    if (!g_preinit_installed) return 3;
    if (current_is_own_handler()) {
      fprintf(stderr, "heapguard did not install its handler over the program's\n");
      return 3;
    }
    if (strcmp(c, "own_before") == 0) return expect_own_handler_gets_wild_fault();
    /* A heap fault is heapguard's: reported, never passed to the program. */
    char *p = make_block(n);
    if (sigsetjmp(g_jump, 1) == 0) overflow_write(p, rounded);
    fprintf(stderr, "the program's handler received a heap fault\n");
    return 8;
  } else {
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
  }
  fprintf(stderr, "no fault\n");
  return 9;
}
