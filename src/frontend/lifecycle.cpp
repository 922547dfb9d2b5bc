// SPDX-License-Identifier: Apache-2.0
// The allocator's life: process init, per-thread cache setup and teardown,
// fork. Init happens inside the first malloc, which may come from the
// dynamic loader, a constructor or a new thread, so it takes no lock that
// malloc itself could need, calls nothing that may allocate, and publishes
// "ready" only when the heap is usable.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "frontend/allocator.h"
#include "frontend/block_reports.h"
#include "frontend/fault_handler.h"
#include "frontend/leak_check.h"
#include "frontend/stats_format.h"
#include "report/report.h"

namespace heapguard {

constinit ThreadCache g_unset_cache;
constinit ThreadCache g_torn_down_cache;
constinit thread_local ThreadCache* t_cache = &g_unset_cache;
// Set while this thread builds its cache: pthread_setspecific may call
// calloc, and that nested call must not try to build a second cache.
constinit thread_local bool t_in_cache_setup = false;
constinit Allocator g_allocator;
constinit Sealed<HeaderCodec> g_header_codec_page{HeaderCodec{0}};

namespace {

constinit bool g_init_failed_reported = false;

// Destructor calls before teardown; see thread_exit_hook.
constexpr unsigned kDestructorRoundsArmed = 2;
static_assert(kDestructorRoundsArmed < pal::kThreadKeyRounds);

void thread_exit_hook(void* value) {
  auto* tc = static_cast<ThreadCache*>(value);
  if (tc == nullptr) return;
  // Stay armed for one more round, so that the other keys' destructors of
  // this round (ours has the lowest key and runs first), which often free,
  // still find the cache; later frees and mallocs go to the central heap
  // without a cache. Not until the last round: a cache first created inside
  // another key's destructor would never see it and would leak.
  if (++tc->destructor_rounds < kDestructorRoundsArmed) {
    pal::Pal::set_thread_key(tc->thread_key, tc);
    return;
  }
  g_allocator.on_thread_exit(tc);
}

}  // namespace

size_t ThreadCache::storage_slots() {
  size_t total = 0;
  for (unsigned c = 1; c < kNumClasses; ++c) total += kSizeClasses[c].cache_cap;
  return total;
}

bool Allocator::init_slow() {
  {
    pal::LockGuard guard(init_lock_);
    if (state_.load(std::memory_order_acquire) != kReady) {
      init_options();
      if (!slabs_.init()) {
        if (!g_init_failed_reported) {
          g_init_failed_reported = true;
          MessageBuilder m;
          m.str("cannot reserve address space for the heap; every allocation will fail");
          print_line(m);
        }
        return false;
      }
      configure_hardening();
      configure_reporting();
      if (!pal::Pal::create_thread_key(&thread_exit_hook, &thread_key_)) {
        MessageBuilder m;
        m.str("no pthread key left: thread caches will not be flushed at thread exit");
        print_line(m);
        thread_key_ = ~0u;
      }
      state_.store(kReady, std::memory_order_release);
      if (options().verbosity >= 1) {
        MessageBuilder m;
        m.str("version " HEAPGUARD_VERSION_STRING ", mode ").str(mode_name(options().mode))
            .str(", verbosity=").dec(uint64_t(options().verbosity))
            .str(" print_stats=").dec(uint64_t(options().print_stats))
            .str(" retain_kb=").dec(uint64_t(retain_kb()))
            .str(" quarantine_size_mb=").dec(uint64_t(options().quarantine_size_mb))
            .str(" redzone=").dec(uint64_t(options().redzone))
            .str(", slab arena ").dec(uint64_t(slabs_.region_size() >> 20)).str(" MiB per class");
        print_line(m);
      }
    }
  }
  return true;
}

// Inside init: what the reporter needs before the first error. Nothing
// here allocates (the suppressions file is read with raw system calls).
void Allocator::configure_reporting() {
  set_thread_number_source(&current_thread_number);
  pal::set_unwinder(options().fast_unwind != 0 ? 1 : 0);
  load_suppressions();
}

namespace {

// At exit, after the program's own atexit handlers and static destructors
// (registered later, so run earlier): the leak check, then the exit status
// that halt_on_error=0 owes the errors it let pass. stdio is flushed first
// because _exit would drop the program's buffered output.
void at_exit_checks() {
  run_leak_check();  // exits if it reports leaks (detect_leaks=1, debug mode)
  if (errors_reported() != 0) {
    fflush(nullptr);
    pal::Pal::exit_process(int(options().exitcode));
  }
}

}  // namespace

// Runs from the library constructor, after libc is fully initialised:
// pthread_atfork and atexit may allocate, which is fine now that the heap is
// ready, and the unwinder's lazy set-up happens here rather than inside the
// first malloc that records a stack.
void Allocator::after_init() {
  if (!ensure_ready() || post_init_done_.exchange(true)) return;
  pal::Pal::register_atfork([] { g_allocator.before_fork(); }, [] { g_allocator.after_fork_parent(); },
                            [] { g_allocator.after_fork_child(); });
  // Every mode: any report shows the failing call's stack.
  pal::warm_up_unwinder();
  FaultContext faults;
  faults.pool = &guarded_;
  faults.large = &large_;
  faults.slabs = &slabs_;
  faults.traces = &g_block_traces;
  if (!install_fault_handler(faults)) {
    MessageBuilder m;
    m.str("cannot install the SIGSEGV/SIGBUS handler: guard-page faults will not be reported");
    print_line(m);
  }
  set_leak_guarded_enumerator([](LiveBlockFn fn, void* ctx) { g_allocator.guarded_pool().for_each_live_block(fn, ctx); });
  std::atexit(&at_exit_checks);
}

ThreadCache* Allocator::new_cache() {
  const size_t bytes = sizeof(ThreadCache) + ThreadCache::storage_slots() * sizeof(void*);
  ThreadCache* tc;
  {
    pal::LockGuard guard(registry_lock_);
    if (!spare_caches_.empty()) {
      ListNode* n = spare_caches_.front();
      spare_caches_.remove(n);
      tc = ThreadCache::from_node(n);
    } else {
      tc = static_cast<ThreadCache*>(arena_.allocate(bytes, 64));
      if (tc == nullptr) return nullptr;
    }
    uintptr_t* storage = reinterpret_cast<uintptr_t*>(tc + 1);
    for (unsigned c = 1; c < kNumClasses; ++c) {
      tc->bins[c].slots = storage;
      tc->bins[c].count = 0;
      tc->bins[c].cap = kSizeClasses[c].cache_cap;
      storage += kSizeClasses[c].cache_cap;
    }
    tc->quarantine = QuarantineBatch{};
    for (int32_t& q : tc->quarantined) q = 0;
    tc->destructor_rounds = 0;
    tc->thread_key = thread_key_;
    tc->tid = pal::Pal::thread_id();
    registry_.push_front(&tc->node);
    ++live_caches_;
  }
  return tc;
}

ThreadCache* Allocator::ensure_cache() {
  ThreadCache* tc = t_cache;
  if (tc != &g_unset_cache) return tc == &g_torn_down_cache ? nullptr : tc;
  if (t_in_cache_setup || !ensure_ready()) return nullptr;
  t_in_cache_setup = true;
  tc = new_cache();
  if (tc != nullptr) {
    t_cache = tc;
    if (thread_key_ != ~0u) pal::Pal::set_thread_key(thread_key_, tc);
    // sigaltstack is per thread: a guard-page fault on a thread whose stack
    // is exhausted still gets its report.
    if (pal::fault_signals_installed()) pal::ensure_alt_stack();
    // libunwind's first capture on a thread allocates its TLS block: let
    // that happen here, holding no allocator lock, and not inside a report
    // raised under a slab or quarantine lock, where it would deadlock.
    // Fast mode records no stacks and skips the cost.
    if (options().mode != Mode::Fast) {
      uintptr_t pc;
      (void)pal::capture_stack_slow(&pc, 1);
    }
  }
  t_in_cache_setup = false;
  return tc;
}

void Allocator::flush_all(ThreadCache* tc) {
  for (unsigned c = 1; c < kNumClasses; ++c) {
    if (tc->bins[c].count != 0) flush_bin(c, tc->bins[c], 0);
  }
}

void Allocator::on_thread_exit(ThreadCache* tc) {
  // From here on this thread allocates without a cache (see allocate_slow).
  t_cache = &g_torn_down_cache;
  pal::release_alt_stack();
  quarantine_.flush(&tc->quarantine);
  flush_all(tc);
  pal::LockGuard guard(registry_lock_);
  retire_quarantine_counts(tc);
  registry_.remove(&tc->node);
  spare_caches_.push_front(&tc->node);
  --live_caches_;
}

void Allocator::before_fork() {
  // A thread inside libunwind may be allocating: let it finish first.
  pal::unwinder_fork_prepare();
  init_lock_.lock();
  quarantine_.lock_all();
  registry_lock_.lock();
  arena_.lock_for_fork().lock();
  slabs_.lock_all();
  large_.lock_all();
  guarded_.lock_all();
  // Our prepare handler was registered after those of libraries initialised
  // before us, so theirs run after it, and may allocate: this thread owns
  // every lock until the parent or child handler runs.
  pal::t_owns_all_locks = true;
}

void Allocator::after_fork_parent() {
  pal::t_owns_all_locks = false;
  guarded_.unlock_all();
  large_.unlock_all();
  slabs_.unlock_all();
  arena_.lock_for_fork().unlock();
  registry_lock_.unlock();
  quarantine_.unlock_all();
  init_lock_.unlock();
  pal::unwinder_fork_parent();
}

void Allocator::after_fork_child() {
  pal::t_owns_all_locks = false;
  report_after_fork_child();
  guarded_.reset_after_fork();
  large_.reset_locks_after_fork();
  slabs_.reset_locks_after_fork();
  // Unless the layout is seeded (fuzz), a child must not replay its
  // parent's slot choices: each forked server worker gets its own layout.
  if (options().seed == 0) slabs_.reseed_after_fork(0);
  arena_.lock_for_fork().reset_after_fork();
  registry_lock_.reset_after_fork();
  quarantine_.reset_locks_after_fork();
  init_lock_.reset_after_fork();
  // Only the forking thread survives: give the other threads' cached slots
  // back to the heap instead of leaking them in every child.
  ListNode* n = registry_.front();
  while (n != nullptr) {
    ListNode* next = n->next;
    ThreadCache* tc = ThreadCache::from_node(n);
    if (tc != t_cache) {
      flush_all(tc);
      retire_quarantine_counts(tc);
      registry_.remove(n);
      spare_caches_.push_front(n);
      --live_caches_;
    }
    n = next;
  }
  pal::unwinder_fork_child();
}

namespace {

// The constructor and destructor live in this object, which every use of
// the allocator links in, rather than with the heapguard_* extras: a program
// that links libheapguard.a without --whole-archive still gets the fork
// handlers and exit statistics.

// Where the exit statistics go: a duplicate of stderr taken at start-up,
// because some programs (coreutils) close stderr before they exit.
constinit int g_exit_report_fd = 2;

bool wants_exit_statistics() {
  const Options& o = options();
  return o.print_stats != 0 || o.verbosity >= 2;
}

__attribute__((constructor)) void heapguard_library_init() {
  g_allocator.after_init();
  if (wants_exit_statistics()) {
    int fd = pal::Pal::duplicate_for_exit(2);
    if (fd >= 0) g_exit_report_fd = fd;
  }
}

__attribute__((destructor)) void heapguard_library_fini() {
  if (!wants_exit_statistics()) return;
  MessageBuilder m;
  m.str("heap statistics at exit (mode ").str(mode_name(options().mode)).ch(')');
  print_line(m, g_exit_report_fd);
  format_malloc_stats(
      g_allocator.figures(), [](void*, const char* s, size_t n) { pal::Pal::write_all(g_exit_report_fd, s, n); },
      nullptr);
}

}  // namespace
}  // namespace heapguard
