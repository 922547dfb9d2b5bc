/* SPDX-License-Identifier: Apache-2.0
 * A program that closes stderr before it exits, as coreutils programs do:
 * print_stats=1 must still produce heapguard's exit statistics. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  free(malloc(100));
  puts("stderr closed");
  fclose(stderr);
  return 0;
}
