// SPDX-License-Identifier: Apache-2.0
//
// realloc growth: 32 buffers grow side by side, interleaved at random, until
// each reaches its own target size and is freed and restarted. Half grow like
// a naive string append (realloc to the exact new size, 1..512 bytes at a
// time, up to 256 KiB); half like a vector (capacity doubling, up to 4 MiB).
// It measures in-place growth, size-class slack and the cost of moving data
// across the small/large boundary; it also checks that realloc keeps contents.
#include <cstring>

#include "bench_common.h"

namespace heapguard::bench {
namespace {

constexpr unsigned kBuffers = 32;
constexpr uint64_t kBaseAppendedBytes = 3'000'000'000ULL;

struct Buffer {
  unsigned char* data = nullptr;
  size_t size = 0;
  size_t capacity = 0;
  size_t target = 0;
  bool doubling = false;
  uint64_t tag = 0;
};

void start(Buffer& b, Rng& rng, uint64_t tag) {
  b.doubling = rng.below(2) == 0;
  b.target = b.doubling ? rng.log_between(4096, 4 << 20) : rng.log_between(256, 256 << 10);
  b.size = 0;
  b.capacity = 0;
  b.data = nullptr;
  b.tag = tag;
}

// The single fill byte per buffer lets a sampled read prove the data moved
// intact through every realloc, without hashing megabytes.
void check(const Buffer& b, Rng& rng) {
  if (b.size == 0) return;
  const unsigned char want = pattern_byte(b.tag, 0);
  if (b.data[0] != want || b.data[b.size - 1] != want || b.data[rng.below(b.size)] != want) {
    corrupted("realloc buffer", b.tag);
  }
}

uint64_t append(Buffer& b, Rng& rng) {
  const size_t step = b.doubling ? rng.between(64, 4096) : rng.between(1, 512);
  const size_t new_size = b.size + step;
  if (new_size > b.capacity) {
    size_t new_capacity = new_size;
    if (b.doubling) {
      new_capacity = b.capacity == 0 ? 64 : b.capacity;
      while (new_capacity < new_size) new_capacity *= 2;
    }
    auto* p = static_cast<unsigned char*>(std::realloc(b.data, new_capacity));
    if (p == nullptr) corrupted("realloc returned NULL", b.tag);
    b.data = p;
    b.capacity = new_capacity;
    if (b.size != 0 && b.data[b.size - 1] != pattern_byte(b.tag, 0)) corrupted("realloc copy", b.tag);
  }
  std::memset(b.data + b.size, pattern_byte(b.tag, 0), step);
  b.size = new_size;
  return step;
}

}  // namespace
}  // namespace heapguard::bench

int main(int argc, char** argv) {
  using namespace heapguard::bench;
  const uint64_t budget = scaled(kBaseAppendedBytes, parse_scale(argc, argv));
  Rng rng(3);
  Buffer buffers[kBuffers];
  uint64_t tag = 0;
  for (auto& b : buffers) start(b, rng, ++tag);
  uint64_t appended = 0;
  uint64_t completed = 0;
  uint64_t checksum = 0;
  while (appended < budget) {
    Buffer& b = buffers[rng.below(kBuffers)];
    appended += append(b, rng);
    if (b.size >= b.target) {
      check(b, rng);
      checksum = mix(checksum, mix(b.size, b.tag));
      std::free(b.data);
      ++completed;
      start(b, rng, ++tag);
    }
  }
  for (auto& b : buffers) {
    check(b, rng);
    std::free(b.data);
  }
  std::printf("realloc completed=%llu checksum=%016llx\n", static_cast<unsigned long long>(completed),
              static_cast<unsigned long long>(checksum));
  return 0;
}
