/* SPDX-License-Identifier: Apache-2.0
 *
 * Three errors that leave the heap consistent, one after another, then a
 * line on stdout: with halt_on_error=0 all three are reported and the
 * program reaches its end (exit status: exitcode); with a suppression for
 * one of them, that one is silent.
 */
#include "report_programs.h"

int main(void) {
  require_heapguard();
  release_with_wrong_family(allocate_block(32));   /* alloc-dealloc-mismatch */
  free_interior_pointer(allocate_block(64));        /* invalid-free */
  char *q = allocate_block(48);
  release_block(q);
  release_block_again(q);                           /* double-free */
  printf("reached the end\n");
  fflush(stdout);
  return 0;
}
