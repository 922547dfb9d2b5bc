// SPDX-License-Identifier: Apache-2.0
// A hash of a run of words (a call stack's return addresses), for the hot
// tables keyed by whole stacks: the stack depot and the unwinder's verdict
// cache, each hashing every capture. The per-word multiplies do not depend
// on each other, so the serial part is an add and a rotate per word; one
// full mix at the end. Not keyed: these tables hold no attacker-chosen keys
// worth colliding, only the program's own call sites.
#pragma once

#include <bit>
#include <cstdint>

#include "core/attributes.h"

namespace heapguard {

HEAPGUARD_FAST_PATH uint64_t hash_words(const uintptr_t* words, unsigned n, uint64_t seed) {
  uint64_t h = seed ^ n;
  for (unsigned i = 0; i < n; ++i) h = std::rotl(h + words[i] * 0x9e3779b97f4a7c15ULL, 23);
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 29;
  return h;
}

}  // namespace heapguard
