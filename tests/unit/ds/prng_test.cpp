// SPDX-License-Identifier: Apache-2.0
// Prng and mix_seed: below() stays in range and is roughly uniform (a
// chi-square test with a fixed seed, so it cannot flake), a seed reproduces
// its sequence, and different seeds and different streams of one seed do not.
#include "ds/ds.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <vector>

namespace heapguard::test {
namespace {

constinit Prng g_constant_prng(42);

std::vector<uint64_t> first_outputs(Prng p, size_t n) {
  std::vector<uint64_t> out;
  for (size_t i = 0; i < n; ++i) out.push_back(p.next());
  return out;
}

TEST(Prng, BelowStaysInRange) {
  Prng p(0x1234);
  for (uint32_t bound : {1u, 2u, 3u, 7u, 64u, 100u, 511u, 1000003u, 0x80000000u, 0xffffffffu}) {
    for (int i = 0; i < 20000; ++i) ASSERT_LT(p.below(bound), bound) << "bound " << bound;
  }
  for (int i = 0; i < 100; ++i) EXPECT_EQ(p.below(1), 0u);
}

// Chi-square statistic of `samples` draws of below(bound).
double chi_square(Prng p, uint32_t bound, size_t samples) {
  std::vector<size_t> counts(bound, 0);
  for (size_t i = 0; i < samples; ++i) ++counts[p.below(bound)];
  const double expected = double(samples) / bound;
  double chi2 = 0;
  for (size_t c : counts) chi2 += (double(c) - expected) * (double(c) - expected) / expected;
  return chi2;
}

TEST(Prng, BelowIsRoughlyUniform) {
  // Critical values at p = 0.001 for bound - 1 degrees of freedom.
  EXPECT_LT(chi_square(Prng(1), 2, 100000), 10.83);
  EXPECT_LT(chi_square(Prng(2), 16, 160000), 37.70);
  EXPECT_LT(chi_square(Prng(3), 37, 370000), 67.99);
  EXPECT_LT(chi_square(Prng(4), 512, 512000), 627.1);
}

TEST(Prng, EveryBitOfNextIsBalanced) {
  Prng p(0xfeed);
  size_t ones[64] = {};
  constexpr size_t kDraws = 100000;
  for (size_t i = 0; i < kDraws; ++i) {
    uint64_t x = p.next();
    for (int b = 0; b < 64; ++b) ones[b] += (x >> b) & 1;
  }
  // 5 standard deviations (sd = sqrt(n)/2 = 158).
  for (int b = 0; b < 64; ++b) EXPECT_NEAR(double(ones[b]), kDraws / 2.0, 790.0) << "bit " << b;
}

TEST(Prng, ASeedReproducesItsSequence) {
  EXPECT_EQ(first_outputs(Prng(77), 1000), first_outputs(Prng(77), 1000));
  Prng p(5);
  std::vector<uint64_t> before = first_outputs(p, 100);
  p.next();
  p.reseed(5);
  EXPECT_EQ(first_outputs(p, 100), before);
  EXPECT_EQ(first_outputs(g_constant_prng, 10), first_outputs(Prng(42), 10));
}

TEST(Prng, DifferentSeedsGiveDifferentSequences) {
  std::set<std::vector<uint64_t>> seen;
  for (uint64_t seed = 0; seed < 1000; ++seed) EXPECT_TRUE(seen.insert(first_outputs(Prng(seed), 4)).second);
  // Neighbouring seeds share no outputs early on (not just a shifted stream).
  std::vector<uint64_t> a = first_outputs(Prng(100), 1000), b = first_outputs(Prng(101), 1000);
  std::set<uint64_t> sa(a.begin(), a.end());
  for (uint64_t x : b) EXPECT_EQ(sa.count(x), 0u);
}

TEST(Prng, MixSeedStreamsDiffer) {
  const uint64_t seed = 0xabcdef;
  std::set<uint64_t> seeds;
  for (uint64_t stream = 0; stream < 10000; ++stream) EXPECT_TRUE(seeds.insert(mix_seed(seed, stream)).second);
  // Streams of one seed, and one stream of neighbouring seeds, produce
  // unrelated sequences.
  std::set<uint64_t> outputs;
  size_t total = 0;
  for (uint64_t stream = 0; stream < 64; ++stream) {
    for (uint64_t x : first_outputs(Prng(mix_seed(seed, stream)), 64)) outputs.insert(x), ++total;
    for (uint64_t x : first_outputs(Prng(mix_seed(seed + 1 + stream, 0)), 64)) outputs.insert(x), ++total;
  }
  EXPECT_EQ(outputs.size(), total);
  EXPECT_EQ(mix_seed(seed, 3), mix_seed(seed, 3));
  static_assert(mix_seed(1, 2) != mix_seed(1, 3));
  static_assert(mix_seed(1, 2) != mix_seed(2, 2));
}

}  // namespace
}  // namespace heapguard::test
