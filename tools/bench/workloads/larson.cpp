// SPDX-License-Identifier: Apache-2.0
//
// Larson-like thread succession: four chains each own an array of 4096 blocks
// (16..1024 bytes). A chain runs a short-lived thread that replaces random
// blocks, then exits and hands the array to a fresh thread, which frees
// blocks its dead predecessor allocated. It measures thread-cache set-up and
// teardown, and how memory owned by exited threads gets reused (Larson and
// Krishnan's server simulation, 1998).
#include <cstring>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace heapguard::bench {
namespace {

constexpr unsigned kChains = 4;
constexpr size_t kSlots = 4096;
constexpr uint64_t kStepsPerGeneration = 20'000;
constexpr uint64_t kBaseGenerations = 1'500;

struct Slot {
  unsigned char* ptr;
  uint32_t size;
  uint32_t tag;
};

struct Chain {
  Slot slots[kSlots];
  Rng rng;
  uint32_t next_tag = 0;
  uint64_t checksum = 0;

  explicit Chain(unsigned index) : slots{}, rng(200 + index) { next_tag = index << 28; }

  void release(Slot& s) {
    const unsigned char want = pattern_byte(s.tag, 0);
    if (s.ptr[0] != want || s.ptr[s.size - 1] != want) corrupted("larson block", s.tag);
    checksum = mix(checksum, s.tag);
    std::free(s.ptr);
    s.ptr = nullptr;
  }

  void replace(Slot& s) {
    if (s.ptr != nullptr) release(s);
    s.size = static_cast<uint32_t>(rng.between(16, 1024));
    s.tag = ++next_tag;
    s.ptr = static_cast<unsigned char*>(std::malloc(s.size));
    if (s.ptr == nullptr) corrupted("larson malloc returned NULL", s.tag);
    std::memset(s.ptr, pattern_byte(s.tag, 0), s.size);
  }

  void generation() {
    for (uint64_t i = 0; i < kStepsPerGeneration; ++i) replace(slots[rng.below(kSlots)]);
  }
};

// Each generation is its own thread, so every block a generation leaves behind
// is freed later by a thread that did not allocate it, after its allocator has
// gone.
void run_chain(Chain* chain, uint64_t generations) {
  for (Slot& s : chain->slots) chain->replace(s);
  for (uint64_t g = 0; g < generations; ++g) {
    std::thread t([chain] { chain->generation(); });
    t.join();
  }
  for (Slot& s : chain->slots) chain->release(s);
}

}  // namespace
}  // namespace heapguard::bench

int main(int argc, char** argv) {
  using namespace heapguard::bench;
  const uint64_t generations = scaled(kBaseGenerations, parse_scale(argc, argv)) / kChains + 1;
  std::vector<Chain*> chains;
  for (unsigned i = 0; i < kChains; ++i) chains.push_back(new Chain(i));
  std::vector<std::thread> managers;
  for (Chain* c : chains) managers.emplace_back(run_chain, c, generations);
  for (auto& m : managers) m.join();
  uint64_t checksum = 0;
  for (Chain* c : chains) {
    checksum = mix(checksum, c->checksum);
    delete c;
  }
  std::printf("larson generations=%llu checksum=%016llx\n",
              static_cast<unsigned long long>(generations * kChains),
              static_cast<unsigned long long>(checksum));
  return 0;
}
