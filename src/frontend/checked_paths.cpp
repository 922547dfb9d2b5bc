// SPDX-License-Identifier: Apache-2.0
// The checked paths: what every mode but fast does to each block on its way
// out and back in (PRODUCT.md section 3). One allocator: these functions use
// the same slabs, bins and large heap as the fast paths, and add
//   on allocation: a left redzone (debug, fuzz), the keyed canary after the
//     requested size, the fresh-allocation pattern (debug, fuzz);
//   on release: the API-family and size checks, the canary checks, the
//     free poison (zero in hardened, a pattern in debug and fuzz), and the
//     quarantine;
//   when a freed slot is handed out again: the poison check that turns a
//     write after free into a report, and the header check that stops a
//     slot from being handed out twice. Doing it there rather than when the
//     block leaves the quarantine costs no extra cache miss: the slot's line
//     is about to be written anyway, while a block leaving the quarantine is
//     cold. malloc_trim() checks every block it drains, for tests.
// The quarantined state lives in the slot's header (small blocks) or the
// large-block table, so a second free of a quarantined block is a
// deterministic double-free.
#include <errno.h>

#include <cstring>

#include "check/check.h"
#include "frontend/allocator.h"
#include "frontend/block_reports.h"

namespace heapguard {

constinit Sealed<Policy> g_policy_page{};
constinit Sealed<PointerCodec> g_bin_codec_page{PointerCodec{0}};

namespace {

constinit Sealed<CanaryCodec> g_canary_page{CanaryCodec{0}};
constexpr const CanaryCodec& g_canary = g_canary_page.value;

uint8_t free_fill_byte() { return g_policy.poison == PoisonMode::Zero ? 0 : kFreeFill; }

BlockFacts resolved_facts(const ResolvedBlock& r) {
  return {r.user, r.requested, g_block_traces.get(r.block, r.class_id)};
}

// Found on release: the heap is intact (the damage is in bytes no block
// owns), so with halt_on_error=0 the release goes ahead.
HEAPGUARD_COLD void report_overflow(uintptr_t bad, const ResolvedBlock& r, ApiCall call) {
  MessageBuilder m;
  m.str("the overwrite was found when the block was passed to ").str(api_call_name(call)).str("()");
  report_block_error(ErrorKind::HeapBufferOverflow, bad, resolved_facts(r), m, Recovery::Recoverable);
}

HEAPGUARD_COLD void report_use_after_free(uintptr_t bad, const BlockFacts& block, bool reused) {
  MessageBuilder m;
  m.str("the block was written after it was freed\n")
      .str(reused ? "the write was found when the block's memory was handed out again"
                  : "the write was found when the block left quarantine");
  report_block_error(ErrorKind::HeapUseAfterFree, bad, block, m, Recovery::Recoverable);
}

HEAPGUARD_COLD void report_mismatch(const ResolvedBlock& r, ApiCall call) {
  MessageBuilder m;
  m.str("allocated by ").str(origin_name(r.header.origin)).str(", released by ").str(release_name(call));
  report_block_error(ErrorKind::AllocDeallocMismatch, r.user, resolved_facts(r), m, Recovery::Recoverable);
}

HEAPGUARD_COLD void report_type_mismatch(const ResolvedBlock& r, ApiCall call, size_t sized) {
  MessageBuilder m;
  m.str("allocated with size ").dec(r.requested).str(", released by ").str(release_name(call)).str(" with size ")
      .dec(sized);
  report_block_error(ErrorKind::NewDeleteTypeMismatch, r.user, resolved_facts(r), m, Recovery::Recoverable);
}

[[noreturn]] HEAPGUARD_COLD void report_quarantine_header(uintptr_t user, uintptr_t header) {
  MessageBuilder m;
  m.str("the chunk header at ").hex(header).str(" of the quarantined block at ").hex(user)
      .str(" failed its integrity check (overwritten after the block was freed)");
  report_block_fatal(ErrorKind::MetadataCorruption, user, BlockFacts{}, m);
}

void recycle_hook(uintptr_t user, size_t) { g_allocator.recycle(user); }

// Set while malloc_trim() drains the quarantine: recycle() then checks
// each block instead of leaving that to the slot's next allocation.
constinit thread_local bool t_verify_recycled = false;

[[noreturn]] HEAPGUARD_COLD void report_bad_header(uintptr_t block, uintptr_t header) {
  MessageBuilder m;
  m.str("the chunk header at ").hex(header).str(" of the freed slot at ").hex(block)
      .str(" failed its integrity check when the slot was handed out again (overwritten after the block was freed)");
  report_block_fatal(ErrorKind::MetadataCorruption, block, BlockFacts{}, m);
}

// Not recoverable: the slot is in a cache twice, and would be handed out
// to two owners.
[[noreturn]] HEAPGUARD_COLD void report_slot_reused_live(uintptr_t block, unsigned c) {
  MessageBuilder m;
  m.str("the slot at ").hex(block).str(" was about to be handed out while its header says its block is live: ")
      .str("the block was freed twice behind a restored header, and would have been handed out twice");
  report_block_fatal(ErrorKind::DoubleFree, block, BlockFacts{0, 0, g_block_traces.get(block, c)}, m);
}

// The first byte of a freed block's [user, user+n) that lost its poison, or 0.
uintptr_t damaged_poison(uintptr_t user, size_t n) {
  if (g_policy.uaf_check == UafCheck::Full) return poison_first_damaged(user, n, free_fill_byte());
  // Zeroed by zero_words (release_checked): whole words.
  if (g_policy.poison == PoisonMode::Zero) return first_nonzero_words_bounded(user, n, kBoundedCheckBytes);
  return poison_first_damaged_bounded(user, n, free_fill_byte(), kBoundedCheckBytes);
}

// The slack canary after the request: hardened's bounded form is two
// inline word stores (end, a slot or window end, is 8-aligned).
void fill_slack(uintptr_t user, uintptr_t from, uintptr_t end) {
  if (from >= end) return;
  if (g_policy.bounded_slack) g_canary.fill_words(user, from, end, g_policy.canary_zero_first);
  else g_canary.fill(user, from, end, g_policy.canary_zero_first);
}

}  // namespace

Policy make_policy(const Options& o) {
  Policy p;
  // A right redzone is slack by another name: it is checked with it.
  p.check_slack = o.check_slack != 0 || o.redzone != 0;
  // Debug and fuzz check every byte of slack; elsewhere a bounded prefix
  // keeps the cost independent of the size class's rounding.
  p.bounded_slack = !(o.mode == Mode::Debug || o.mode == Mode::Fuzz);
  p.canary_zero_first = p.bounded_slack;
  p.redzone = uint32_t(o.redzone);
  p.poison = PoisonMode(o.poison);
  // Without poison there is nothing to compare a freed block against.
  p.uaf_check = p.poison == PoisonMode::None ? UafCheck::None : UafCheck(o.uaf_check);
  p.mismatch = o.alloc_dealloc_mismatch != 0;
  p.type_mismatch = o.new_delete_type_mismatch != 0;
  p.scrub_large = p.poison != PoisonMode::None;
  p.quarantine_bytes = size_t(o.quarantine_size_mb) << 20;
  const bool debugging = o.mode == Mode::Debug || o.mode == Mode::Fuzz;
  p.record_stacks = debugging && o.malloc_context_size != 0;
  p.guard_all = debugging && GuardLevel(o.guard) == GuardLevel::All && o.guard_pool_mb != 0;
  p.sample_rate = o.guard_pool_mb != 0 ? uint32_t(o.sample_rate) : 0;
  p.checked = p.record_stacks || p.guard_all || p.sample_rate != 0 || p.check_slack || p.redzone != 0 || p.poison != PoisonMode::None || p.quarantine_bytes != 0 ||
              p.mismatch || p.type_mismatch;
  return p;
}

// Runs inside init, before the first block exists: every key and the
// policy are set, then sealed.
void Allocator::configure_hardening() {
  // From now on the lower layers' fatal errors get the full report.
  set_fatal_hook([](ErrorKind kind, uintptr_t address, const MessageBuilder& detail) {
    report_block_fatal(kind, address, BlockFacts{}, detail);
  });
  const Options& o = options();
  Policy policy = make_policy(o);
  // seed=0: layout from the OS; otherwise every layout choice derives from
  // it, so a fuzzing crash reproduces. Keys always come from the OS.
  uint64_t seed = o.seed != 0 ? uint64_t(o.seed) : pal::Pal::entropy64();
  GuardLevel guard = GuardLevel(o.guard);
  SlabConfig slab_config;
  slab_config.randomize = o.randomize != 0;
  slab_config.guards = guard == GuardLevel::Slabs;
  slab_config.seed = mix_seed(seed, 1);
  slabs_.configure(slab_config);
  LargeConfig large_config;
  large_config.guards = guard != GuardLevel::None;
  large_config.place_at_end = policy.check_slack;
  large_config.randomize = o.randomize != 0;
  large_config.seed = mix_seed(seed, 2);
  large_.configure(large_config);
  quarantine_.init(policy.quarantine_bytes, mix_seed(seed, 3), pal::Pal::entropy64(), &recycle_hook);
  // Without the sparse tables (strict overcommit) reports lack small blocks'
  // stacks; nothing else changes.
  if (policy.record_stacks && !g_block_traces.init(slabs_)) policy.record_stacks = false;
  // The pool's address space is reserved only when something uses it; if
  // the OS refuses, blocks come from the ordinary heap.
  if ((policy.guard_all || policy.sample_rate != 0) &&
      !guarded_.init(size_t(o.guard_pool_mb) << 20, o.guard_below != 0, mix_seed(seed, 4))) {
    policy.guard_all = false;
    policy.sample_rate = 0;
  }
  if (o.seed != 0) policy.sample_seed = mix_seed(seed, 5);

  g_header_codec_page.value.set_key(pal::Pal::entropy64());
  g_bin_codec_page.value.set_key(pal::Pal::entropy64());
  g_canary_page.value.set_key(pal::Pal::entropy64());
  g_policy_page.value = policy;
  g_header_codec_page.seal();
  g_bin_codec_page.seal();
  g_canary_page.seal();
  g_policy_page.seal();
}

void* Allocator::allocate_checked(size_t n, size_t align, Origin origin, bool zero) {
  if (HEAPGUARD_UNLIKELY(g_policy.guard_all || g_policy.sample_rate != 0) && wants_guarded(n, align)) {
    void* p = allocate_guarded(n, align, origin, zero);
    if (p != nullptr) return p;
  }
  const size_t rz = g_policy.redzone;
  // Slot bytes: left redzone (and alignment padding), the block, and at
  // least a redzone's worth of slack on the right.
  size_t need = 0;
  bool small = false;
  if (align <= kMinAlign) {
    small = n <= kMaxSmallSize - 2 * rz;
    need = n + 2 * rz;
  } else if (align <= pal::Pal::page_size()) {
    small = checked_add(n, 2 * rz + align - kMinAlign, &need) && need <= kMaxSmallSize;
  }
  if (HEAPGUARD_LIKELY(small)) {
    unsigned c = size_to_class(need);
    bool known_zero = false;
    uintptr_t block;
    Bin& bin = t_cache->bins[c];
    if (zero && need >= kZeroTrackedMin) {
      // Fresh slots of big calloc requests stay untouched (RSS).
      block = reinterpret_cast<uintptr_t>(slabs_.take_one(c, &known_zero));
    } else if (HEAPGUARD_LIKELY(bin.count != 0)) {
      block = pop_slot(bin, c);
      // The next allocation of this class reads the next slot's old header
      // and poison (verify_reused_slot); after the quarantine those lines
      // are cold, and a load miss stalls where the fast path's store would
      // not. Fetch them now, one allocation ahead (a prefetch never faults,
      // so the entry need not be validated yet).
      if (bin.count != 0) {
        uintptr_t next = g_bin_codec.decode(bin.slots[bin.count - 1], &bin.slots[bin.count - 1]);
        __builtin_prefetch(reinterpret_cast<const void*>(next - kHeaderSize), 1);
        __builtin_prefetch(reinterpret_cast<const void*>(next + kSizeClasses[c].usable - 16), 0);
      }
    } else {
      block = take_slot(c);
    }
    if (HEAPGUARD_LIKELY(block != 0)) {
      size_t offset = align <= kMinAlign ? rz : align_up(block + rz, align) - block;
      return finish_small_checked(block, c, offset, n, origin, zero, known_zero);
    }
    // The class region is full (tight RLIMIT_AS): the large heap serves it.
  }
  void* p = large_.allocate(n, align < kMinAlign ? kMinAlign : align, zero, origin);
  if (p == nullptr) {
    pal::set_errno(ENOMEM);
    return nullptr;
  }
  return finish_large_checked(p, n, zero);
}

void* Allocator::finish_small_checked(uintptr_t block, unsigned c, size_t offset, size_t n, Origin origin, bool zero,
                                      bool known_zero) {
  const SizeClass& sc = kSizeClasses[c];
  // A slot that held a block still carries that block's header (fresh and
  // purged slots read as zero).
  uint64_t old = HeaderCodec::load(block);
  if (old != 0) verify_reused_slot(block, c, old);
  const uintptr_t user = block + offset;
  const size_t usable = sc.usable - offset;
  ChunkHeader h;
  h.class_id = c;
  h.state = ChunkState::Allocated;
  h.origin = origin;
  h.unused_bytes = uint32_t(usable - n);
  h.alias_offset16 = uint32_t(offset / 16);
  HeaderCodec::store(block, g_header_codec.pack(h, block - kHeaderSize));
  if (g_policy.record_stacks) g_block_traces.set_allocated(block, c, capture_trace());
  if (offset != 0) g_canary.fill(user, block, user, false);
  if (g_policy.check_slack) fill_slack(user, user + n, user + usable);
  if (zero) {
    if (!known_zero) memset(reinterpret_cast<void*>(user), 0, n);
  } else if (g_policy.poison == PoisonMode::Pattern) {
    poison_fill(user, n, kAllocFill);
  }
  return reinterpret_cast<void*>(user);
}

void* Allocator::finish_large_checked(void* p, size_t n, bool zero) {
  uintptr_t user = reinterpret_cast<uintptr_t>(p);
  LargeBlock b;
  if (!large_.lookup(user, &b)) return p;
  ResolvedBlock r;
  r.user = r.block = user;
  r.class_id = kLargeClass;
  r.usable = LargeHeap::usable_size(b);
  r.requested = n;
  if (g_policy.record_stacks) g_block_traces.set_allocated(user, kLargeClass, capture_trace());
  write_canaries(r);
  if (!zero && g_policy.poison == PoisonMode::Pattern) poison_fill(user, n, kAllocFill);
  return p;
}

void Allocator::write_canaries(const ResolvedBlock& r) {
  if (r.user > r.block) g_canary.fill(r.user, r.block, r.user, false);
  if (g_policy.check_slack) fill_slack(r.user, r.user + r.requested, r.user + r.usable);
}

void Allocator::verify_canaries(const ResolvedBlock& r, ApiCall call) {
  if (r.user > r.block) {
    uintptr_t bad = g_canary.first_damaged(r.user, r.block, r.user, false);
    if (bad != 0) report_overflow(bad, r, call);
  }
  if (!g_policy.check_slack) return;
  uintptr_t from = r.user + r.requested;
  uintptr_t end = r.user + r.usable;
  if (from >= end) return;
  uintptr_t bad = g_policy.bounded_slack ? g_canary.first_damaged_words(r.user, from, end, g_policy.canary_zero_first)
                                         : g_canary.first_damaged(r.user, from, end, g_policy.canary_zero_first);
  if (bad != 0) report_overflow(bad, r, call);
}

void Allocator::verify_release(const ResolvedBlock& r, ApiCall call, size_t sized) {
  if (g_policy.mismatch && call != ApiCall::UsableSize && r.header.origin != expected_origin(call))
    report_mismatch(r, call);
  if (g_policy.type_mismatch && sized != kUnsized && sized != r.requested) report_type_mismatch(r, call, sized);
  verify_canaries(r, call);
}

void Allocator::deallocate_checked(uintptr_t p, ApiCall call, size_t sized) {
  // The common case validated as the inline fast path does (slot by
  // arithmetic, header by checksum); anything else goes through resolve(),
  // which reports.
  const size_t rz = g_policy.redzone;
  if (HEAPGUARD_LIKELY(slabs_.contains(p))) {
    unsigned c = slabs_.class_of(p);
    uintptr_t block = p - rz;
    ChunkHeader h;
    if (HEAPGUARD_LIKELY((rz == 0 || (slabs_.contains(block) && slabs_.class_of(block) == c)) &&
                         live_slot_header(block, c, &h) && uintptr_t(h.alias_offset16) * 16 == rz)) {
      size_t usable = kSizeClasses[c].usable - rz;
      ResolvedBlock r{p, block, c, h, usable, usable - h.unused_bytes};
      verify_release(r, call, sized);
      release_checked(r);
      return;
    }
  }
  if (HEAPGUARD_UNLIKELY(guarded_.contains(p))) return deallocate_guarded(p, call, sized);
  ResolvedBlock r;
  if (!resolve(p, &r, call, true)) return;
  verify_release(r, call, sized);
  release_checked(r);
}

void Allocator::release_checked(const ResolvedBlock& r) {
  const Policy& policy = g_policy;
  ThreadCache* tc = t_cache;
  if (HEAPGUARD_UNLIKELY(tc->bins[1].cap == 0)) tc = ensure_cache();
  QuarantineBatch* batch = tc != nullptr ? &tc->quarantine : nullptr;
  if (policy.record_stacks) g_block_traces.set_freed(r.block, r.class_id, capture_trace());
  if (r.class_id == kLargeClass) {
    // A quarantined large block is made inaccessible, so a read after free
    // faults; blocks too big for the budget skip it.
    if (policy.quarantine_bytes != 0 && r.usable <= policy.quarantine_bytes / 4 && large_.quarantine(r.user)) {
      quarantine_.push(batch, r.user, r.usable);
      return;
    }
    large_.deallocate(r.user, policy.scrub_large);
    return;
  }
  if (policy.poison == PoisonMode::Zero) zero_words(r.user, r.requested);
  else if (policy.poison == PoisonMode::Pattern) poison_fill(r.user, r.requested, kFreeFill);
  ChunkHeader h = r.header;
  if (policy.quarantine_bytes != 0) {
    h.state = ChunkState::Quarantined;
    HeaderCodec::store(r.block, g_header_codec.pack(h, r.block - kHeaderSize));
    count_quarantined(r.class_id, 1);
    quarantine_.push(batch, r.user, kSizeClasses[r.class_id].slot_size);
    return;
  }
  h.state = ChunkState::Free;
  HeaderCodec::store(r.block, g_header_codec.pack(h, r.block - kHeaderSize));
  free_small(r.block, r.class_id);
}

// A block leaving the quarantine goes back to a cache without being read:
// its header keeps saying Quarantined until the slot is handed out again,
// which is where it is checked (finish_small_checked). Only blocks drained
// by malloc_trim() are checked here, so a test can force the check.
void Allocator::recycle(uintptr_t user) {
  if (!slabs_.contains(user)) {
    large_.deallocate(user, g_policy.scrub_large);
    return;
  }
  unsigned c = slabs_.class_of(user);
  uintptr_t block = slabs_.block_containing(user, c);
  if (block == 0) report_quarantine_header(user, user - kHeaderSize);
  if (t_verify_recycled) {
    uint64_t word = HeaderCodec::load(block);
    ChunkHeader h;
    if (!g_header_codec.unpack(word, block - kHeaderSize, &h) || h.state != ChunkState::Quarantined ||
        block + uintptr_t(h.alias_offset16) * 16 != user)
      report_quarantine_header(user, block - kHeaderSize);
    verify_reused_slot(block, c, word);
  }
  count_quarantined(c, -1);
  free_small(block, c);
}

// The slot's header still describes its last block: Free or Quarantined
// means that block was freed and poisoned. Allocated means the slot is
// being handed out while its block is live: a double free got past the
// header (one replayed by an attacker) and the slot is in a cache twice.
void Allocator::verify_reused_slot(uintptr_t block, unsigned c, uint64_t word) {
  ChunkHeader old;
  if (!g_header_codec.unpack(word, block - kHeaderSize, &old) || old.class_id != c || old.aligned_alias)
    report_bad_header(block, block - kHeaderSize);
  if (old.state == ChunkState::Allocated) report_slot_reused_live(block, c);
  if (g_policy.uaf_check == UafCheck::None || old.state == ChunkState::Unused) return;
  uintptr_t user = block + uintptr_t(old.alias_offset16) * 16;
  size_t usable = block + kSizeClasses[c].usable - user;
  if (old.unused_bytes > usable) report_bad_header(block, block - kHeaderSize);
  size_t n = usable - old.unused_bytes;
  uintptr_t bad = damaged_poison(user, n);
  if (bad != 0) report_use_after_free(bad, BlockFacts{user, n, g_block_traces.get(block, c)}, !t_verify_recycled);
}

void Allocator::drain_quarantine_checked() {
  if (!quarantine_.enabled()) return;
  t_verify_recycled = true;
  ThreadCache* tc = t_cache;
  if (tc != &g_unset_cache && tc != &g_torn_down_cache) quarantine_.flush(&tc->quarantine);
  quarantine_.drain();
  t_verify_recycled = false;
}

void Allocator::count_quarantined(unsigned c, int delta) {
  ThreadCache* tc = t_cache;
  if (tc != &g_unset_cache && tc != &g_torn_down_cache) {
    __atomic_store_n(&tc->quarantined[c], tc->quarantined[c] + delta, __ATOMIC_RELAXED);
    return;
  }
  quarantined_elsewhere_[c].fetch_add(delta, std::memory_order_relaxed);
}

void Allocator::retire_quarantine_counts(ThreadCache* tc) {
  for (unsigned c = 1; c < kNumClasses; ++c) {
    if (tc->quarantined[c] != 0) quarantined_elsewhere_[c].fetch_add(tc->quarantined[c], std::memory_order_relaxed);
    tc->quarantined[c] = 0;
  }
}

void* Allocator::reallocate_checked(uintptr_t p, size_t n) {
  if (HEAPGUARD_UNLIKELY(guarded_.contains(p))) return reallocate_guarded(p, n);
  ResolvedBlock r;
  if (!resolve(p, &r, ApiCall::Realloc, true)) return nullptr;
  verify_release(r, ApiCall::Realloc, kUnsized);
  const size_t rz = g_policy.redzone;
  if (r.class_id != kLargeClass) {
    size_t offset = r.user - r.block;
    size_t need;
    // In place while the slot still is this size's class: growth keeps
    // the redzone, and a shrink does not strand a big slot.
    if (offset == rz && checked_add(n, 2 * rz, &need) && need <= kMaxSmallSize && size_to_class(need) == r.class_id) {
      ChunkHeader h = r.header;
      h.unused_bytes = uint32_t(r.usable - n);
      HeaderCodec::store(r.block, g_header_codec.pack(h, r.block - kHeaderSize));
      if (n > r.requested && g_policy.poison == PoisonMode::Pattern)
        poison_fill(r.user + r.requested, n - r.requested, kAllocFill);
      // The resized block is a new allocation as far as reports go.
      if (g_policy.record_stacks) g_block_traces.set_allocated(r.block, r.class_id, capture_trace());
      ResolvedBlock grown = r;
      grown.header = h;
      grown.requested = n;
      write_canaries(grown);
      return reinterpret_cast<void*>(p);
    }
  } else if (n > kMaxSmallSize) {
    // Only a resize that keeps the bytes where they are (or moves the
    // pages with them); a copy goes through the quarantine like any free.
    void* q = large_.resize_without_copy(r.block, n);
    if (q != nullptr) {
      if (n > r.requested && g_policy.poison == PoisonMode::Pattern)
        poison_fill(reinterpret_cast<uintptr_t>(q) + r.requested, n - r.requested, kAllocFill);
      return finish_large_checked(q, n, true);
    }
  }
  void* q = allocate_checked(n, kMinAlign, Origin::Malloc, false);
  if (q == nullptr) return nullptr;
  memcpy(q, reinterpret_cast<void*>(p), r.requested < n ? r.requested : n);
  release_checked(r);
  return q;
}

}  // namespace heapguard
