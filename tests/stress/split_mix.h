// SPDX-License-Identifier: Apache-2.0
// SplitMix64, the PRNG of the stress tests. Its output is fixed by the algorithm
// (unlike std::uniform_int_distribution), so a seed printed by a failing run
// replays the same operation stream with any compiler or standard library.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heapguard::test {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, bound), bound > 0; the modulo bias is irrelevant for tests.
  size_t below(size_t bound) { return static_cast<size_t>(next() % bound); }

  // Uniform in [lo, hi].
  size_t between(size_t lo, size_t hi) { return lo + below(hi - lo + 1); }

  bool percent(unsigned p) { return below(100) < p; }

  // A block size skewed the way real programs allocate: mostly small, some medium,
  // a few beyond the 128 KiB small-block limit.
  size_t block_size(size_t large_max) {
    const size_t r = below(1000);
    if (r < 600) return between(0, 256);
    if (r < 880) return between(257, 8192);
    if (r < 980) return between(8193, 128 * 1024);
    return between(128 * 1024 + 1, large_max);
  }

 private:
  uint64_t state_;
};

}  // namespace heapguard::test
