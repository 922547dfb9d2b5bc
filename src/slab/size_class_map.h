// SPDX-License-Identifier: Apache-2.0
// Size classes for small blocks (layer slab). A slot holds an 8-byte chunk
// header followed by the block, and slot sizes are multiples of 16 so every
// block is 16-byte aligned. Classes step by 16 bytes up to 272, then four
// per power of two, chosen so that power-of-two requests waste only the
// 8-byte header round-up: internal waste is at most 25% above 264 bytes and
// 15 bytes below. Everything here is constexpr and checked by static_assert
// and tests/unit/slab/size_class_map_test.cpp.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "core/core.h"

namespace heapguard {

inline constexpr size_t kHeaderSize = 8;
inline constexpr size_t kMinAlign = 16;
// The first slot starts this far into a slab, so user pointers (slot + 8)
// are 16-aligned.
inline constexpr size_t kSlabLeadIn = 8;
inline constexpr size_t kMaxSlotsPerSlab = 512;

struct SizeClass {
  uint32_t slot_size;   // bytes per slot, header included
  uint32_t usable;      // slot_size - header: the most a block of this class can hold
  uint8_t slab_shift;   // slab bytes = 1 << slab_shift
  uint16_t slots;       // slots per slab
  uint16_t cache_cap;   // thread-cache capacity for this class
  uint64_t div_magic;   // offset / slot_size == (offset * div_magic) >> 40 for offsets < 2 MiB
};

namespace size_class_detail {

constexpr size_t kNumUsableTargets = 53;

constexpr std::array<uint32_t, kNumUsableTargets> slot_sizes() {
  std::array<uint32_t, kNumUsableTargets> out{};
  size_t n = 0;
  for (uint32_t s = 16; s <= 272; s += 16) out[n++] = s;
  for (uint32_t base = 256; base < 131072; base *= 2) {
    for (uint32_t q = 5; q <= 8; ++q) {
      uint32_t usable = base / 4 * q;
      out[n++] = uint32_t(align_up(usable + kHeaderSize, 16));
    }
  }
  return out;
}

constexpr SizeClass make(uint32_t slot) {
  SizeClass c{};
  c.slot_size = slot;
  c.usable = slot - uint32_t(kHeaderSize);
  size_t min_slots = 65536 / slot;
  if (min_slots < 4) min_slots = 4;
  if (min_slots > 32) min_slots = 32;
  for (unsigned shift = 12; shift <= 21; ++shift) {
    size_t bytes = size_t{1} << shift;
    size_t n = (bytes - kSlabLeadIn) / slot;
    if (n > kMaxSlotsPerSlab) n = kMaxSlotsPerSlab;
    size_t waste = bytes - kSlabLeadIn - n * slot;
    if (n >= min_slots && (n == kMaxSlotsPerSlab || waste * 8 <= bytes)) {
      c.slab_shift = uint8_t(shift);
      c.slots = uint16_t(n);
      break;
    }
  }
  // Cache about 64 KiB per class per thread, at least one block.
  size_t cap = 65536 / slot;
  c.cache_cap = uint16_t(cap < 1 ? 1 : cap > 64 ? 64 : cap);
  c.div_magic = ((uint64_t{1} << 40) + slot - 1) / slot;
  return c;
}

}  // namespace size_class_detail

// Class 0 is reserved: a chunk header with class 0 belongs to a large block.
inline constexpr size_t kNumClasses = size_class_detail::kNumUsableTargets + 1;
inline constexpr unsigned kLargeClass = 0;

inline constexpr std::array<SizeClass, kNumClasses> kSizeClasses = [] {
  std::array<SizeClass, kNumClasses> out{};
  auto slots = size_class_detail::slot_sizes();
  for (size_t i = 0; i < slots.size(); ++i) out[i + 1] = size_class_detail::make(slots[i]);
  return out;
}();

inline constexpr size_t kMaxSmallSize = kSizeClasses[kNumClasses - 1].usable;
inline constexpr size_t kMaxCacheCap = 64;

namespace size_class_detail {

constexpr uint8_t smallest_class_for(size_t size) {
  for (size_t c = 1; c < kNumClasses; ++c)
    if (kSizeClasses[c].usable >= size) return uint8_t(c);
  return 0;
}

// Requests up to 1024 bytes are looked up with 8-byte granularity, larger
// ones with 128-byte granularity: two small tables instead of a loop. Above
// 1024 every class's usable size is a multiple of 128 plus 8 (the header
// round-up), so entry i serves requests in (128(i-1)+8, 128i+8] and is still
// the smallest class that holds them.
inline constexpr size_t kFineLimit = 1024;
inline constexpr auto kFineTable = [] {
  std::array<uint8_t, kFineLimit / 8 + 1> t{};
  for (size_t i = 0; i < t.size(); ++i) t[i] = smallest_class_for(i * 8);
  return t;
}();
inline constexpr auto kCoarseTable = [] {
  std::array<uint8_t, (kMaxSmallSize + 119) / 128 + 1> t{};
  for (size_t i = 0; i < t.size(); ++i) t[i] = smallest_class_for(i * 128 + 8 > kMaxSmallSize ? kMaxSmallSize : i * 128 + 8);
  return t;
}();
constexpr bool coarse_classes_are_128_plus_8() {
  for (size_t c = 1; c < kNumClasses; ++c)
    if (kSizeClasses[c].usable > kFineLimit && kSizeClasses[c].usable % 128 != 8) return false;
  return true;
}
static_assert(coarse_classes_are_128_plus_8(), "the coarse lookup relies on this shape");

}  // namespace size_class_detail

// Precondition: size <= kMaxSmallSize. Returns a class in [1, kNumClasses).
HEAPGUARD_FAST_PATH unsigned size_to_class(size_t size) {
  if (size <= size_class_detail::kFineLimit) return size_class_detail::kFineTable[(size + 7) >> 3];
  return size_class_detail::kCoarseTable[(size + 119) >> 7];
}

HEAPGUARD_FAST_PATH size_t slot_index(const SizeClass& sc, size_t offset) { return size_t((offset * sc.div_magic) >> 40); }

static_assert(kSizeClasses[1].slot_size == 16);
static_assert(kMaxSmallSize >= 131072);
static_assert(kSizeClasses[kNumClasses - 1].slab_shift <= 21);
static_assert(kNumClasses <= 64, "class ids are stored in 6 bits of the chunk header");

}  // namespace heapguard
