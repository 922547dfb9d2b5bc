// SPDX-License-Identifier: Apache-2.0
// CanaryCodec fill and verify. Both walk the range one aligned 8-byte word at
// a time, so that each word of the pattern costs one multiply; only the
// partial words at the ends take narrower stores (fill) or a byte mask
// (verify).
#include "check/canary.h"

namespace heapguard {

namespace {

// Block memory is written as bytes by the program and read here as words.
using Word = uint64_t __attribute__((may_alias));

HEAPGUARD_FAST_PATH uint64_t load_word(uintptr_t aligned) { return *reinterpret_cast<const Word*>(aligned); }
HEAPGUARD_FAST_PATH void store_word(uintptr_t aligned, uint64_t v) { *reinterpret_cast<Word*>(aligned) = v; }

// Stores the low `n` (< 8) bytes of v at a, lowest byte first: at most three
// stores instead of a byte loop (fixed-size memcpy is one unaligned store).
HEAPGUARD_FAST_PATH void store_partial(uintptr_t a, uint64_t v, size_t n) {
  if (n & 1) {
    *reinterpret_cast<uint8_t*>(a) = uint8_t(v);
    a += 1;
    v >>= 8;
  }
  if (n & 2) {
    uint16_t v16 = uint16_t(v);
    __builtin_memcpy(reinterpret_cast<void*>(a), &v16, 2);
    a += 2;
    v >>= 16;
  }
  if (n & 4) {
    uint32_t v32 = uint32_t(v);
    __builtin_memcpy(reinterpret_cast<void*>(a), &v32, 4);
  }
}

// Bytes [0, n) of a word, n <= 8.
HEAPGUARD_FAST_PATH uint64_t low_bytes(size_t n) { return n >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * n)) - 1; }

HEAPGUARD_FAST_PATH uintptr_t first_set_byte(uintptr_t aligned, uint64_t diff) {
  return aligned + (unsigned(__builtin_ctzll(diff)) >> 3);
}

}  // namespace

void CanaryCodec::fill(uintptr_t block, uintptr_t from, uintptr_t to, bool zero_first) const {
  if (from >= to) return;
  const uint64_t seed = block_seed(block);
  uintptr_t a = from;
  if (uintptr_t head = a & 7) {
    uintptr_t w = a - head;
    size_t n = 8 - head;
    if (n > to - a) n = to - a;
    store_partial(a, pattern_word(seed, w) >> (8 * head), n);
    a += n;
  }
  for (; to - a >= 8; a += 8) store_word(a, pattern_word(seed, a));
  if (a < to) store_partial(a, pattern_word(seed, a), to - a);
  if (zero_first) *reinterpret_cast<uint8_t*>(from) = 0;
}

uintptr_t CanaryCodec::first_damaged(uintptr_t block, uintptr_t from, uintptr_t to, bool zero_first) const {
  if (from >= to) return 0;
  const uint64_t seed = block_seed(block);
  // The first word is masked to the range's bytes in it; zero_first is
  // folded into its expected value.
  uintptr_t w = from & ~uintptr_t{7};
  size_t lo = from - w;
  size_t hi = to - w < 8 ? to - w : 8;
  uint64_t expect = pattern_word(seed, w);
  if (zero_first) expect &= ~(uint64_t{0xff} << (8 * lo));
  uint64_t diff = (load_word(w) ^ expect) & low_bytes(hi) & ~low_bytes(lo);
  if (diff != 0) return first_set_byte(w, diff);
  uintptr_t a = w + 8;
  for (; a < to && to - a >= 8; a += 8) {
    diff = load_word(a) ^ pattern_word(seed, a);
    if (HEAPGUARD_UNLIKELY(diff != 0)) return first_set_byte(a, diff);
  }
  if (a < to) {
    diff = (load_word(a) ^ pattern_word(seed, a)) & low_bytes(to - a);
    if (diff != 0) return first_set_byte(a, diff);
  }
  return 0;
}

}  // namespace heapguard
