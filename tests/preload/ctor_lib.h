/* SPDX-License-Identifier: Apache-2.0
 *
 * Interface of the shared library whose constructor allocates before the
 * program's main() (and possibly before anything else in the process asked
 * heapguard for memory) and whose destructor frees during exit.
 */
#ifndef HEAPGUARD_TESTS_PRELOAD_CTOR_LIB_H
#define HEAPGUARD_TESTS_PRELOAD_CTOR_LIB_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of blocks the constructor allocated (0 if it has not run). */
int ctor_lib_block_count(void);
/* Block i from the constructor, still owned by the library. */
const char *ctor_lib_block(int i);
/* 1 when every constructor block still holds what the constructor wrote. */
int ctor_lib_blocks_intact(void);

#ifdef __cplusplus
}
#endif

#endif /* HEAPGUARD_TESTS_PRELOAD_CTOR_LIB_H */
