/* SPDX-License-Identifier: Apache-2.0
 *
 * Interface of the dlopen'd plugin (plugin.cpp). Blocks cross the module
 * boundary in both directions, so each side frees memory the other side
 * allocated, across repeated load and unload of the plugin.
 */
#ifndef HEAPGUARD_TESTS_PRELOAD_PLUGIN_H
#define HEAPGUARD_TESTS_PRELOAD_PLUGIN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Hands over the blocks the plugin's constructor allocated: fills out[] and
 * sizes[] (each byte of block b is plugin_block_byte(b, i)) and returns how
 * many; the caller frees them. Returns 0 on a second call. */
typedef int (*PluginTakeFn)(void **out, size_t *sizes, int max);
/* Gives the plugin blocks the program allocated (byte i of each is
 * (char)(i * 13 + 5)); its destructor checks and frees them and adds the
 * count to *freed, or stores -1 there on a corrupted block. */
typedef void (*PluginAdoptFn)(void **blocks, const size_t *sizes, int n, int *freed);
/* Number of entries in the plugin's C++ global table (built by a dynamic
 * initialiser, destroyed by __cxa_finalize on dlclose). */
typedef int (*PluginTableSizeFn)(void);

#define PLUGIN_BLOCK_BYTE(b, i) ((char)((b) * 31 + (i) * 3 + 1))
#define PROGRAM_BLOCK_BYTE(i) ((char)((i) * 13 + 5))

#ifdef __cplusplus
}
#endif

#endif /* HEAPGUARD_TESTS_PRELOAD_PLUGIN_H */
