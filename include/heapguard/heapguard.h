/* SPDX-License-Identifier: Apache-2.0
 *
 * heapguard public extras. The allocation API itself (malloc, free, operator
 * new, ...) needs no header: heapguard replaces the libc names. This header
 * only declares what heapguard adds, all under the heapguard_ prefix, usable
 * from C and C++. Every function here is safe to call before the first malloc.
 */
#ifndef HEAPGUARD_HEAPGUARD_H
#define HEAPGUARD_HEAPGUARD_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the loaded library, e.g. "0.1.0". */
const char *heapguard_version(void);

/* Name of the active mode: "fast", "hardened", "debug" or "fuzz". It is read
 * once from HEAPGUARD_MODE at start-up (ignored in AT_SECURE processes). */
const char *heapguard_mode(void);

/* Heap figures for this process; exact when no other thread is allocating
 * during the call. */
struct heapguard_stats {
  size_t allocated_bytes;   /* usable bytes of live blocks handed to the program */
  size_t live_blocks;       /* number of live blocks */
  size_t small_mapped_bytes;/* slab memory currently backed by the OS (committed, not purged) */
  size_t large_mapped_bytes;/* bytes mapped for large blocks, including the reuse cache */
  size_t cached_bytes;      /* free slots held in thread caches and empty slabs, not yet returned */
  size_t purged_bytes_total;/* bytes returned to the OS since start-up */
  size_t thread_caches;     /* thread caches in use */
};

/* Fills *out; returns 0, or -1 if out is NULL. Takes allocator locks briefly. */
int heapguard_get_stats(struct heapguard_stats *out);

/* Returns 1 if p is the start of a live block of this heapguard instance,
 * 0 otherwise (NULL, foreign, interior or freed pointers). Never faults. */
int heapguard_owns(const void *p);

#ifdef __cplusplus
}
#endif

#endif /* HEAPGUARD_HEAPGUARD_H */
