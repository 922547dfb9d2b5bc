// SPDX-License-Identifier: Apache-2.0
// Prng: a small, fast, non-cryptographic generator for layout choices
// (which slot, which slab, how long a quarantine delay). Unpredictability
// comes from the seed (getrandom, or the `seed` option in fuzz mode so a
// crash reproduces); the generator itself only has to be fast and well
// mixed. wyrand: one multiply per call, passes BigCrush/PractRand.
#pragma once

#include <cstdint>

#include "core/core.h"

namespace heapguard {

class Prng {
 public:
  constexpr Prng() = default;
  constexpr explicit Prng(uint64_t seed) : state_(seed) {}
  void reseed(uint64_t seed) { state_ = seed; }

  HEAPGUARD_FAST_PATH uint64_t next() {
    state_ += 0xa0761d6478bd642fULL;
    __uint128_t m = __uint128_t(state_) * (state_ ^ 0xe7037ed1a0b428dbULL);
    return uint64_t(m >> 64) ^ uint64_t(m);
  }
  // Uniform in [0, bound), bound > 0 (Lemire's multiply-shift; the bias is
  // below 2^-32 for the bounds used here).
  HEAPGUARD_FAST_PATH uint32_t below(uint32_t bound) {
    return uint32_t((uint64_t(uint32_t(next())) * bound) >> 32);
  }

 private:
  uint64_t state_ = 0;
};

// Derives independent streams from one seed (per class, per thread).
constexpr uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ (stream * 0x9E3779B97F4A7C15ULL);
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace heapguard
