// SPDX-License-Identifier: Apache-2.0
#include "ds/metadata_arena.h"

#include "core/core.h"

namespace heapguard {

void* MetadataArena::allocate(size_t size, size_t align) {
  pal::LockGuard guard(lock_);
  uintptr_t p = align_up(cursor_, align);
  if (cursor_ == 0 || p + size > end_) {
    size_t chunk = align_up(size > kChunk ? size : kChunk, pal::Pal::page_size());
    void* mem = pal::Pal::map(chunk);
    if (mem == nullptr) return nullptr;
    pal::Pal::name_region(mem, chunk, "heapguard-metadata");
    mapped_ += chunk;
    cursor_ = reinterpret_cast<uintptr_t>(mem);
    end_ = cursor_ + chunk;
    p = align_up(cursor_, align);
  }
  cursor_ = p + size;
  return reinterpret_cast<void*>(p);
}

}  // namespace heapguard
