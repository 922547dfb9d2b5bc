// SPDX-License-Identifier: Apache-2.0
// Allocator: the one allocator behind every entry point (layer frontend).
// It owns the slab heap, the large heap, the thread-cache registry, the
// init state machine and the fork handlers.
//
// Allocation code overview
//   allocate(n)                       [fast, inline]
//     n small and the class's bin non-empty -> pop slot, write header
//     otherwise -> allocate_slow(n)
//       ensure_ready()                 first call in the process: init
//       n large -> LargeHeap::allocate
//       cache unset -> ensure_cache()  first call on this thread
//       bin empty -> SlabHeap::refill  batch of cap/2 under the class lock
//   deallocate(p)                     [fast, inline]
//     p in the slab arena, a slot start by out-of-line state, header
//     verified and Allocated, bin not full -> mark Free, push slot
//     otherwise -> deallocate_slow(p)
//       resolve(p)                     full validation; reports and aborts
//       large -> LargeHeap::deallocate
//       bin full -> SlabHeap::release  oldest half under the class lock
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "config/config.h"
#include "ds/ds.h"
#include "frontend/thread_cache.h"
#include "large/large.h"
#include "platform/platform.h"
#include "slab/slab.h"

struct heapguard_stats;

namespace heapguard {

// What a pointer handed back by the program turned out to be, after
// validation against out-of-line state and the header checksum.
struct ResolvedBlock {
  uintptr_t user = 0;     // the pointer the program holds
  uintptr_t block = 0;    // the slot's block start (== user unless aligned alias)
  unsigned class_id = 0;  // kLargeClass for large blocks
  ChunkHeader header;     // the block's own header (the slot's, for aliases)
  size_t usable = 0;      // bytes usable from `user`
  size_t requested = 0;   // bytes the program asked for
};

// Which entry point is validating a pointer; named in reports.
enum class ApiCall : uint8_t { Free, Realloc, UsableSize };

struct HeapFigures {
  size_t small_in_use_bytes = 0;   // slot bytes of live small blocks
  size_t small_usable_bytes = 0;   // usable bytes of live small blocks
  size_t small_live_blocks = 0;
  size_t small_backed_bytes = 0;   // slab bytes not purged
  size_t small_cached_bytes = 0;   // free slots in thread caches
  size_t small_free_bytes = 0;     // free slots inside slabs (incl. empty slabs)
  size_t small_empty_slab_bytes = 0;
  LargeStats large;
  size_t released_bytes_total = 0;
  size_t thread_caches = 0;
  size_t metadata_bytes = 0;
  struct PerClass {
    size_t slot_size, live, cached, free;
  } per_class[kNumClasses] = {};
};

class Allocator {
 public:
  // calloc at or above this size skips zeroing slots that are still fresh.
  static constexpr size_t kZeroTrackedMin = 4096;

  constexpr Allocator() = default;

  HEAPGUARD_FAST_PATH void* allocate(size_t n, Origin origin) {
    if (HEAPGUARD_LIKELY(n <= kMaxSmallSize)) {
      unsigned c = size_to_class(n);
      Bin& bin = t_cache->bins[c];
      if (HEAPGUARD_LIKELY(bin.count != 0)) {
        uintptr_t p = reinterpret_cast<uintptr_t>(bin.slots[--bin.count]);
        write_allocated_header(p, c, origin, kSizeClasses[c].usable - n);
        return reinterpret_cast<void*>(p);
      }
    }
    return allocate_slow(n, origin);
  }

  HEAPGUARD_FAST_PATH void deallocate(void* ptr) {
    uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
    if (HEAPGUARD_LIKELY(slabs_.contains(p))) {
      unsigned c = slabs_.class_of(p);
      Bin& bin = t_cache->bins[c];
      ChunkHeader h;
      if (HEAPGUARD_LIKELY(bin.count < bin.cap && slabs_.is_block_start(p, c) &&
                           g_header_codec.unpack(HeaderCodec::load(p), p - kHeaderSize, &h) &&
                           h.state == ChunkState::Allocated && !h.aligned_alias && h.class_id == c)) {
        h.state = ChunkState::Free;
        HeaderCodec::store(p, g_header_codec.pack(h, p - kHeaderSize));
        push_slot(bin, ptr);
        return;
      }
    }
    deallocate_slow(ptr);
  }

  void* allocate_slow(size_t n, Origin origin);
  void deallocate_slow(void* ptr);
  void* allocate_zeroed(size_t n);
  void* allocate_aligned(size_t align, size_t n, Origin origin);
  void* reallocate(void* ptr, size_t n);
  size_t usable_size(const void* ptr);
  bool owns(const void* ptr);

  size_t trim();
  HeapFigures figures();
  Mode mode() {
    ensure_ready();
    return options().mode;
  }

  // Fork protocol (pthread_atfork): every allocator lock is taken before
  // fork so the child never inherits a lock held by a thread it lacks.
  void before_fork();
  void after_fork_parent();
  void after_fork_child();
  void on_thread_exit(ThreadCache* tc);
  // Once libc is initialised (library constructor): registers the fork
  // handlers, which may allocate.
  void after_init();

  // True once init has run; false only if the OS refused the reservation.
  bool ensure_ready() {
    if (HEAPGUARD_LIKELY(state_.load(std::memory_order_acquire) == kReady)) return true;
    return init_slow();
  }

 private:
  enum : int { kUninit = 0, kReady = 2 };

  // The slot is stored before the count that publishes it: fork() may
  // snapshot this thread's bin at any instant, and the child gives every
  // other thread's cached slots back to the heap. A snapshot must therefore
  // only ever miss a slot (a leak in the child), never see one twice.
  HEAPGUARD_FAST_PATH static void push_slot(Bin& bin, void* slot) {
    bin.slots[bin.count] = slot;
    std::atomic_signal_fence(std::memory_order_release);
    bin.count = uint16_t(bin.count + 1);
  }

  HEAPGUARD_FAST_PATH static void write_allocated_header(uintptr_t p, unsigned c, Origin origin, size_t unused) {
    ChunkHeader h;
    h.class_id = c;
    h.state = ChunkState::Allocated;
    h.origin = origin;
    h.unused_bytes = uint32_t(unused);
    HeaderCodec::store(p, g_header_codec.pack(h, p - kHeaderSize));
  }

  bool init_slow();
  ThreadCache* ensure_cache();
  ThreadCache* new_cache();
  void flush_bin(unsigned c, Bin& bin, size_t keep);
  void flush_all(ThreadCache* tc);
  void* allocate_small_uncached(unsigned c, size_t n, Origin origin);
  void* allocate_large(size_t n, size_t align, bool zero, Origin origin);
  void free_small(uintptr_t block, unsigned c);
  bool resolve(uintptr_t p, ResolvedBlock* out, ApiCall call, bool report);
  void mark_free(const ResolvedBlock& r);
  void* grow_or_move(const ResolvedBlock& r, size_t n);

  SlabHeap slabs_;
  LargeHeap large_;
  MetadataArena arena_;
  pal::Lock init_lock_;
  pal::Lock registry_lock_;
  IntrusiveList registry_;
  IntrusiveList spare_caches_;
  size_t live_caches_ = 0;
  unsigned thread_key_ = 0;
  std::atomic<int> state_{kUninit};
  std::atomic<bool> post_init_done_{false};
};

extern constinit Allocator g_allocator;

}  // namespace heapguard
