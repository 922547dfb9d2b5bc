// SPDX-License-Identifier: Apache-2.0
// Compiler attributes used to keep fast paths small and slow paths out of line.
#pragma once

#define HEAPGUARD_FAST_PATH inline __attribute__((always_inline))
#define HEAPGUARD_SLOW_PATH __attribute__((noinline))
#define HEAPGUARD_COLD __attribute__((noinline, cold))
#define HEAPGUARD_EXPORT extern "C" __attribute__((visibility("default")))
#define HEAPGUARD_LIKELY(x) __builtin_expect(!!(x), 1)
#define HEAPGUARD_UNLIKELY(x) __builtin_expect(!!(x), 0)
