// SPDX-License-Identifier: Apache-2.0
// PointerCodec: how the allocator stores a pointer anywhere a heap bug could
// read or write it (thread-cache bins, quarantine entries). The stored word
// is the pointer XORed with a per-process secret and with a mix of the
// word's own address, so a leaked word reveals no address, and a forged or
// copied word decodes to garbage that the caller's plausibility check
// (the pointer must lie in the region it came from) rejects.
#pragma once

#include <cstdint>

#include "core/core.h"

namespace heapguard {

class PointerCodec {
 public:
  constexpr explicit PointerCodec(uint64_t key) : key_(key) {}
  void set_key(uint64_t key) { key_ = key; }

  HEAPGUARD_FAST_PATH uintptr_t encode(uintptr_t value, const void* location) const {
    return value ^ key_ ^ mix(location);
  }
  HEAPGUARD_FAST_PATH uintptr_t decode(uintptr_t stored, const void* location) const {
    return stored ^ key_ ^ mix(location);
  }

 private:
  // Rotating the address spreads its entropy-free low bits into the high
  // ones, so neighbouring words differ in their mask everywhere.
  HEAPGUARD_FAST_PATH static uintptr_t mix(const void* location) {
    uintptr_t a = reinterpret_cast<uintptr_t>(location);
    return (a << 29) | (a >> 35);
  }

  uint64_t key_;
};

}  // namespace heapguard
