// SPDX-License-Identifier: Apache-2.0
// The guarded pool's side of the checked paths: which allocations go there
// (every small one with guard=all in debug and fuzz; 1 in sample_rate in
// hardened, GWP-ASan style), and the checks a pool block gets when it
// comes back. A pool block is its own evidence: overflows and reads after
// free fault (fault_handler.cpp reports them), and its metadata, with both
// stacks, lives out of line in the pool.
#include <atomic>
#include <cstring>

#include "check/check.h"
#include "frontend/allocator.h"
#include "frontend/block_reports.h"

namespace heapguard {
namespace {

// Allocations left until the next sampled one; 0 = not drawn yet.
constinit thread_local uint32_t t_sample_countdown = 0;
constinit thread_local Prng t_sample_prng{0};
// Threads in creation order, for seeded runs' per-thread sampling streams.
constinit std::atomic<uint64_t> g_sampling_threads{0};

uint64_t sampling_stream_seed() {
  if (g_policy.sample_seed == 0) return pal::Pal::entropy64();
  return mix_seed(g_policy.sample_seed, g_sampling_threads.fetch_add(1, std::memory_order_relaxed));
}

// Whether this allocation is the sampled one: a geometric-like draw with
// mean sample_rate (uniform in [1, 2*rate - 1]), so a program cannot line
// up its interesting allocation with a fixed period.
bool take_sample(uint32_t rate) {
  if (rate == 1) return true;
  uint32_t left = t_sample_countdown;
  if (HEAPGUARD_LIKELY(left > 1)) {
    t_sample_countdown = left - 1;
    return false;
  }
  bool fresh = left == 0;
  if (fresh) t_sample_prng.reseed(sampling_stream_seed());
  t_sample_countdown = 1 + t_sample_prng.below(2 * rate - 1);
  // A thread's first draw only starts its countdown.
  return !fresh;
}

BlockFacts guarded_facts(const GuardedBlock& b) { return {b.user, b.requested, {b.allocated, b.freed}}; }

// A pointer into the pool that is no live block's: a second free, a
// pointer into a block, or one into a guard page or an unused slot.
HEAPGUARD_COLD void report_guarded_misuse(uintptr_t p, const GuardedBlock& b, bool freed_twice, ApiCall call) {
  MessageBuilder m;
  if (freed_twice) {
    m.str("the block is already free (or waiting in quarantine)\nthe pointer was passed to ").str(api_call_name(call))
        .str("()");
    report_block_error(ErrorKind::DoubleFree, p, guarded_facts(b), m, Recovery::Recoverable);
    return;
  }
  if (b.user != 0) {
    m.str("the pointer is not the start of the block\nthe pointer was passed to ").str(api_call_name(call)).str("()");
    report_block_error(ErrorKind::InvalidFree, p, guarded_facts(b), m, Recovery::Recoverable);
    return;
  }
  m.hex(p).str(" points into the guarded pool but not at a block\nthe pointer was passed to ").str(api_call_name(call))
      .str("()");
  report_block_error(ErrorKind::InvalidFree, p, BlockFacts{}, m, Recovery::Recoverable);
}

// The checks a live block gets before it is released: the API family and
// the size a sized release promises.
void verify_guarded_release(const GuardedBlock& b, ApiCall call, size_t sized) {
  if (g_policy.mismatch && call != ApiCall::UsableSize && b.origin != expected_origin(call)) {
    MessageBuilder m;
    m.str("allocated by ").str(origin_name(b.origin)).str(", released by ").str(release_name(call));
    report_block_error(ErrorKind::AllocDeallocMismatch, b.user, guarded_facts(b), m, Recovery::Recoverable);
  }
  if (g_policy.type_mismatch && sized != kUnsized && sized != b.requested) {
    MessageBuilder m;
    m.str("allocated with size ").dec(b.requested).str(", released by ").str(release_name(call)).str(" with size ")
        .dec(sized);
    report_block_error(ErrorKind::NewDeleteTypeMismatch, b.user, guarded_facts(b), m, Recovery::Recoverable);
  }
}

}  // namespace

// Only requests the pool can serve draw a sample, so the rate holds for
// the blocks that can be sampled.
bool Allocator::wants_guarded(size_t n, size_t align) {
  if (n > kMaxSmallSize || align > pal::Pal::page_size()) return false;
  if (g_policy.guard_all) return true;
  return g_policy.sample_rate != 0 && take_sample(g_policy.sample_rate);
}

void* Allocator::allocate_guarded(size_t n, size_t align, Origin origin, bool zero) {
  void* p = guarded_.allocate(n, align, origin, capture_trace());
  // Pool blocks start zeroed; debug and fuzz still want uninitialised
  // reads to show their pattern.
  if (p != nullptr && !zero && g_policy.poison == PoisonMode::Pattern) poison_fill(reinterpret_cast<uintptr_t>(p), n, kAllocFill);
  return p;
}

void Allocator::deallocate_guarded(uintptr_t p, ApiCall call, size_t sized) {
  GuardedBlock b;
  if (guarded_.find_live(p, &b)) verify_guarded_release(b, call, sized);
  uintptr_t bad = 0;
  switch (guarded_.deallocate(p, capture_trace(), &b, &bad)) {
    case GuardedPool::FreeResult::Ok: return;
    case GuardedPool::FreeResult::Overflow: {
      MessageBuilder m;
      m.str("the overwrite was found when the block was passed to ").str(api_call_name(call)).str("()");
      // The pool has just recorded this very free: the current stack says
      // it already, so no "freed by" heading (as for slab blocks).
      BlockFacts facts = guarded_facts(b);
      facts.history.freed = TraceRef{};
      report_block_error(ErrorKind::HeapBufferOverflow, bad, facts, m, Recovery::Recoverable);
      return;
    }
    case GuardedPool::FreeResult::DoubleFree: report_guarded_misuse(p, b, true, call); return;
    case GuardedPool::FreeResult::InvalidFree: report_guarded_misuse(p, b, false, call); return;
  }
}

void* Allocator::reallocate_guarded(uintptr_t p, size_t n) {
  GuardedBlock b;
  if (!guarded_.find_live(p, &b)) {
    report_not_live_guarded(p, ApiCall::Realloc);
    return nullptr;
  }
  void* q = allocate_checked(n, kMinAlign, Origin::Malloc, false);
  if (q == nullptr) return nullptr;
  memcpy(q, reinterpret_cast<void*>(p), b.requested < n ? b.requested : n);
  deallocate_guarded(p, ApiCall::Realloc, kUnsized);
  return q;
}

size_t Allocator::usable_size_guarded(uintptr_t p) {
  GuardedBlock b;
  if (guarded_.find_live(p, &b)) return b.requested;
  report_not_live_guarded(p, ApiCall::UsableSize);
  return 0;
}

// A pool pointer that is no live block's, outside free (which the pool's
// deallocate classifies): a freed block's own pointer is a double free.
void Allocator::report_not_live_guarded(uintptr_t p, ApiCall call) {
  GuardedBlock near;
  bool known = guarded_.lookup(p, &near) && near.user == p;
  report_guarded_misuse(p, known ? near : GuardedBlock{}, known && !near.live, call);
}

}  // namespace heapguard
