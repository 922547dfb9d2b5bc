// SPDX-License-Identifier: Apache-2.0
//
// Shared helpers for the benchmark workload programs: a seeded PRNG, the scale
// argument and an order-independent checksum. Every workload is deterministic
// for a given scale, so the runner can compare its stdout across allocators and
// catch an allocator that corrupts data instead of merely being slow.
#ifndef HEAPGUARD_BENCH_COMMON_H
#define HEAPGUARD_BENCH_COMMON_H

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace heapguard::bench {

// xoshiro256** seeded through splitmix64: fast enough that the PRNG does not
// dominate a malloc/free pair, and identical on every run.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (auto& word : s_) {
      seed += 0x9e3779b97f4a7c15ULL;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      word = z ^ (z >> 31);
    }
  }

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, bound); the slight modulo bias does not matter here.
  uint64_t below(uint64_t bound) { return next() % bound; }

  // Uniform in [lo, hi].
  uint64_t between(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }

  // Log-uniform in [lo, hi]: as many blocks between 1 and 2 MiB as between
  // 8 and 16 MiB, which is how real large-block sizes spread.
  uint64_t log_between(uint64_t lo, uint64_t hi) {
    const int lo_bits = 63 - __builtin_clzll(lo);
    const int hi_bits = 63 - __builtin_clzll(hi);
    const int bits = static_cast<int>(between(lo_bits, hi_bits));
    uint64_t v = (1ULL << bits) + below(1ULL << bits);
    return v < lo ? lo : (v > hi ? hi : v);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// argv[1] is a positive multiplier of the work done (default 1.0). A bad value
// exits with status 2 so the runner reports it instead of timing garbage.
inline double parse_scale(int argc, char** argv) {
  if (argc < 2) return 1.0;
  char* end = nullptr;
  const double scale = std::strtod(argv[1], &end);
  if (end == argv[1] || *end != '\0' || !(scale > 0.0) || scale > 1000.0) {
    std::fprintf(stderr, "%s: scale must be a number in (0, 1000], got '%s'\n", argv[0], argv[1]);
    std::exit(2);
  }
  return scale;
}

inline uint64_t scaled(uint64_t base, double scale) {
  const double v = static_cast<double>(base) * scale;
  return v < 1.0 ? 1 : static_cast<uint64_t>(v);
}

// Byte pattern derived from a block's identity, so that a later read can tell
// whether the block still holds what was written into it.
inline unsigned char pattern_byte(uint64_t tag, uint64_t offset) {
  return static_cast<unsigned char>((tag * 0x9e3779b97f4a7c15ULL + offset * 0x100000001b3ULL) >> 56);
}

// A block whose contents changed while it was live means the allocator handed
// the same memory out twice or wrote into a live block: stop loudly.
[[noreturn]] inline void corrupted(const char* what, uint64_t tag) {
  std::fprintf(stderr, "bench: data corruption detected in %s (tag %llu)\n", what,
               static_cast<unsigned long long>(tag));
  std::abort();
}

inline uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

}  // namespace heapguard::bench

#endif  // HEAPGUARD_BENCH_COMMON_H
