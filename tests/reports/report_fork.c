/* SPDX-License-Identifier: Apache-2.0
 *
 * A double free in a forked child of a block the parent allocated and
 * freed: the child's report carries the child's pid and the parent's stacks
 * (the forking thread keeps its number, T0). The parent prints the child's
 * pid and how it ended. With argv[1] = "parent-too" the parent then frees
 * the block a second time itself, for log_path: two processes, two files.
 */
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report_programs.h"

int main(int argc, char **argv) {
  require_heapguard();
  int parent_too = argc > 1 && strcmp(argv[1], "parent-too") == 0;
  char *p = allocate_block(32);
  release_block(p);
  fflush(stdout);
  pid_t child = fork();
  if (child < 0) {
    perror("fork");
    return 3;
  }
  if (child == 0) {
    release_block_again(p);
    not_detected("double free in the forked child");
    return 0;
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child) {
    perror("waitpid");
    return 3;
  }
  if (WIFSIGNALED(status)) printf("child %d signal %d\n", (int)child, WTERMSIG(status));
  else printf("child %d exit %d\n", (int)child, WEXITSTATUS(status));
  fflush(stdout);
  if (parent_too) {
    release_block_again(p);
    not_detected("double free in the parent");
  }
  return 0;
}
