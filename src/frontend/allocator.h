// SPDX-License-Identifier: Apache-2.0
// Allocator: the one allocator behind every entry point (layer frontend).
// It owns the slab heap, the large heap, the thread-cache registry, the
// init state machine and the fork handlers.
//
// Allocation code overview
//   allocate(n)                       [fast, inline; fast mode only]
//     n small and the class's bin non-empty -> pop slot, write header
//     otherwise -> allocate_slow(n)
//       ensure_ready()                 first call in the process: init
//       checked mode -> allocate_checked  (checked_paths.cpp: redzones,
//                                       canary, poison; every other mode)
//       n large -> LargeHeap::allocate
//       cache unset -> ensure_cache()  first call on this thread
//       bin empty -> SlabHeap::refill  batch of cap/2 under the class lock
//   deallocate(p)                     [fast, inline; fast mode only]
//     p in the slab arena, a slot start by out-of-line state, header
//     verified and Allocated, bin not full -> mark Free, push slot
//     otherwise -> deallocate_slow(p)
//       checked mode -> deallocate_checked: resolve, mismatch and canary
//                       checks, poison, quarantine (the slot's next
//                       allocation verifies the poison)
//       resolve(p)                     full validation; reports and aborts
//       large -> LargeHeap::deallocate
//       bin full -> SlabHeap::release  oldest half under the class lock
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "config/config.h"
#include "ds/ds.h"
#include "frontend/policy.h"
#include "frontend/thread_cache.h"
#include "guarded/guarded.h"
#include "large/large.h"
#include "quarantine/quarantine.h"
#include "platform/platform.h"
#include "slab/slab.h"

struct heapguard_stats;

namespace heapguard {

// What a pointer handed back by the program turned out to be, after
// validation against out-of-line state and the header checksum.
struct ResolvedBlock {
  uintptr_t user = 0;     // the pointer the program holds
  uintptr_t block = 0;    // the slot's block start (== user unless a user offset)
  unsigned class_id = 0;  // kLargeClass for large blocks
  ChunkHeader header;     // the slot's header
  size_t usable = 0;      // bytes usable from `user` (to the end of the slot)
  size_t requested = 0;   // bytes the program asked for
};

// Which entry point is releasing or validating a pointer: named in reports,
// and it implies the API family the block must come from.
enum class ApiCall : uint8_t { Free, Realloc, UsableSize, Delete, DeleteArray, FreeSized };

// Sized release (sized operator delete, free_sized) passes the size; the
// others pass this.
inline constexpr size_t kUnsized = ~size_t{0};

struct HeapFigures {
  size_t small_in_use_bytes = 0;   // slot bytes of live small blocks
  size_t small_usable_bytes = 0;   // usable bytes of live small blocks
  size_t small_live_blocks = 0;
  size_t small_backed_bytes = 0;   // slab bytes not purged
  size_t small_cached_bytes = 0;   // free slots in thread caches
  size_t small_free_bytes = 0;     // free slots inside slabs (incl. empty slabs)
  size_t small_empty_slab_bytes = 0;
  size_t small_quarantined_blocks = 0;
  size_t small_quarantined_bytes = 0;  // slot bytes
  LargeStats large;
  size_t released_bytes_total = 0;
  size_t thread_caches = 0;
  size_t metadata_bytes = 0;
  size_t guarded_live_blocks = 0;  // guard=all and sampled blocks, in the guarded pool
  struct PerClass {
    size_t slot_size, live, cached, free, quarantined;
  } per_class[kNumClasses] = {};
};

class Allocator {
 public:
  // calloc at or above this size skips zeroing slots that are still fresh.
  static constexpr size_t kZeroTrackedMin = 4096;

  constexpr Allocator() = default;

  HEAPGUARD_FAST_PATH void* allocate(size_t n, Origin origin) {
    if (HEAPGUARD_LIKELY(n <= kMaxSmallSize && !g_policy.checked)) {
      unsigned c = size_to_class(n);
      Bin& bin = t_cache->bins[c];
      if (HEAPGUARD_LIKELY(bin.count != 0)) {
        uintptr_t p = pop_slot(bin, c);
        write_allocated_header(p, c, origin, kSizeClasses[c].usable - n);
        return reinterpret_cast<void*>(p);
      }
    }
    return allocate_slow(n, origin);
  }

  // call names the API (free, operator delete, ...) and so the family the
  // block must come from; sized is the size a sized release promised.
  HEAPGUARD_FAST_PATH void deallocate(void* ptr, ApiCall call = ApiCall::Free, size_t sized = kUnsized) {
    uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
    if (HEAPGUARD_LIKELY(slabs_.contains(p) && !g_policy.checked)) {
      unsigned c = slabs_.class_of(p);
      Bin& bin = t_cache->bins[c];
      ChunkHeader h;
      if (HEAPGUARD_LIKELY(bin.count < bin.cap && live_slot_header(p, c, &h) && h.alias_offset16 == 0)) {
        h.state = ChunkState::Free;
        HeaderCodec::store(p, g_header_codec.pack(h, p - kHeaderSize));
        push_slot(bin, p);
        return;
      }
    }
    deallocate_slow(ptr, call, sized);
  }

  void* allocate_slow(size_t n, Origin origin);
  void deallocate_slow(void* ptr, ApiCall call, size_t sized);
  void* allocate_zeroed(size_t n);
  void* allocate_aligned(size_t align, size_t n, Origin origin);
  void* reallocate(void* ptr, size_t n);
  size_t usable_size(const void* ptr);
  // A block leaving the quarantine goes back to a cache (checked when its
  // slot is handed out again, or here when malloc_trim drains).
  void recycle(uintptr_t user);
  bool owns(const void* ptr);

  size_t trim();
  HeapFigures figures();
  // Read-only views for the leak check and the fault handler, which run
  // with the world stopped or in a signal handler and take no locks.
  const SlabHeap& slab_heap() const { return slabs_; }
  const LargeHeap& large_heap() const { return large_; }
  const GuardedPool& guarded_pool() const { return guarded_; }
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
  HEAPGUARD_FAST_PATH static void push_slot(Bin& bin, uintptr_t slot) {
    bin.slots[bin.count] = g_bin_codec.encode(slot, &bin.slots[bin.count]);
    std::atomic_signal_fence(std::memory_order_release);
    bin.count = uint16_t(bin.count + 1);
  }

  // Decodes entry i and checks it is plausible (a 16-aligned address in
  // this class's region): a corrupted bin entry must not become a block.
  HEAPGUARD_FAST_PATH uintptr_t decode_slot(const Bin& bin, unsigned i, unsigned c) const {
    uintptr_t p = g_bin_codec.decode(bin.slots[i], &bin.slots[i]);
    if (HEAPGUARD_UNLIKELY(!slabs_.contains(p) || slabs_.class_of(p) != c || (p & (kMinAlign - 1)) != 0))
      bin_corrupted(&bin.slots[i]);
    return p;
  }
  HEAPGUARD_FAST_PATH uintptr_t pop_slot(Bin& bin, unsigned c) {
    unsigned i = bin.count - 1u;
    uintptr_t p = decode_slot(bin, i, c);
    bin.count = uint16_t(i);
    return p;
  }

  // The header of the slot starting at `block` (class c) when it is intact
  // and Allocated: the shared first test of every free path. The caller
  // still checks the user offset it expects.
  HEAPGUARD_FAST_PATH bool live_slot_header(uintptr_t block, unsigned c, ChunkHeader* h) const {
    return slabs_.is_block_start(block, c) && g_header_codec.unpack(HeaderCodec::load(block), block - kHeaderSize, h) &&
           h->state == ChunkState::Allocated && h->class_id == c && !h->aligned_alias;
  }
  // Re-encodes after a refill wrote raw slot addresses into bin.slots[0, n).
  static void encode_refilled(Bin& bin, size_t n);
  [[noreturn]] static void bin_corrupted(const uintptr_t* entry);

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
  void* allocate_large(size_t n, size_t align, bool zero, Origin origin);
  void free_small(uintptr_t block, unsigned c);
  bool resolve(uintptr_t p, ResolvedBlock* out, ApiCall call, bool report);
  void mark_free(const ResolvedBlock& r);
  // One slot of class c for the checked paths (bin, refill, or without a
  // cache); 0 when the class region is full or the OS refused.
  uintptr_t take_slot(unsigned c);
  // Checked paths (checked_paths.cpp).
  void* allocate_checked(size_t n, size_t align, Origin origin, bool zero);
  void* finish_small_checked(uintptr_t block, unsigned c, size_t offset, size_t n, Origin origin, bool zero,
                             bool known_zero);
  void* finish_large_checked(void* p, size_t n, bool zero);
  // guard=all and sampled blocks: from the guarded pool, or nullptr (pool
  // full, too big) for the ordinary heap to serve.
  bool wants_guarded(size_t n, size_t align);
  void* allocate_guarded(size_t n, size_t align, Origin origin, bool zero);
  size_t usable_size_guarded(uintptr_t p);
  void report_not_live_guarded(uintptr_t p, ApiCall call);
  // A pointer into the guarded pool handed back: checked and freed there.
  void deallocate_guarded(uintptr_t p, ApiCall call, size_t sized);
  void* reallocate_guarded(uintptr_t p, size_t n);
  void deallocate_checked(uintptr_t p, ApiCall call, size_t sized);
  void verify_release(const ResolvedBlock& r, ApiCall call, size_t sized);
  void verify_canaries(const ResolvedBlock& r, ApiCall call);
  void write_canaries(const ResolvedBlock& r);
  void release_checked(const ResolvedBlock& r);
  void* reallocate_checked(uintptr_t p, size_t n);
  void configure_hardening();
  void configure_reporting();
  void count_quarantined(unsigned c, int delta);
  void verify_reused_slot(uintptr_t block, unsigned c, uint64_t header_word);
  // malloc_trim: drains the quarantine, checking every block it releases.
  void drain_quarantine_checked();
  // Moves a retiring cache's quarantine counts to quarantined_elsewhere_.
  void retire_quarantine_counts(ThreadCache* tc);

  SlabHeap slabs_;
  LargeHeap large_;
  GuardedPool guarded_;
  Quarantine quarantine_;
  MetadataArena arena_;
  pal::Lock init_lock_;
  pal::Lock registry_lock_;
  IntrusiveList registry_;
  IntrusiveList spare_caches_;
  size_t live_caches_ = 0;
  // Quarantine counts of threads without a cache and of exited threads.
  std::atomic<int64_t> quarantined_elsewhere_[kNumClasses] = {};
  unsigned thread_key_ = 0;
  std::atomic<int> state_{kUninit};
  std::atomic<bool> post_init_done_{false};
};

extern constinit Allocator g_allocator;

}  // namespace heapguard
