/* SPDX-License-Identifier: Apache-2.0
 *
 * The first allocation of the process comes from dlsym() inside
 * .preinit_array: before any constructor (heapguard's included) and before
 * libc has set environ. A failed lookup makes the loader allocate its error
 * message. heapguard must initialise there, and still read HEAPGUARD_MODE
 * (from /proc/self/environ, since environ is not set yet).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload_check.h"

const char *heapguard_mode(void) __attribute__((weak));

static int g_environ_was_null = -1;
static int g_dlsym_failed = -1;
static void *g_early_block;

static void preinit(int argc, char **argv, char **envp) {
  extern char **environ;
  (void)argc;
  (void)argv;
  (void)envp;
  g_environ_was_null = environ == NULL;
  g_dlsym_failed = dlsym(RTLD_DEFAULT, "heapguard_no_such_symbol") == NULL;
  g_early_block = malloc(100);
}

__attribute__((section(".preinit_array"), used)) static void (*const g_preinit)(int, char **, char **) = preinit;

int main(void) {
  heapguard_test_require_loaded();
  const char *want = getenv("HEAPGUARD_MODE");
  const char *got = heapguard_mode != NULL ? heapguard_mode() : "(not loaded)";
  printf("environ unset in preinit: %s\n", g_environ_was_null == 1 ? "yes" : "no");
  printf("dlsym in preinit: %s\n", g_dlsym_failed == 1 ? "failed as expected" : "unexpected");
  printf("early block owned by heapguard: %s\n", heapguard_test_owned(g_early_block) ? "yes" : "no");
  printf("mode read despite early init: %s\n", want != NULL && strcmp(want, got) == 0 ? "yes" : "no");
  free(g_early_block);
  return 0;
}
