// SPDX-License-Identifier: Apache-2.0
// The allocator's slow paths and the validation of pointers the program
// hands back. Validation trusts only out-of-line state (the slab arena's
// layout and used-slab counts, the large-block table) to decide whether a
// pointer can be a block, and only then reads the block's header, whose
// keyed checksum decides whether it is intact.
#include "frontend/allocator.h"
#include "frontend/block_reports.h"

#include <errno.h>

#include <cstring>

namespace heapguard {
namespace {

const char* call_name(ApiCall call) { return api_call_name(call); }

BlockFacts slot_facts(uintptr_t user, size_t size, uintptr_t block, unsigned c) {
  return {user, size, g_block_traces.get(block, c)};
}

// The reports of pointer validation. All but a broken header are
// recoverable: the call is then ignored, which leaves the heap as it was.
HEAPGUARD_COLD void report_double_free(uintptr_t p, const BlockFacts& block, ApiCall call) {
  MessageBuilder m;
  m.str("the block is already free (or waiting in quarantine)\nthe pointer was passed to ").str(call_name(call)).str("()");
  report_block_error(ErrorKind::DoubleFree, p, block, m, Recovery::Recoverable);
}

HEAPGUARD_COLD void report_purged_double_free(uintptr_t p, const BlockHistory& history, ApiCall call) {
  MessageBuilder m;
  m.hex(p).str(" is the start of a block that was already freed (its memory has since been returned to the OS)\n")
      .str("the pointer was passed to ").str(call_name(call)).str("()");
  report_block_error(ErrorKind::DoubleFree, p, BlockFacts{0, 0, history}, m, Recovery::Recoverable);
}

HEAPGUARD_COLD void report_invalid(uintptr_t p, const char* what, ApiCall call) {
  MessageBuilder m;
  m.hex(p).ch(' ').str(what).str("\nthe pointer was passed to ").str(call_name(call)).str("()");
  report_block_error(ErrorKind::InvalidFree, p, BlockFacts{}, m, Recovery::Recoverable);
}

// A pointer outside every heapguard heap: say what it points at.
HEAPGUARD_COLD void report_foreign(uintptr_t p, ApiCall call) {
  MessageBuilder m;
  describe_foreign_pointer(m, p);
  m.str("\nthe pointer was passed to ").str(call_name(call)).str("()");
  report_block_error(ErrorKind::InvalidFree, p, BlockFacts{}, m, Recovery::Recoverable);
}

HEAPGUARD_COLD void report_interior(uintptr_t p, const BlockFacts& block, ApiCall call) {
  MessageBuilder m;
  m.str("the pointer is not the start of the block\nthe pointer was passed to ").str(call_name(call)).str("()");
  report_block_error(ErrorKind::InvalidFree, p, block, m, Recovery::Recoverable);
}

// p is the program's pointer, block its slot's start (they differ by the
// left redzone or an alignment offset). The slot's history is out of line,
// so the report still says where the block was allocated.
[[noreturn]] HEAPGUARD_COLD void report_bad_header(uintptr_t p, uintptr_t block, const BlockHistory& history) {
  MessageBuilder m;
  m.str("the chunk header at ").hex(block - kHeaderSize).str(" of the block at ").hex(p)
      .str(" failed its integrity check (overwritten by an underflow of this block or an overflow of the one before)");
  report_block_fatal(ErrorKind::MetadataCorruption, p, BlockFacts{0, 0, history}, m);
}

}  // namespace

bool Allocator::resolve(uintptr_t p, ResolvedBlock* out, ApiCall call, bool report) {
  if (slabs_.contains(p)) {
    unsigned c = slabs_.class_of(p);
    const SizeClass& sc = kSizeClasses[c];
    ChunkHeader h;
    if (slabs_.is_block_start(p, c)) {
      uint64_t word = HeaderCodec::load(p);
      bool intact = g_header_codec.unpack(word, p - kHeaderSize, &h);
      if (!report && !(intact && h.state == ChunkState::Allocated && h.class_id == c && !h.aligned_alias &&
                       h.alias_offset16 == 0))
        return false;
      // A zero header: the slot was never written, or its slab was purged
      // after the block was freed. The slab's high-water mark tells which.
      if (word == 0 || (intact && h.state == ChunkState::Unused)) {
        if (slabs_.slot_was_used(p, c)) report_purged_double_free(p, g_block_traces.get(p, c), call);
        else report_invalid(p, "is a heapguard slot that was never allocated", call);
        return false;
      }
      if (!intact || h.class_id != c || h.aligned_alias) report_bad_header(p, p, g_block_traces.get(p, c));
      if (h.alias_offset16 != 0) {
        // The block's handle is further in (redzone or alignment).
        uintptr_t user = p + uintptr_t(h.alias_offset16) * 16;
        size_t usable = p + sc.usable - user;
        if (h.state == ChunkState::Allocated) report_interior(p, slot_facts(user, usable - h.unused_bytes, p, c), call);
        else report_invalid(p, "points into a heapguard slot that is not allocated", call);
        return false;
      }
      if (h.state != ChunkState::Allocated) {
        report_double_free(p, slot_facts(p, sc.usable - h.unused_bytes, p, c), call);
        return false;
      }
      *out = {p, p, c, h, sc.usable, sc.usable - h.unused_bytes};
      return true;
    }
    uintptr_t block = slabs_.block_containing(p, c);
    if (block != 0 && p >= block) {
      bool intact = g_header_codec.unpack(HeaderCodec::load(block), block - kHeaderSize, &h);
      if (intact && h.class_id == c && !h.aligned_alias && h.alias_offset16 != 0 &&
          block + uintptr_t(h.alias_offset16) * 16 == p) {
        size_t usable = block + sc.usable - p;
        if (h.state == ChunkState::Allocated) {
          *out = {p, block, c, h, usable, usable - h.unused_bytes};
          return true;
        }
        if (!report) return false;
        if (h.state == ChunkState::Unused) report_invalid(p, "points into a heapguard slot that is not allocated", call);
        else report_double_free(p, slot_facts(p, usable - h.unused_bytes, block, c), call);
        return false;
      }
      if (!report) return false;
      if (!intact || h.class_id != c || h.aligned_alias) {
        if (HeaderCodec::load(block) == 0) {
          // A purged slab zeroed the header with the block's offset: a
          // 16-aligned pointer into a slot that was handed out is the
          // freed block's handle (redzone or alignment offset).
          if ((p - block) % kMinAlign == 0 && slabs_.slot_was_used(block, c))
            report_purged_double_free(p, g_block_traces.get(block, c), call);
          else report_invalid(p, "points into a heapguard slot that is not allocated", call);
          return false;
        }
        report_bad_header(p, block, g_block_traces.get(block, c));
      }
      if (h.state == ChunkState::Allocated) {
        uintptr_t user = block + uintptr_t(h.alias_offset16) * 16;
        size_t usable = block + sc.usable - user;
        report_interior(p, slot_facts(user, usable - h.unused_bytes, block, c), call);
        return false;
      }
      report_invalid(p, "points into a heapguard slot that is not allocated", call);
      return false;
    }
    if (!report) return false;
    if (block != 0) report_invalid(p, "points into the chunk header in front of a heapguard block", call);
    else report_invalid(p, "points into the heapguard slab arena but not into any slot", call);
    return false;
  }
  LargeBlock b;
  if (large_.lookup(p, &b)) {
    if (b.quarantined) {
      if (!report) return false;
      report_double_free(p, BlockFacts{p, b.requested, g_block_traces.get(p, kLargeClass)}, call);
      return false;
    }
    ChunkHeader h;
    bool intact = g_header_codec.unpack(HeaderCodec::load(p), p - kHeaderSize, &h);
    if (!intact || h.class_id != kLargeClass || h.state != ChunkState::Allocated) {
      if (!report) return false;
      report_bad_header(p, p, g_block_traces.get(p, kLargeClass));
    }
    *out = {p, p, kLargeClass, h, LargeHeap::usable_size(b), b.requested};
    return true;
  }
  if (!report) return false;
  // A pointer into a large block's mapping (interior, or its guard pages):
  // name the block rather than calling the pointer foreign.
  if (large_.find_fault(p, &b)) {
    report_interior(p, BlockFacts{b.user, b.requested, g_block_traces.get(b.user, kLargeClass)}, call);
    return false;
  }
  report_foreign(p, call);
  return false;
}

void* Allocator::allocate_slow(size_t n, Origin origin) {
  if (HEAPGUARD_UNLIKELY(!ensure_ready())) {
    pal::set_errno(ENOMEM);
    return nullptr;
  }
  if (g_policy.checked) return allocate_checked(n, kMinAlign, origin, false);
  if (n > kMaxSmallSize) return allocate_large(n, kMinAlign, false, origin);
  unsigned c = size_to_class(n);
  uintptr_t p = take_slot(c);
  // The class's region is full (only under a tight RLIMIT_AS, where regions
  // are small) or the OS refused memory: the large heap may still serve it.
  if (p == 0) return allocate_large(n, kMinAlign, false, origin);
  write_allocated_header(p, c, origin, kSizeClasses[c].usable - n);
  return reinterpret_cast<void*>(p);
}

uintptr_t Allocator::take_slot(unsigned c) {
  ThreadCache* tc = t_cache;
  if (tc->bins[c].cap == 0) {
    tc = ensure_cache();
    // No cache: during cache setup (re-entry from pthread_setspecific) and
    // after the thread's cache was torn down at exit.
    if (tc == nullptr) {
      void* slot;
      return slabs_.refill(c, &slot, 1) == 0 ? 0 : reinterpret_cast<uintptr_t>(slot);
    }
  }
  Bin& bin = tc->bins[c];
  if (bin.count == 0) {
    size_t want = bin.cap > 1 ? bin.cap / 2 : 1;
    size_t got = slabs_.refill(c, reinterpret_cast<void**>(bin.slots), want);
    if (got == 0) return 0;
    encode_refilled(bin, got);
  }
  return pop_slot(bin, c);
}

// The count is published only after every entry is encoded: a fork()
// snapshot (see push_slot) must never see a raw address as an entry.
void Allocator::encode_refilled(Bin& bin, size_t n) {
  for (size_t i = 0; i < n; ++i) bin.slots[i] = g_bin_codec.encode(bin.slots[i], &bin.slots[i]);
  std::atomic_signal_fence(std::memory_order_release);
  bin.count = uint16_t(n);
}

void Allocator::bin_corrupted(const uintptr_t* entry) {
  MessageBuilder m;
  m.str("a thread-cache entry at ").hex(reinterpret_cast<uintptr_t>(entry))
      .str(" decodes to no slot of its size class (the allocator's free list was overwritten)");
  report_block_fatal(ErrorKind::MetadataCorruption, reinterpret_cast<uintptr_t>(entry), BlockFacts{}, m);
}

// Every block the large heap serves: blocks above the size classes, over-
// aligned ones, and small ones whose class region is full.
void* Allocator::allocate_large(size_t n, size_t align, bool zero, Origin origin) {
  void* p = large_.allocate(n, align, zero, origin);
  if (p == nullptr) pal::set_errno(ENOMEM);
  return p;
}

void Allocator::mark_free(const ResolvedBlock& r) {
  ChunkHeader h = r.header;
  h.state = ChunkState::Free;
  HeaderCodec::store(r.block, g_header_codec.pack(h, r.block - kHeaderSize));
}

void Allocator::free_small(uintptr_t block, unsigned c) {
  ThreadCache* tc = t_cache;
  if (tc->bins[c].cap == 0) {
    tc = ensure_cache();
    if (tc == nullptr) {
      void* slot = reinterpret_cast<void*>(block);
      slabs_.release(c, &slot, 1);
      return;
    }
  }
  Bin& bin = tc->bins[c];
  if (bin.count == bin.cap) flush_bin(c, bin, bin.cap / 2);
  push_slot(bin, block);
}

// Releases all but the newest `keep` slots. Every intermediate state of
// the bin is one a fork() snapshot may see (see push_slot): the count drops
// to zero before the kept slots move down, and is raised again only once
// they are in place, so the child can leak slots but never return one twice.
// The released slots leave under the class lock, which fork() waits for.
// Entries are encoded with their own address, so kept ones are re-encoded
// as they move down.
void Allocator::flush_bin(unsigned c, Bin& bin, size_t keep) {
  void* out[kMaxCacheCap];
  size_t n = bin.count - keep;
  for (size_t i = 0; i < n; ++i) out[i] = reinterpret_cast<void*>(decode_slot(bin, i, c));
  bin.count = 0;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  for (size_t i = 0; i < keep; ++i) {
    uintptr_t p = g_bin_codec.decode(bin.slots[n + i], &bin.slots[n + i]);
    bin.slots[i] = g_bin_codec.encode(p, &bin.slots[i]);
  }
  std::atomic_signal_fence(std::memory_order_seq_cst);
  bin.count = uint16_t(keep);
  slabs_.release(c, out, n);
}

void Allocator::deallocate_slow(void* ptr, ApiCall call, size_t sized) {
  if (ptr == nullptr) return;
  uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  if (HEAPGUARD_UNLIKELY(!ensure_ready())) return report_invalid(p, "was freed before the heap existed", call);
  if (g_policy.checked) return deallocate_checked(p, call, sized);
  ResolvedBlock r;
  if (!resolve(p, &r, call, true)) return;
  if (r.class_id == kLargeClass) {
    large_.deallocate(r.block);
    return;
  }
  mark_free(r);
  free_small(r.block, r.class_id);
}

void* Allocator::allocate_zeroed(size_t n) {
  if (g_policy.checked) {
    if (!ensure_ready()) {
      pal::set_errno(ENOMEM);
      return nullptr;
    }
    return allocate_checked(n, kMinAlign, Origin::Malloc, true);
  }
  if (n < kZeroTrackedMin) {
    void* p = allocate(n, Origin::Malloc);
    if (p != nullptr) memset(p, 0, n);
    return p;
  }
  // Big enough that touching fresh zero pages matters (RSS, page faults):
  // fresh large mappings are zero already, and a slab slot is taken
  // centrally, where the slab knows whether it still reads as zero.
  if (!ensure_ready()) {
    pal::set_errno(ENOMEM);
    return nullptr;
  }
  if (n > kMaxSmallSize) return allocate_large(n, kMinAlign, true, Origin::Malloc);
  unsigned c = size_to_class(n);
  bool zeroed = false;
  void* slot = slabs_.take_one(c, &zeroed);
  if (slot == nullptr) return allocate_large(n, kMinAlign, true, Origin::Malloc);
  write_allocated_header(reinterpret_cast<uintptr_t>(slot), c, Origin::Malloc, kSizeClasses[c].usable - n);
  if (!zeroed) memset(slot, 0, n);
  return slot;
}

void* Allocator::allocate_aligned(size_t align, size_t n, Origin origin) {
  if (align <= kMinAlign) return allocate(n, origin);
  if (!ensure_ready()) {
    pal::set_errno(ENOMEM);
    return nullptr;
  }
  if (g_policy.checked) return allocate_checked(n, align, origin, false);
  size_t padded;
  if (align <= pal::Pal::page_size() && checked_add(n, align - kMinAlign, &padded) && padded <= kMaxSmallSize) {
    void* b = allocate(padded, origin);
    if (b == nullptr) return nullptr;
    uintptr_t block = reinterpret_cast<uintptr_t>(b);
    if (!slabs_.contains(block)) {
      // Served by the large heap (class region full): align there instead.
      deallocate(b);
      return allocate_large(n, align, false, origin);
    }
    unsigned c = size_to_class(padded);
    uintptr_t p = align_up(block, align);
    size_t usable = block + kSizeClasses[c].usable - p;
    // The slot's header records where the aligned handle is.
    ChunkHeader h;
    h.class_id = c;
    h.state = ChunkState::Allocated;
    h.origin = origin;
    h.unused_bytes = uint32_t(usable - n);
    h.alias_offset16 = uint32_t((p - block) / 16);
    HeaderCodec::store(block, g_header_codec.pack(h, block - kHeaderSize));
    return reinterpret_cast<void*>(p);
  }
  return allocate_large(n, align, false, origin);
}

void* Allocator::reallocate(void* ptr, size_t n) {
  if (ptr == nullptr) return allocate(n, Origin::Malloc);
  if (n == 0) {
    // glibc frees and returns NULL (REALLOC_ZERO_BYTES_FREES).
    deallocate(ptr);
    return nullptr;
  }
  uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  ResolvedBlock r;
  if (!ensure_ready()) {
    report_invalid(p, "was passed before the heap existed", ApiCall::Realloc);
    return nullptr;
  }
  if (g_policy.checked) return reallocate_checked(p, n);
  if (!resolve(p, &r, ApiCall::Realloc, true)) return nullptr;
  if (r.class_id != kLargeClass) {
    if (r.user == r.block && n <= kMaxSmallSize && size_to_class(n) == r.class_id) {
      ChunkHeader h = r.header;
      h.unused_bytes = uint32_t(r.usable - n);
      HeaderCodec::store(p, g_header_codec.pack(h, p - kHeaderSize));
      return ptr;
    }
  } else if (n > kMaxSmallSize) {
    void* q = large_.reallocate(r.block, n);
    if (q == nullptr) pal::set_errno(ENOMEM);
    return q;
  }
  void* q = allocate(n, Origin::Malloc);
  if (q == nullptr) return nullptr;
  // Every byte malloc_usable_size() reported is the program's to use, and
  // programs do (Redis grows strings into it): keep all of them, not just
  // the requested size.
  memcpy(q, ptr, r.usable < n ? r.usable : n);
  if (r.class_id == kLargeClass) {
    large_.deallocate(r.block);
  } else {
    mark_free(r);
    free_small(r.block, r.class_id);
  }
  return q;
}

size_t Allocator::usable_size(const void* ptr) {
  if (ptr == nullptr) return 0;
  uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  if (!ensure_ready()) {
    report_invalid(p, "was passed before the heap existed", ApiCall::UsableSize);
    return 0;
  }
  if (guarded_.contains(p)) return usable_size_guarded(p);
  ResolvedBlock r;
  if (!resolve(p, &r, ApiCall::UsableSize, true)) return 0;
  // With the slack checked, every byte past the request is an overflow, so
  // the program is told exactly what it asked for (as ASan does).
  return g_policy.check_slack ? r.requested : r.usable;
}

bool Allocator::owns(const void* ptr) {
  if (ptr == nullptr || !ensure_ready()) return false;
  GuardedBlock b;
  if (guarded_.contains(reinterpret_cast<uintptr_t>(ptr))) return guarded_.find_live(reinterpret_cast<uintptr_t>(ptr), &b);
  ResolvedBlock r;
  return resolve(reinterpret_cast<uintptr_t>(ptr), &r, ApiCall::Free, false);
}

}  // namespace heapguard
