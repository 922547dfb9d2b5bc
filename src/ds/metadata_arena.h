// SPDX-License-Identifier: Apache-2.0
// Bump allocator for allocator metadata (thread caches and the like), backed
// by pages mapped from the platform layer. It never calls malloc, so
// metadata survives any heap corruption and can be used during init.
// Memory is never returned: objects that come and go are recycled by their
// owners' free lists.
#pragma once

#include <cstddef>
#include <cstdint>

#include "platform/platform.h"

namespace heapguard {

class MetadataArena {
 public:
  constexpr MetadataArena() = default;
  // Zeroed memory aligned to `align` (a power of two <= page size), or
  // nullptr when the OS refuses memory.
  void* allocate(size_t size, size_t align);
  size_t mapped_bytes() const { return mapped_; }
  pal::Lock& lock_for_fork() { return lock_; }

 private:
  static constexpr size_t kChunk = 1 << 20;
  pal::Lock lock_;
  uintptr_t cursor_ = 0;
  uintptr_t end_ = 0;
  size_t mapped_ = 0;
};

}  // namespace heapguard
