// SPDX-License-Identifier: Apache-2.0
//
// bench_launch: the small process between tools/bench/run and a workload. On
// Linux a child's ru_maxrss includes the peak RSS of the process it was forked
// from (exec folds the old mm's high-water mark in), so a workload forked
// straight from the Python runner would report the runner's ~20 MiB or more.
// Forked from this small launcher instead, it starts from ~1 MiB.
//
//   bench_launch RESULT_FILE COMMAND [ARGS...]
// Runs COMMAND with LD_PRELOAD set to $BENCH_PRELOAD (if any) in the child
// only, waits for it, and writes "seconds maxrss_kib wait_status" to
// RESULT_FILE. ru_maxrss from wait4 is the larger of the child's own peak and
// that of any descendant it reaped. Exits 0 when the result was written.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s RESULT_FILE COMMAND [ARGS...]\n", argv[0]);
    return 2;
  }
  const char* preload = getenv("BENCH_PRELOAD");
  const double start = now_seconds();
  const pid_t pid = fork();
  if (pid < 0) {
    perror("bench_launch: fork");
    return 2;
  }
  if (pid == 0) {
    // The preload goes into the child only, so the launcher itself never runs
    // on the allocator under test and cannot raise the child's RSS floor.
    if (preload != NULL && preload[0] != '\0' && setenv("LD_PRELOAD", preload, 1) != 0) _exit(127);
    unsetenv("BENCH_PRELOAD");
    execv(argv[2], argv + 2);
    fprintf(stderr, "bench_launch: exec %s: %s\n", argv[2], strerror(errno));
    _exit(127);
  }
  int status = 0;
  struct rusage usage;
  while (wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) {
      perror("bench_launch: wait4");
      return 2;
    }
  }
  const double seconds = now_seconds() - start;
  FILE* out = fopen(argv[1], "w");
  if (out == NULL) {
    perror("bench_launch: result file");
    return 2;
  }
  fprintf(out, "%.6f %ld %d\n", seconds, usage.ru_maxrss, status);
  return fclose(out) == 0 ? 0 : 2;
}
