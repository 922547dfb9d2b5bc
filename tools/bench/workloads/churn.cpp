// SPDX-License-Identifier: Apache-2.0
//
// Small-object churn: a working set of ~128 Ki live blocks of 8..512 bytes
// (skewed towards small sizes, as in most C and C++ heaps) is randomly
// replaced, one free and one malloc per step, with periodic mass frees. It
// measures the small-block fast paths and how well freed slots are reused.
#include <cstring>

#include "bench_common.h"

namespace heapguard::bench {
namespace {

constexpr uint64_t kSlots = 1u << 17;
constexpr uint64_t kBaseSteps = 15'000'000;

// Half the blocks are 8..32 bytes, and only one in twenty is above 256.
uint64_t pick_size(Rng& rng) {
  const uint64_t r = rng.below(100);
  if (r < 50) return rng.between(8, 32);
  if (r < 80) return rng.between(33, 128);
  if (r < 95) return rng.between(129, 256);
  return rng.between(257, 512);
}

struct Slot {
  unsigned char* ptr;
  uint32_t size;
  uint32_t tag;
};

void fill(Slot& s, Rng& rng, uint32_t tag) {
  s.size = static_cast<uint32_t>(pick_size(rng));
  s.tag = tag;
  s.ptr = static_cast<unsigned char*>(std::malloc(s.size));
  if (s.ptr == nullptr) corrupted("churn malloc returned NULL", tag);
  std::memset(s.ptr, pattern_byte(tag, 0), s.size);
}

uint64_t release(Slot& s) {
  const unsigned char want = pattern_byte(s.tag, 0);
  if (s.ptr[0] != want || s.ptr[s.size - 1] != want || s.ptr[s.size / 2] != want) {
    corrupted("churn block", s.tag);
  }
  const uint64_t h = mix(s.size, s.tag);
  std::free(s.ptr);
  s.ptr = nullptr;
  return h;
}

}  // namespace
}  // namespace heapguard::bench

int main(int argc, char** argv) {
  using namespace heapguard::bench;
  const uint64_t steps = scaled(kBaseSteps, parse_scale(argc, argv));
  Rng rng(1);
  Slot* slots = static_cast<Slot*>(std::calloc(kSlots, sizeof(Slot)));
  uint32_t tag = 0;
  uint64_t checksum = 0;
  for (uint64_t i = 0; i < kSlots; ++i) fill(slots[i], rng, ++tag);

  // A mass free every eighth of the run empties half the heap at once, the way
  // a request or a parse tree dies, and the refill afterwards shows whether
  // the allocator reuses those slots or keeps growing.
  const uint64_t phase = steps / 8 + 1;
  for (uint64_t step = 0; step < steps; ++step) {
    if (step % phase == phase - 1) {
      for (uint64_t i = 0; i < kSlots; i += 2) {
        if (slots[i].ptr != nullptr) checksum = mix(checksum, release(slots[i]));
      }
    }
    Slot& s = slots[rng.below(kSlots)];
    if (s.ptr != nullptr) checksum = mix(checksum, release(s));
    fill(s, rng, ++tag);
  }
  for (uint64_t i = 0; i < kSlots; ++i) {
    if (slots[i].ptr != nullptr) checksum = mix(checksum, release(slots[i]));
  }
  std::free(slots);
  std::printf("churn steps=%llu checksum=%016llx\n", static_cast<unsigned long long>(steps),
              static_cast<unsigned long long>(checksum));
  return 0;
}
