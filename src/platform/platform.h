// SPDX-License-Identifier: Apache-2.0
// platform: the only layer that makes system calls or uses libc. Everything
// above talks to the OS through heapguard::pal, whose contract is the IsPal
// concept below; src/platform/linux.cpp is the one implementation.
// Contract for every function: never calls malloc, is safe before the
// allocator is initialised, and preserves errno (callers decide what errno the
// program sees).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "platform/lock.h"

namespace heapguard::pal {

using AtforkFn = void (*)();
// Rounds of thread-key destructors at thread exit (PTHREAD_DESTRUCTOR_ITERATIONS).
inline constexpr unsigned kThreadKeyRounds = 4;
using ThreadKeyDestructor = void (*)(void*);

// How a range was made into guard pages (see Linux::try_guard).
enum class GuardKind : uint8_t {
  None,     // no guard: markers refused and the split budget spent, or guards off
  Marker,   // MADV_GUARD_INSTALL page-table markers
  Protect,  // mprotect(PROT_NONE): one more kernel mapping per split
};

template <typename P>
concept IsPal = requires(void* p, size_t n, const char* s, int fd, void (*dtor)(void*)) {
  // Address space: reserve inaccessible, then commit read-write on demand.
  { P::reserve(n) } -> std::same_as<void*>;          // nullptr on failure
  { P::commit(p, n) } -> std::same_as<bool>;
  { P::map(n) } -> std::same_as<void*>;              // read-write, zeroed; nullptr on failure
  { P::unmap(p, n) } -> std::same_as<void>;
  { P::purge(p, n) } -> std::same_as<bool>;          // true: contents now zero, memory returned
  { P::remap(p, n, n) } -> std::same_as<void*>;      // may move; nullptr on failure
  { P::name_region(p, n, s) } -> std::same_as<void>;
  { P::entropy64() } -> std::same_as<uint64_t>;
  { P::thread_id() } -> std::same_as<uint32_t>;
  { P::process_id() } -> std::same_as<int>;
  { P::write_all(fd, s, n) } -> std::same_as<void>;
  { P::env_lookup(s) } -> std::same_as<const char*>;
  { P::is_secure() } -> std::same_as<bool>;
  { P::page_size() } -> std::same_as<size_t>;
};

struct Linux {
  // Reserves n bytes of address space that fault on access. Does not count
  // against the commit limit, so large reservations are cheap.
  static void* reserve(size_t n);
  // Makes [p, p+n) of a reservation readable and writable (zero-filled).
  static bool commit(void* p, size_t n);
  static void* map(size_t n);
  static void unmap(void* p, size_t n);
  // False when the pages could not be dropped (mlocked): contents remain.
  static bool purge(void* p, size_t n);
  static void* remap(void* p, size_t old_size, size_t new_size);
  // Page-granular protection switch for sealed data (the Options page).
  static void set_read_only(void* p, size_t n, bool read_only);
  // Makes committed pages inaccessible (accessible = false) or readable and
  // writable again, keeping their contents: quarantined large blocks.
  static bool protect(void* p, size_t n, bool accessible);
  // Guard pages: [p, p+n) (page-aligned, mapped) made to fault on any
  // access, so a linear overflow stops at the first byte past a block.
  // MADV_GUARD_INSTALL where the kernel has it (Linux 6.13+: page-table
  // markers, no new mapping, kept across mremap, fork and MADV_DONTNEED),
  // else mprotect(PROT_NONE), which splits the mapping. Splits are charged
  // to a budget of half of vm.max_map_count; past it nothing is installed,
  // one warning is printed per process, and the caller goes on without a
  // guard (guards are thinned; allocations never fail for them). Either way
  // the range's contents are discarded: it reads as zero once accessible.
  //
  // try_guard picks the mechanism and reports it; `splits` is how many
  // mappings mprotect may add (1 for a range at an end of its mapping, 2
  // inside it), charged until guard_uncharge(splits).
  static GuardKind try_guard(void* p, size_t n, unsigned splits);
  // try_guard(p, n, 2) != None.
  static bool guard_install(void* p, size_t n);
  // Applies a mechanism already chosen for this mapping, uncharged: for a
  // range next to an existing guard of that kind (mprotect merges rather
  // than splits). None only discards the contents. True: the contents are
  // gone (the range reads as zero once accessible), guarded as far as the
  // kind goes (markers are refused on mlocked ranges). False: nothing was
  // discarded and the range is still accessible, for the caller to clear.
  static bool guard_set(void* p, size_t n, GuardKind kind);
  // Makes guard pages of that kind accessible again (they read as zero).
  static bool guard_clear(void* p, size_t n, GuardKind kind);
  // Undoes guard_install when the mechanism is not known; the charge stays.
  static bool guard_remove(void* p, size_t n);
  // Returns splits charged by try_guard (its mapping was unmapped).
  static void guard_uncharge(unsigned splits);
  // Whether try_guard uses MADV_GUARD_INSTALL (probed once).
  static bool has_lightweight_guards();
  // Guard splits charged so far and the budget (tests and statistics).
  static size_t guard_splits();
  static size_t guard_split_budget();
  // Test switches: a smaller budget (0 restores the real one; also re-arms
  // the warning), and the mprotect fallback forced on kernels with markers.
  static void set_guard_split_budget_for_testing(size_t budget);
  static void disable_guard_markers_for_testing(bool disabled);
  // Names an anonymous mapping in /proc/PID/maps where the kernel allows it.
  static void name_region(void* p, size_t n, const char* name);
  // From getrandom(); falls back to a mix of clocks and addresses only where
  // the syscall is unavailable (seccomp sandboxes), never blocking.
  static uint64_t entropy64();
  static uint32_t thread_id();
  static int process_id();
  static void write_all(int fd, const char* s, size_t n);
  // A close-on-exec duplicate of fd at a high number, for output written at
  // exit: programs such as coreutils close stderr before exiting. -1 on error.
  static int duplicate_for_exit(int fd);
  // Walks environ: getenv is not guaranteed malloc-free or ready during preload.
  static const char* env_lookup(const char* name);
  // True in setuid/setgid and other AT_SECURE processes.
  static bool is_secure();
  static size_t page_size();
  static void futex_wait(uint32_t* word, uint32_t expected);
  static void futex_wake_one(uint32_t* word);
  [[noreturn]] static void abort_process();
  // _exit(code): no atexit handlers, no stdio flush (the heap may be broken).
  [[noreturn]] static void exit_process(int code);
  // Thread-exit hook (pthread key) and fork hooks. register_atfork may
  // allocate, so it is called only once the allocator is ready.
  static bool create_thread_key(ThreadKeyDestructor dtor, unsigned* key);
  static void set_thread_key(unsigned key, void* value);
  static void register_atfork(AtforkFn prepare, AtforkFn parent, AtforkFn child);
  // Writes to a stdio stream (malloc_info's FILE*), opaque above this layer.
  static void write_stream(void* stream, const char* s, size_t n);
};

static_assert(IsPal<Linux>);
using Pal = Linux;

// Saves errno on construction and restores it on destruction: free() and
// internal bookkeeping must not change what the program sees in errno.
class ScopedErrno {
 public:
  ScopedErrno();
  ~ScopedErrno();
  ScopedErrno(const ScopedErrno&) = delete;
  ScopedErrno& operator=(const ScopedErrno&) = delete;

 private:
  int saved_;
};

void set_errno(int value);
int get_errno();

}  // namespace heapguard::pal

// The rest of the platform layer, one concept per file.
#include "platform/files.h"
#include "platform/process.h"
#include "platform/signals.h"
#include "platform/threads.h"
#include "platform/unwind.h"
