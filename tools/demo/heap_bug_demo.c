/* SPDX-License-Identifier: Apache-2.0
 * A small program with a classic heap bug, for the README's first command:
 * a record is released on an error path and then again by its owner.
 * Under glibc this double free may pass silently or abort with a terse
 * message; under heapguard it is stopped with a report naming the block. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct record {
  char name[24];
  int fields;
};

/* noinline: at -O1 gcc would fold it into main, and the report would name main. */
__attribute__((noinline)) static struct record* parse_record(const char* line) {
  struct record* r = malloc(sizeof *r);
  if (r == NULL) return NULL;
  strncpy(r->name, line, sizeof r->name - 1);
  r->name[sizeof r->name - 1] = '\0';
  r->fields = (int)strlen(line);
  if (r->fields > 8) {
    /* Error path frees the record but still returns it: the bug. */
    free(r);
  }
  return r;
}

int main(void) {
  const char* lines[] = {"alpha", "beta", "a-rather-long-record"};
  for (int i = 0; i < 3; ++i) {
    struct record* r = parse_record(lines[i]);
    printf("parsed %s\n", lines[i]);
    fflush(stdout);
    free(r);
  }
  puts("done");
  return 0;
}
