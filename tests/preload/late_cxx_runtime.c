/* SPDX-License-Identifier: Apache-2.0
 *
 * A C program (no libstdc++ at start-up) that dlopen()s a C++ module.
 * libheapguard.so does not depend on libstdc++ and its references to it
 * were resolved (to nothing) at start-up, so this checks the module's
 * operator new works, a nothrow new of an impossible size returns NULL, and
 * a throwing one, which cannot throw without a runtime heapguard can see,
 * ends with an out-of-memory report instead of a jump to address zero.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_check.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s MODULE.so\n", argv[0]);
    return 64;
  }
  heapguard_test_require_loaded();
  void *module = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (module == NULL) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  int (*alloc_ok)(void) = (int (*)(void))dlsym(module, "late_cxx_alloc_ok");
  int (*nothrow_huge)(void) = (int (*)(void))dlsym(module, "late_cxx_nothrow_huge");
  void (*throwing_huge)(void) = (void (*)(void))dlsym(module, "late_cxx_throwing_huge");
  HEAPGUARD_TEST_REQUIRE(alloc_ok != NULL && nothrow_huge != NULL && throwing_huge != NULL);
  printf("operator new and delete in the module: %s\n", alloc_ok() ? "ok" : "FAILED");
  printf("nothrow new of an impossible size: %s\n", nothrow_huge() ? "nullptr" : "FAILED");
  fflush(stdout);

  int err_pipe[2];
  HEAPGUARD_TEST_REQUIRE(pipe(err_pipe) == 0);
  pid_t pid = fork();
  HEAPGUARD_TEST_REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(err_pipe[1], 2);
    throwing_huge();
    _exit(0);
  }
  close(err_pipe[1]);
  char report[16384];
  size_t len = 0;
  ssize_t n;
  while ((n = read(err_pipe[0], report + len, sizeof report - 1 - len)) > 0) len += (size_t)n;
  report[len] = '\0';
  int status = 0;
  HEAPGUARD_TEST_REQUIRE(waitpid(pid, &status, 0) == pid);
  int aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  int reported = strstr(report, "ERROR: HeapGuard: out-of-memory on address 0x0 at pc ") != NULL &&
                 strstr(report, "no C++ runtime was loaded at start-up") != NULL;
  printf("throwing new of an impossible size: %s\n",
         aborted && reported ? "out-of-memory report, SIGABRT" : "FAILED");
  if (!(aborted && reported)) fprintf(stderr, "child status %d, stderr:\n%s", status, report);
  dlclose(module);
  return aborted && reported ? 0 : 1;
}
