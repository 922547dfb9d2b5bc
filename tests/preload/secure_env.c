/* SPDX-License-Identifier: Apache-2.0
 *
 * What a process sees of heapguard's configuration: whether the kernel ran
 * it AT_SECURE, the HEAPGUARD_ variables its environment holds, and the mode
 * heapguard chose. The preload_secure_env tests run it with HEAPGUARD_MODE=fast
 * twice: as built, where heapguard must obey the variables, and as a setgid
 * copy, where a caller must not be able to weaken a privileged program, so
 * heapguard must ignore them although the program still sees them.
 *
 * Linked with libheapguard.so (absolute RUNPATH) as well as preloaded: in a
 * secure process the loader ignores LD_PRELOAD paths with a slash, so only a
 * real dependency puts heapguard into the setgid copy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>

/* Weak, as preload_check.h declares them: NULL when heapguard is absent. */
const char *heapguard_mode(void) __attribute__((weak));
int heapguard_owns(const void *p) __attribute__((weak));

static const char *env_or_unset(const char *name) {
  const char *value = getenv(name);
  return value != NULL ? value : "(unset)";
}

int main(void) {
  void *p = malloc(24);
  printf("AT_SECURE=%lu\n", getauxval(AT_SECURE));
  printf("environment HEAPGUARD_MODE=%s\n", env_or_unset("HEAPGUARD_MODE"));
  printf("environment HEAPGUARD_OPTIONS=%s\n", env_or_unset("HEAPGUARD_OPTIONS"));
  printf("heapguard serves malloc: %s\n", heapguard_owns != NULL && heapguard_owns(p) == 1 ? "yes" : "no");
  printf("heapguard_mode()=%s\n", heapguard_mode != NULL ? heapguard_mode() : "(heapguard absent)");
  free(p);
  return 0;
}
