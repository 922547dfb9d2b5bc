/* SPDX-License-Identifier: Apache-2.0
 * fork() when another library's fork handlers allocate (atfork_lib.c):
 * heapguard's handlers hold every allocator lock while those run, and the
 * forking thread must still be able to allocate instead of deadlocking. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_check.h"

int atfork_lib_calls(void);

int main(void) {
  heapguard_test_require_loaded();
  int children_ok = 0;
  for (int i = 0; i < 20; ++i) {
    pid_t pid = fork();
    HEAPGUARD_TEST_REQUIRE(pid >= 0);
    if (pid == 0) {
      char *p = malloc(200);
      free(p);
      _exit(atfork_lib_calls() >= 1 ? 0 : 3);
    }
    int status = 0;
    HEAPGUARD_TEST_REQUIRE(waitpid(pid, &status, 0) == pid);
    children_ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  printf("20 forks with allocating fork handlers: %d children ok, %d handler calls in the parent\n", children_ok,
         atfork_lib_calls());
  return children_ok == 20 ? 0 : 1;
}
