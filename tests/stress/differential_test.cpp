// SPDX-License-Identifier: Apache-2.0
// Randomized differential test: a seeded stream of allocation calls runs against a
// shadow model of the live blocks (address, size, alignment, fill). Every result is
// checked against the model: contents kept, alignment met, usable size, no overlap.
#include <gtest/gtest.h>
#include <malloc.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "block_pattern.h"
#include "split_mix.h"

namespace {

using heapguard::test::all_zero;
using heapguard::test::fill_pattern;
using heapguard::test::first_mismatch;
using heapguard::test::is_aligned;
using heapguard::test::SplitMix64;

constexpr int kOpsPerSeed = 8000;
constexpr size_t kMaxLive = 400;
constexpr size_t kLargeMax = size_t{1} << 20;
constexpr uint64_t kFixedSeeds[] = {1, 2, 0xDEADBEEF, 20240601, 0x123456789ABCDEFull};

// How a block was obtained decides how it must be released.
enum class Origin { kMalloc, kNew, kNewArray, kNewAligned };

struct Shadow {
  size_t size;
  size_t usable;
  size_t alignment;
  unsigned seed;
  Origin origin;
};

std::vector<uint64_t> seeds_to_run() {
  std::vector<uint64_t> seeds(std::begin(kFixedSeeds), std::end(kFixedSeeds));
  if (const char* env = std::getenv("HEAPGUARD_TEST_SEED"); env != nullptr && *env != '\0') {
    const uint64_t extra = std::strtoull(env, nullptr, 0);
    if (std::find(seeds.begin(), seeds.end(), extra) == seeds.end()) seeds.push_back(extra);
  }
  return seeds;
}

class Differential : public testing::TestWithParam<uint64_t> {
 protected:
  // Checks a new block against the model and adds it. The usable ranges of two live
  // blocks must never intersect: both are writable by the program.
  void admit(void* p, size_t size, size_t alignment, Origin origin, bool zeroed) {
    ASSERT_NE(p, nullptr) << "allocation of " << size << " bytes failed";
    ASSERT_TRUE(is_aligned(p, alignment)) << p << " alignment " << alignment;
    ASSERT_TRUE(is_aligned(p, 16)) << p;
    const size_t usable = malloc_usable_size(p);
    ASSERT_GE(usable, size);
    if (zeroed) {
      ASSERT_TRUE(all_zero(p, size)) << "calloc of " << size << " not zeroed";
    }
    const auto start = reinterpret_cast<uintptr_t>(p);
    const uintptr_t end = start + (usable == 0 ? 1 : usable);
    auto next = live_.lower_bound(start);
    if (next != live_.end()) {
      ASSERT_GE(next->first, end) << "new block [" << p << ", +" << usable
                                  << ") overlaps live block at " << reinterpret_cast<void*>(next->first);
    }
    if (next != live_.begin()) {
      auto prev = std::prev(next);
      ASSERT_LE(prev->first + (prev->second.usable == 0 ? 1 : prev->second.usable), start)
          << "new block at " << p << " overlaps live block at " << reinterpret_cast<void*>(prev->first)
          << " of usable size " << prev->second.usable;
    }
    const unsigned seed = next_seed_++;
    fill_pattern(p, size, seed);
    live_[start] = Shadow{size, usable, alignment, seed, origin};
  }

  void verify(uintptr_t addr, const Shadow& s) {
    ASSERT_EQ(first_mismatch(reinterpret_cast<void*>(addr), s.size, s.seed), s.size)
        << "contents of the " << s.size << "-byte block at " << reinterpret_cast<void*>(addr)
        << " changed while it was live";
  }

  void release(std::map<uintptr_t, Shadow>::iterator it) {
    verify(it->first, it->second);
    void* p = reinterpret_cast<void*>(it->first);
    const Shadow s = it->second;
    live_.erase(it);
    switch (s.origin) {
      case Origin::kMalloc:
        free(p);
        break;
      case Origin::kNew:
        ::operator delete(p, s.size);
        break;
      case Origin::kNewArray:
        ::operator delete[](p);
        break;
      case Origin::kNewAligned:
        ::operator delete(p, s.size, std::align_val_t{s.alignment});
        break;
    }
  }

  std::map<uintptr_t, Shadow>::iterator pick(SplitMix64& rng) {
    auto it = live_.begin();
    std::advance(it, static_cast<ptrdiff_t>(rng.below(live_.size())));
    return it;
  }

  void step(SplitMix64& rng) {
    const size_t op = rng.below(100);
    const bool must_free = live_.size() >= kMaxLive;
    if (!live_.empty() && (must_free || op < 30)) {
      release(pick(rng));
      return;
    }
    const size_t size = rng.block_size(kLargeMax);
    if (op < 45) {
      admit(malloc(size), size, 16, Origin::kMalloc, false);
    } else if (op < 52) {
      const size_t count = rng.between(1, 16);
      const size_t each = size / count;
      admit(calloc(count, each), count * each, 16, Origin::kMalloc, true);
    } else if (op < 66 && !live_.empty()) {
      resize(pick(rng), size);
    } else if (op < 72) {
      const size_t alignment = size_t{1} << rng.between(0, 16);
      admit(aligned_alloc(alignment, size), size, std::max<size_t>(alignment, 16), Origin::kMalloc,
            false);
    } else if (op < 78) {
      const size_t alignment = size_t{1} << rng.between(3, 16);
      void* p = nullptr;
      ASSERT_EQ(posix_memalign(&p, alignment, size), 0) << alignment << ", " << size;
      admit(p, size, std::max<size_t>(alignment, 16), Origin::kMalloc, false);
    } else if (op < 86) {
      admit(::operator new(size), size, 16, Origin::kNew, false);
    } else if (op < 93) {
      admit(::operator new[](size), size, 16, Origin::kNewArray, false);
    } else {
      const size_t alignment = size_t{1} << rng.between(4, 12);
      admit(::operator new(size, std::align_val_t{alignment}), size, alignment, Origin::kNewAligned,
            false);
    }
  }

  // realloc only applies to malloc-family blocks; it keeps the common prefix and drops
  // any alignment beyond 16. Size 0 frees, as in glibc.
  void resize(std::map<uintptr_t, Shadow>::iterator it, size_t new_size) {
    if (it->second.origin != Origin::kMalloc) {
      release(it);
      return;
    }
    verify(it->first, it->second);
    const Shadow old = it->second;
    void* old_ptr = reinterpret_cast<void*>(it->first);
    live_.erase(it);
    void* q = realloc(old_ptr, new_size);
    if (new_size == 0) {
      ASSERT_EQ(q, nullptr) << "realloc(p, 0) must free and return NULL";
      return;
    }
    ASSERT_NE(q, nullptr) << "realloc to " << new_size << " failed";
    const size_t kept = std::min(old.size, new_size);
    ASSERT_EQ(first_mismatch(q, kept, old.seed), kept)
        << "realloc " << old.size << " -> " << new_size << " lost contents";
    admit(q, new_size, 16, Origin::kMalloc, false);
  }

  void TearDown() override {
    while (!live_.empty()) release(live_.begin());
  }

  std::map<uintptr_t, Shadow> live_;
  unsigned next_seed_ = 1;
};

TEST_P(Differential, RandomOperationStreamMatchesModel) {
  const uint64_t seed = GetParam();
  SCOPED_TRACE(testing::Message() << "seed " << seed << " (replay with HEAPGUARD_TEST_SEED=" << seed << ")");
  SplitMix64 rng(seed);
  for (int i = 0; i < kOpsPerSeed; ++i) {
    step(rng);
    if (HasFatalFailure()) {
      ADD_FAILURE() << "stopped at operation " << i << " of seed " << seed;
      return;
    }
    // Now and then re-verify one untouched block, so corruption is found long after
    // the operation that caused it, not only when the block is freed.
    if (i % 16 == 0 && !live_.empty()) {
      auto it = pick(rng);
      verify(it->first, it->second);
    }
  }
  for (auto& [addr, shadow] : live_) verify(addr, shadow);
}

INSTANTIATE_TEST_SUITE_P(Seeds, Differential, testing::ValuesIn(seeds_to_run()),
                         [](const testing::TestParamInfo<uint64_t>& info) {
                           return "seed_" + std::to_string(info.param);
                         });

}  // namespace
