/* SPDX-License-Identifier: Apache-2.0
 *
 * One error per run, named by argv[1]; check_report.py runs it under
 * LD_PRELOAD=libheapguard.so and checks the report. Every case allocates,
 * frees and misbehaves in separate steps (report_programs.h). When the error
 * goes unreported the program says so on stdout and exits 0.
 */
#include "report_programs.h"

enum { kBlock = 32 };   /* a multiple of 16: its end touches a guarded-pool guard page */
enum { kSlackBlock = 20 }; /* not one: 12 bytes of slack after it */

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASE\n", argv[0]);
    return 2;
  }
  require_heapguard();
  const char *c = argv[1];
  if (strcmp(c, "double_free") == 0) {
    char *p = allocate_block(kBlock);
    release_block(p);
    release_block_again(p);
  } else if (strcmp(c, "invalid_free_stack") == 0) {
    free_stack_pointer();
  } else if (strcmp(c, "invalid_free_global") == 0) {
    free_global_pointer();
  } else if (strcmp(c, "invalid_free_interior") == 0) {
    free_interior_pointer(allocate_block(kBlock));
  } else if (strcmp(c, "invalid_free_wild") == 0) {
    free_wild_pointer();
  } else if (strcmp(c, "heap_buffer_overflow_right") == 0) {
    /* debug/fuzz: into the right redzone, found by free; hardened (guarded
     * pool): into the guard page, a fault at the write. */
    char *p = allocate_block(kBlock);
    write_past_end(p, kBlock);
    release_block(p);
  } else if (strcmp(c, "heap_buffer_overflow_slack") == 0) {
    char *p = allocate_block(kSlackBlock);
    write_past_end(p, kSlackBlock);
    release_block(p);
  } else if (strcmp(c, "heap_buffer_overflow_left") == 0) {
    char *p = allocate_block(kBlock);
    write_before_start(p);
    release_block(p);
  } else if (strcmp(c, "heap_use_after_free") == 0) {
    /* debug/fuzz: found when malloc_trim(0) drains the quarantine;
     * hardened (guarded pool): the freed slot is inaccessible, a fault. */
    char *p = allocate_block(kBlock);
    release_block(p);
    write_after_free(p);
    drain_quarantine_now();
  } else if (strcmp(c, "heap_use_after_free_reuse") == 0) {
    /* Run with quarantine_size_mb=0: found when the slot is handed out
     * again. */
    char *p = allocate_block(kBlock);
    release_block(p);
    write_after_free(p);
    allocate_again(kBlock);
  } else if (strcmp(c, "alloc_dealloc_mismatch") == 0) {
    release_with_wrong_family(allocate_block(kBlock));
  } else if (strcmp(c, "new_delete_type_mismatch") == 0) {
    release_with_wrong_size(allocate_object(kBlock), kBlock + 16);
  } else if (strcmp(c, "heap_metadata_corruption") == 0) {
    char *p = allocate_block(kBlock);
    /* The checker finds the smashed header from the block's address. */
    printf("block %p\n", (void *)p);
    fflush(stdout);
    smash_header(p);
    release_block(p);
  } else {
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
  }
  not_detected(c);
  return 0;
}
