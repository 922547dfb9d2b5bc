// SPDX-License-Identifier: Apache-2.0
//
// Large blocks: up to eight live blocks of 128 KiB..16 MiB (log-uniform) are
// allocated with malloc or calloc, written on every page, resized with realloc
// and freed, in random order. It measures the mmap path, large-block caching
// and page-fault traffic, and checks that calloc memory reads as zero and
// that realloc keeps the old contents.
#include <cstring>

#include "bench_common.h"

namespace heapguard::bench {
namespace {

constexpr unsigned kSlots = 8;
constexpr uint64_t kBaseSteps = 2'000;
constexpr size_t kPage = 4096;
constexpr size_t kMin = 128 << 10;
constexpr size_t kMax = 16 << 20;

struct Block {
  unsigned char* data = nullptr;
  size_t size = 0;
  uint64_t tag = 0;
};

uint64_t page_word(uint64_t tag, size_t page) { return mix(tag, page) | 1; }

// One word per page: enough to fault every page in, as a program that really
// uses the block would, without timing a memset of megabytes.
// Pages whose word fits below `size`: the ones write_pages covered for a
// block of that size.
size_t pages_written(size_t size) { return size < sizeof(uint64_t) ? 0 : (size - sizeof(uint64_t)) / kPage + 1; }

void write_pages(Block& b, size_t first_page) {
  for (size_t off = first_page * kPage; off + sizeof(uint64_t) <= b.size; off += kPage) {
    const uint64_t w = page_word(b.tag, off / kPage);
    std::memcpy(b.data + off, &w, sizeof w);
  }
}

void verify_pages(const Block& b, size_t limit) {
  for (size_t off = 0; off + sizeof(uint64_t) <= limit; off += kPage) {
    uint64_t w;
    std::memcpy(&w, b.data + off, sizeof w);
    if (w != page_word(b.tag, off / kPage)) corrupted("large block", b.tag);
  }
}

void allocate(Block& b, Rng& rng, uint64_t tag) {
  b.size = rng.log_between(kMin, kMax);
  b.tag = tag;
  if (rng.below(4) == 0) {
    b.data = static_cast<unsigned char*>(std::calloc(1, b.size));
    if (b.data == nullptr) corrupted("calloc returned NULL", tag);
    for (size_t off = 0; off < b.size; off += kPage) {
      if (b.data[off] != 0 || b.data[b.size - 1] != 0) corrupted("calloc block not zero", tag);
    }
  } else {
    b.data = static_cast<unsigned char*>(std::malloc(b.size));
    if (b.data == nullptr) corrupted("malloc returned NULL", tag);
  }
  write_pages(b, 0);
}

}  // namespace
}  // namespace heapguard::bench

int main(int argc, char** argv) {
  using namespace heapguard::bench;
  const uint64_t steps = scaled(kBaseSteps, parse_scale(argc, argv));
  Rng rng(4);
  Block blocks[kSlots];
  uint64_t tag = 0;
  uint64_t checksum = 0;
  for (uint64_t step = 0; step < steps; ++step) {
    Block& b = blocks[rng.below(kSlots)];
    if (b.data == nullptr) {
      allocate(b, rng, ++tag);
    } else if (rng.below(2) == 0) {
      verify_pages(b, b.size);
      checksum = mix(checksum, mix(b.size, b.tag));
      std::free(b.data);
      b.data = nullptr;
    } else {
      const size_t new_size = rng.log_between(kMin, kMax);
      auto* p = static_cast<unsigned char*>(std::realloc(b.data, new_size));
      if (p == nullptr) corrupted("realloc returned NULL", b.tag);
      const size_t old_size = b.size;
      b.data = p;
      b.size = new_size;
      verify_pages(b, old_size < new_size ? old_size : new_size);
      if (new_size > old_size) write_pages(b, pages_written(old_size));
      checksum = mix(checksum, new_size);
    }
  }
  for (auto& b : blocks) {
    if (b.data != nullptr) verify_pages(b, b.size);
    std::free(b.data);
  }
  std::printf("large steps=%llu checksum=%016llx\n", static_cast<unsigned long long>(steps),
              static_cast<unsigned long long>(checksum));
  return 0;
}
