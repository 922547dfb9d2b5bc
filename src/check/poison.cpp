// SPDX-License-Identifier: Apache-2.0
// Poison fill and verify. Verification compares aligned memory against the
// byte repeated, 64 bytes per step with one branch, and narrows down to the
// exact byte (16 bytes, then a word, then ctz) only once a step has found a
// difference, so a clean 4 KiB block costs about as much as reading it.
#include "check/poison.h"

namespace heapguard {

namespace {

using Word = uint64_t __attribute__((may_alias));
// Two words as one vector register where the target has one (SSE2, NEON),
// a pair of words elsewhere: generic vectors need no intrinsics and no #if.
// Loaded only from 16-byte aligned addresses.
using Pair = uint64_t __attribute__((vector_size(16), may_alias));

HEAPGUARD_FAST_PATH uint64_t load_word(uintptr_t aligned) { return *reinterpret_cast<const Word*>(aligned); }

HEAPGUARD_FAST_PATH uint64_t low_bytes(size_t n) { return n >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * n)) - 1; }

HEAPGUARD_FAST_PATH uintptr_t first_set_byte(uintptr_t aligned, uint64_t diff) {
  return aligned + (unsigned(__builtin_ctzll(diff)) >> 3);
}

}  // namespace

void poison_fill(uintptr_t p, size_t n, uint8_t byte) {
  // memset is already word-at-a-time (vector-wide in glibc) and allocates
  // nothing; -fno-builtin-malloc does not stop the compiler from using it.
  __builtin_memset(reinterpret_cast<void*>(p), byte, n);
}

uintptr_t poison_first_damaged(uintptr_t p, size_t n, uint8_t byte) {
  if (n == 0) return 0;
  const uint64_t pattern = uint64_t{byte} * 0x0101010101010101ULL;
  const uintptr_t end = p + n;
  uintptr_t w = p & ~uintptr_t{7};
  size_t lo = p - w;
  size_t hi = end - w < 8 ? end - w : 8;
  uint64_t diff = (load_word(w) ^ pattern) & low_bytes(hi) & ~low_bytes(lo);
  if (diff != 0) return first_set_byte(w, diff);
  uintptr_t a = w + 8;
  // One more word puts the vector loads on 16-byte boundaries.
  if ((a & 8) != 0 && a < end && end - a >= 8) {
    diff = load_word(a) ^ pattern;
    if (diff != 0) return first_set_byte(a, diff);
    a += 8;
  }
  const Pair pair = {pattern, pattern};
  for (; a < end && end - a >= 64; a += 64) {
    const Pair* v = reinterpret_cast<const Pair*>(a);
    Pair d = (v[0] ^ pair) | (v[1] ^ pair) | (v[2] ^ pair) | (v[3] ^ pair);
    if (HEAPGUARD_UNLIKELY((d[0] | d[1]) != 0)) break;
  }
  for (; a < end && end - a >= 16; a += 16) {
    Pair d = *reinterpret_cast<const Pair*>(a) ^ pair;
    if ((d[0] | d[1]) != 0) break;
  }
  for (; a < end && end - a >= 8; a += 8) {
    diff = load_word(a) ^ pattern;
    if (diff != 0) return first_set_byte(a, diff);
  }
  if (a < end) {
    diff = (load_word(a) ^ pattern) & low_bytes(end - a);
    if (diff != 0) return first_set_byte(a, diff);
  }
  return 0;
}

uintptr_t poison_first_damaged_bounded(uintptr_t p, size_t n, uint8_t byte, size_t bound) {
  if (n - n / 2 <= bound) return poison_first_damaged(p, n, byte);  // n <= 2 * bound, without overflow
  if (uintptr_t bad = poison_first_damaged(p, bound, byte)) return bad;
  return poison_first_damaged(p + n - bound, bound, byte);
}

}  // namespace heapguard
