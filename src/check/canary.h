// SPDX-License-Identifier: Apache-2.0
// CanaryCodec: the keyed overflow canary written into a block's slack (the
// bytes between the requested size and the end of the slot) and, in debug and
// fuzz modes, its left and right redzones (layer check). It stops linear heap
// overflows and underflows from going unnoticed, and from being hidden by an
// attacker who rewrites the canary: each byte depends on a per-process key,
// on the block it guards and on its own address, so it can be neither
// predicted without the key nor copied from another block or another offset.
// Not a cryptographic MAC: it only has to outlast a heap bug, not analysis.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/core.h"
#include "ds/ds.h"

namespace heapguard {

// Hardened mode fills and verifies only the start of the slack, at most
// kBoundedCanaryBytes (fill_words: the two aligned words from the one that
// holds the first slack byte, 9 to 16 bytes): a linear overflow always writes
// the first slack bytes, and slack can reach tens of KiB in the big classes,
// too much to fill on every malloc. An overflow within them is caught byte-
// exact; a longer one also runs into the next slot's header, which is
// checked when that block is freed. Debug and fuzz fill and verify all of it.
inline constexpr size_t kBoundedCanaryBytes = 16;

class CanaryCodec {
 public:
  constexpr explicit CanaryCodec(uint64_t key) : k0_(key), k1_(derive_multiplier(key)) {}
  // Called once at init with fresh entropy, before the first canary exists.
  void set_key(uint64_t key) {
    k0_ = key;
    k1_ = derive_multiplier(key);
  }

  // Writes the pattern into [from, to) and nothing else; nothing if from >= to.
  // `block` is the user address of the block the range belongs to (the same
  // value must be passed to first_damaged). zero_first makes the byte at
  // `from` 0, so that string functions reading past the requested size stop
  // there; that byte is then a plain zero, and an overflow that writes a 0
  // exactly there (an off-by-one NUL) is not seen.
  // Any alignment and length; no allocation, no syscall.
  void fill(uintptr_t block, uintptr_t from, uintptr_t to, bool zero_first) const;

  // The address of the first byte of [from, to) that differs from what
  // fill(block, from, to, zero_first) wrote, or 0 if none does.
  // It reads (never writes) whole aligned 8-byte words, so it may read up
  // to 7 bytes on either side of the range; they share the range's page.
  uintptr_t first_damaged(uintptr_t block, uintptr_t from, uintptr_t to, bool zero_first) const;

  // End of the part of [from, to) that a bounded check covers: from + bound,
  // or to if the range is shorter. Pass it as `to` to both fill and
  // first_damaged (the same bound both times).
  static constexpr uintptr_t limit(uintptr_t from, uintptr_t to, size_t bound) {
    return (to > from && to - from > bound) ? from + bound : to;
  }

  // Hardened's inline form: the two aligned words starting with the one
  // that holds `from` (the first slack byte), clipped to `end`, which must
  // be 8-aligned and above from (a slot end is). That covers 9 to 16 bytes
  // past the request with two stores and no loop. Bytes of the first word
  // below `from` belong to the block: they are kept. zero_first as in fill.
  HEAPGUARD_FAST_PATH void fill_words(uintptr_t block, uintptr_t from, uintptr_t end, bool zero_first) const {
    uintptr_t w = from & ~uintptr_t{7};
    uint64_t keep = low_bytes_mask(from - w);
    uint64_t seed = block_seed(block);
    uint64_t p0 = pattern_word(seed, w) & ~keep;
    if (zero_first) p0 &= ~(uint64_t{0xff} << (8 * (from - w)));
    auto* word = reinterpret_cast<uint64_t*>(w);
    word[0] = (word[0] & keep) | p0;
    if (w + 16 <= end) word[1] = pattern_word(seed, w + 8);
  }
  // The first byte fill_words() wrote that changed since, or 0.
  HEAPGUARD_FAST_PATH uintptr_t first_damaged_words(uintptr_t block, uintptr_t from, uintptr_t end,
                                                    bool zero_first) const {
    uintptr_t w = from & ~uintptr_t{7};
    uint64_t keep = low_bytes_mask(from - w);
    uint64_t seed = block_seed(block);
    uint64_t p0 = pattern_word(seed, w);
    if (zero_first) p0 &= ~(uint64_t{0xff} << (8 * (from - w)));
    const auto* word = reinterpret_cast<const uint64_t*>(w);
    uint64_t diff = (word[0] ^ p0) & ~keep;
    if (HEAPGUARD_UNLIKELY(diff != 0)) return w + unsigned(__builtin_ctzll(diff)) / 8;
    if (w + 16 <= end) {
      diff = word[1] ^ pattern_word(seed, w + 8);
      if (HEAPGUARD_UNLIKELY(diff != 0)) return w + 8 + unsigned(__builtin_ctzll(diff)) / 8;
    }
    return 0;
  }

 private:
  // Bytes [0, n) of a word set, n < 8.
  HEAPGUARD_FAST_PATH static constexpr uint64_t low_bytes_mask(uintptr_t n) { return (uint64_t{1} << (8 * n)) - 1; }
  // The pattern word for the aligned 8-byte word at `aligned` of the block
  // whose seed is block_seed(block): byte i (little-endian) is the pattern
  // byte at aligned + i, which is what lets fill and verify go word by word.
  HEAPGUARD_FAST_PATH uint64_t block_seed(uintptr_t block) const { return fold(block ^ k0_, k1_); }
  // Every byte has its top bit set: the commonest overflows write text
  // (ASCII) or its NUL terminator, and a keyed byte that happened to equal
  // the byte written (1 in 256) would let such a write through. 7 keyed
  // bits per byte remain.
  // The address is spread by an odd multiplier first: neighbouring words'
  // addresses differ in a few low bits only, which the fold alone would
  // carry into patterns that share most of their bytes.
  HEAPGUARD_FAST_PATH uint64_t pattern_word(uint64_t seed, uintptr_t aligned) const {
    return fold(seed ^ (uint64_t(aligned) * 0x9E3779B97F4A7C15ULL), k1_) | 0x8080808080808080ULL;
  }
  // 64x64->128 multiply folded by xor: non-linear and cheap (one mul).
  HEAPGUARD_FAST_PATH static constexpr uint64_t fold(uint64_t a, uint64_t b) {
    __uint128_t m = __uint128_t(a) * b;
    return uint64_t(m >> 64) ^ uint64_t(m);
  }
  // Odd, so that the multiply never discards low bits.
  static constexpr uint64_t derive_multiplier(uint64_t key) { return mix_seed(key, 0xCA4A27) | 1; }

  uint64_t k0_;
  uint64_t k1_;
};

}  // namespace heapguard
