// SPDX-License-Identifier: Apache-2.0
// Poisoning (layer check): fill patterns for fresh and freed blocks and the
// check that a freed block was not written while it waited in quarantine.
// Threats: reads of uninitialised or freed memory get a recognisable value
// instead of stale secrets or pointers (information leaks), and a write
// after free is caught when the freed slot is handed out again (or drained
// from the quarantine by malloc_trim), before a new owner uses it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/core.h"

namespace heapguard {

// Fresh allocation, debug and fuzz modes (not calloc): uninitialised reads
// show up as 0xbebebebe... instead of plausible zeros.
inline constexpr uint8_t kAllocFill = 0xBE;
// Freed block, debug and fuzz modes. Hardened mode poisons with zero.
inline constexpr uint8_t kFreeFill = 0xFD;
// uaf_check=bounded verifies this many bytes at each end of a freed block:
// most use-after-free writes hit a field near the start (a vtable, a next
// pointer) or the end, and the cost stays constant for big blocks. 16
// bytes: the first two words (where freed objects' vtable and next-pointer
// fields sit) and the last two.
inline constexpr size_t kBoundedCheckBytes = 16;

// Writes `byte` over [p, p + n). Any alignment; no allocation.
void poison_fill(uintptr_t p, size_t n, uint8_t byte);

// The address of the first byte of [p, p + n) that is not `byte`, or 0.
// Reads (never writes) whole aligned 8-byte words, so it may read up to 7
// bytes on either side of the range; they share the range's page.
uintptr_t poison_first_damaged(uintptr_t p, size_t n, uint8_t byte);

// Like poison_first_damaged, but checks only [p, p + bound) and
// [p + n - bound, p + n); the whole range when n <= 2 * bound.
uintptr_t poison_first_damaged_bounded(uintptr_t p, size_t n, uint8_t byte, size_t bound);

// Hardened's inline forms for small blocks, in whole aligned words: p is
// 8-aligned and the block's slot ends at an 8-aligned address at or past
// p + n, so rounding n up to a word stays in the slot (the bytes past n are
// slack, whose canary was already verified).
HEAPGUARD_FAST_PATH void zero_words(uintptr_t p, size_t n) {
  auto* word = reinterpret_cast<uint64_t*>(p);
  size_t words = (n + 7) / 8;
  if (words > 4) {
    __builtin_memset(word, 0, words * 8);
    return;
  }
  for (size_t i = 0; i < words; ++i) word[i] = 0;
}

// The first nonzero byte within the first and last `bound` bytes (whole
// words) of a block zeroed by zero_words(p, n), or 0.
HEAPGUARD_FAST_PATH uintptr_t first_nonzero_words_bounded(uintptr_t p, size_t n, size_t bound) {
  const auto* word = reinterpret_cast<const uint64_t*>(p);
  size_t words = (n + 7) / 8;
  size_t edge = (bound + 7) / 8;
  // The last `bound` requested bytes start in word (n - bound) / 8, which
  // is one word further down than words - edge when n is not a multiple of 8.
  size_t tail = n > bound ? (n - bound) / 8 : 0;
  for (size_t i = 0; i < words; ++i) {
    if (i == edge && tail > edge) i = tail;
    if (HEAPGUARD_UNLIKELY(word[i] != 0)) return p + 8 * i + unsigned(__builtin_ctzll(word[i])) / 8;
  }
  return 0;
}

}  // namespace heapguard
