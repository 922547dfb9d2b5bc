// SPDX-License-Identifier: Apache-2.0
// All Linux-specific code: syscalls, environment, auxv, futexes, pthread
// hooks. Nothing here calls malloc; errno is preserved across every call.
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "platform/platform.h"

extern char** environ;

namespace heapguard::pal {

ScopedErrno::ScopedErrno() : saved_(errno) {}
ScopedErrno::~ScopedErrno() { errno = saved_; }
void set_errno(int value) { errno = value; }
int get_errno() { return errno; }

void* Linux::reserve(size_t n) {
  ScopedErrno keep;
  void* p = mmap(nullptr, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

bool Linux::commit(void* p, size_t n) {
  ScopedErrno keep;
  return mprotect(p, n, PROT_READ | PROT_WRITE) == 0;
}

void* Linux::map(size_t n) {
  ScopedErrno keep;
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void Linux::unmap(void* p, size_t n) {
  ScopedErrno keep;
  munmap(p, n);
}

bool Linux::purge(void* p, size_t n) {
  ScopedErrno keep;
  // MADV_DONTNEED, not MADV_FREE: the pages must read back as zero (calloc
  // relies on it) and RSS must drop now, not under memory pressure. It fails
  // on mlocked pages, which then keep their contents.
  return madvise(p, n, MADV_DONTNEED) == 0;
}

void* Linux::remap(void* p, size_t old_size, size_t new_size) {
  ScopedErrno keep;
  void* q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
  return q == MAP_FAILED ? nullptr : q;
}

void Linux::set_read_only(void* p, size_t n, bool read_only) {
  ScopedErrno keep;
  mprotect(p, n, read_only ? PROT_READ : PROT_READ | PROT_WRITE);
}

bool Linux::protect(void* p, size_t n, bool accessible) {
  ScopedErrno keep;
  return mprotect(p, n, accessible ? PROT_READ | PROT_WRITE : PROT_NONE) == 0;
}

namespace {
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif
// Whether the kernel has MADV_GUARD_INSTALL: 0 not probed yet, 1 yes, 2 no.
// Probed once on a scratch page, because a failure on a caller's range
// (EINVAL also means "mlocked") says nothing about the kernel.
constinit std::atomic<int> g_guard_markers{0};
constinit std::atomic<bool> g_guard_markers_disabled{false};  // test switch
constinit std::atomic<size_t> g_guard_splits{0};
constinit std::atomic<size_t> g_guard_budget{0};
constinit std::atomic<size_t> g_guard_budget_override{0};  // test switch
constinit std::atomic<bool> g_guard_warned{false};

// Read without stdio (no malloc): /proc/sys/vm/max_map_count, else the
// kernel's default.
size_t read_max_map_count() {
  size_t value = 65530;
  int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return value;
  char buf[32];
  ssize_t got = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (got <= 0) return value;
  size_t v = 0;
  for (ssize_t i = 0; i < got && buf[i] >= '0' && buf[i] <= '9'; ++i) v = v * 10 + size_t(buf[i] - '0');
  return v != 0 ? v : value;
}

size_t guard_budget() {
  size_t forced = g_guard_budget_override.load(std::memory_order_relaxed);
  if (forced != 0) return forced;
  size_t b = g_guard_budget.load(std::memory_order_relaxed);
  if (b == 0) {
    b = read_max_map_count() / 2;
    g_guard_budget.store(b, std::memory_order_relaxed);
  }
  return b;
}

bool markers_available() {
  if (g_guard_markers_disabled.load(std::memory_order_relaxed)) return false;
  int state = g_guard_markers.load(std::memory_order_relaxed);
  if (state == 0) {
    state = 2;
    void* probe = mmap(nullptr, Linux::page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe != MAP_FAILED) {
      if (madvise(probe, Linux::page_size(), MADV_GUARD_INSTALL) == 0) state = 1;
      munmap(probe, Linux::page_size());
    }
    g_guard_markers.store(state, std::memory_order_relaxed);
  }
  return state == 1;
}

// Charges `splits` new mappings against the budget; false (and one warning
// per process) when they do not fit.
bool charge_splits(unsigned splits) {
  size_t used = g_guard_splits.fetch_add(splits, std::memory_order_relaxed);
  if (used + splits <= guard_budget()) return true;
  g_guard_splits.fetch_sub(splits, std::memory_order_relaxed);
  if (!g_guard_warned.exchange(true)) {
    static const char kWarn[] =
        "HeapGuard: WARNING: guard pages thinned: the process is near vm.max_map_count; new blocks get no guard pages\n";
    Linux::write_all(2, kWarn, sizeof kWarn - 1);
  }
  return false;
}

// mprotect keeps the contents of the pages it hides; drop them first, so
// that both mechanisms leave a range that reads as zero once it is
// accessible again (callers rely on it: calloc, scrubbed reuse).
bool discard(void* p, size_t n) { return madvise(p, n, MADV_DONTNEED) == 0; }
}  // namespace

GuardKind Linux::try_guard(void* p, size_t n, unsigned splits) {
  ScopedErrno keep;
  if (markers_available() && madvise(p, n, MADV_GUARD_INSTALL) == 0) return GuardKind::Marker;
  if (!charge_splits(splits)) return GuardKind::None;
  discard(p, n);
  if (mprotect(p, n, PROT_NONE) == 0) return GuardKind::Protect;
  g_guard_splits.fetch_sub(splits, std::memory_order_relaxed);
  return GuardKind::None;
}

bool Linux::guard_install(void* p, size_t n) { return try_guard(p, n, 2) != GuardKind::None; }

bool Linux::guard_set(void* p, size_t n, GuardKind kind) {
  ScopedErrno keep;
  switch (kind) {
    case GuardKind::Marker:
      // An mlocked range refuses markers: then at least drop the contents.
      return madvise(p, n, MADV_GUARD_INSTALL) == 0 || discard(p, n);
    case GuardKind::Protect:
      // Hidden only once emptied, so that a failure leaves the range
      // accessible for the caller to clear.
      return discard(p, n) && mprotect(p, n, PROT_NONE) == 0;
    case GuardKind::None:
      return discard(p, n);
  }
  return false;
}

bool Linux::guard_clear(void* p, size_t n, GuardKind kind) {
  ScopedErrno keep;
  switch (kind) {
    case GuardKind::Marker:
      return madvise(p, n, MADV_GUARD_REMOVE) == 0;
    case GuardKind::Protect:
      return mprotect(p, n, PROT_READ | PROT_WRITE) == 0;
    case GuardKind::None:
      return true;
  }
  return false;
}

bool Linux::guard_remove(void* p, size_t n) {
  ScopedErrno keep;
  // Either mechanism may have made these pages guards: undo both.
  if (markers_available()) madvise(p, n, MADV_GUARD_REMOVE);
  return mprotect(p, n, PROT_READ | PROT_WRITE) == 0;
}

void Linux::guard_uncharge(unsigned splits) { g_guard_splits.fetch_sub(splits, std::memory_order_relaxed); }

bool Linux::has_lightweight_guards() {
  ScopedErrno keep;
  return markers_available();
}

size_t Linux::guard_splits() { return g_guard_splits.load(std::memory_order_relaxed); }
size_t Linux::guard_split_budget() { return guard_budget(); }

void Linux::set_guard_split_budget_for_testing(size_t budget) {
  g_guard_budget_override.store(budget, std::memory_order_relaxed);
  g_guard_warned.store(false, std::memory_order_relaxed);
}

void Linux::disable_guard_markers_for_testing(bool disabled) {
  g_guard_markers_disabled.store(disabled, std::memory_order_relaxed);
}

namespace {
// Kernels without CONFIG_ANON_VMA_NAME answer EINVAL; ask once, not per mapping.
constinit std::atomic<bool> g_vma_names_unsupported{false};
}  // namespace

void Linux::name_region(void* p, size_t n, const char* name) {
  if (g_vma_names_unsupported.load(std::memory_order_relaxed)) return;
  ScopedErrno keep;
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif
  if (prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, reinterpret_cast<unsigned long>(p), n,
            reinterpret_cast<unsigned long>(name)) != 0 &&
      errno == EINVAL)
    g_vma_names_unsupported.store(true, std::memory_order_relaxed);
}

uint64_t Linux::entropy64() {
  ScopedErrno keep;
  uint64_t value = 0;
  if (getrandom(&value, sizeof value, GRND_NONBLOCK) == sizeof value) return value;
  // No getrandom (seccomp, very old kernel): mix what varies per process.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  // AT_RANDOM points at 16 bytes the kernel filled at exec: real entropy
  // even where getrandom is filtered (it is shared with the stack
  // protector's canary, so it is only mixed in, never used alone).
  uint64_t at_random[2] = {0, 0};
  if (const void* r = reinterpret_cast<const void*>(getauxval(AT_RANDOM))) memcpy(at_random, r, sizeof at_random);
  static std::atomic<uint64_t> counter{0};
  uint64_t x = uint64_t(ts.tv_nsec) ^ (uint64_t(ts.tv_sec) << 32) ^ reinterpret_cast<uintptr_t>(&value) ^
               (uint64_t(getpid()) << 16) ^ at_random[0] ^ (at_random[1] * 0x9E3779B97F4A7C15ULL) ^
               (counter.fetch_add(1, std::memory_order_relaxed) * 0xD1B54A32D192ED03ULL);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

uint32_t Linux::thread_id() { return uint32_t(syscall(SYS_gettid)); }

int Linux::process_id() { return int(syscall(SYS_getpid)); }

void Linux::write_all(int fd, const char* s, size_t n) {
  ScopedErrno keep;
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    s += w;
    n -= size_t(w);
  }
}

namespace {

// Values found in /proc/self/environ, for lookups made before libc has set
// environ: a program (or a runtime such as UBSan's, linked into every
// libFuzzer binary) may call malloc from .preinit_array. Static storage:
// the allocator cannot allocate here.
constexpr size_t kEarlyEnvCapacity = 8192;
constinit char g_early_env[kEarlyEnvCapacity];
constinit size_t g_early_env_used = 0;

// Streams /proc/self/environ looking for "name=" at the start of an entry
// and copies its value into g_early_env. Values longer than what is left
// of the buffer are not returned (treated as unset) rather than truncated.
const char* proc_environ_lookup(const char* name) {
  size_t name_len = strlen(name);
  int fd = int(syscall(SYS_open, "/proc/self/environ", O_RDONLY | O_CLOEXEC));
  if (fd < 0) return nullptr;
  char chunk[512];
  size_t matched = 0;        // bytes of "name=" matched in the current entry
  bool at_entry_start = true, dead = false, copying = false;
  size_t value_start = g_early_env_used, out = g_early_env_used;
  const char* result = nullptr;
  for (;;) {
    ssize_t n = syscall(SYS_read, fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n && result == nullptr; ++i) {
      char c = chunk[i];
      if (copying) {
        if (out >= kEarlyEnvCapacity) {
          copying = false;
          dead = true;
          out = value_start;
          continue;
        }
        g_early_env[out++] = c;
        if (c == '\0') {
          result = g_early_env + value_start;
          g_early_env_used = out;
        }
        continue;
      }
      if (at_entry_start) {
        matched = 0;
        dead = false;
        at_entry_start = false;
      }
      if (c == '\0') {
        at_entry_start = true;
        continue;
      }
      if (dead) continue;
      if (matched < name_len ? c == name[matched] : c == '=') {
        if (++matched == name_len + 1) copying = true;
      } else {
        dead = true;
      }
    }
    if (result != nullptr) break;
  }
  syscall(SYS_close, fd);
  return result;
}

}  // namespace

int Linux::duplicate_for_exit(int fd) {
  ScopedErrno keep;
  // High, so it never takes a descriptor number a program expects to get.
  return fcntl(fd, F_DUPFD_CLOEXEC, 900);
}

const char* Linux::env_lookup(const char* name) {
  ScopedErrno keep;
  if (environ == nullptr) return proc_environ_lookup(name);
  size_t len = strlen(name);
  for (char** e = environ; *e != nullptr; ++e) {
    if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') return *e + len + 1;
  }
  return nullptr;
}

bool Linux::is_secure() { return getauxval(AT_SECURE) != 0; }

size_t Linux::page_size() { return 4096; }

void Linux::futex_wait(uint32_t* word, uint32_t expected) {
  ScopedErrno keep;
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

void Linux::futex_wake_one(uint32_t* word) {
  ScopedErrno keep;
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

void Linux::exit_process(int code) { _exit(code); }

void Linux::abort_process() {
  // abort() raises SIGABRT without flushing stdio (glibc >= 2.27), so it
  // cannot re-enter the allocator through a stdio buffer.
  abort();
}

bool Linux::create_thread_key(ThreadKeyDestructor dtor, unsigned* key) {
  ScopedErrno keep;
  pthread_key_t k;
  if (pthread_key_create(&k, dtor) != 0) return false;
  *key = k;
  return true;
}

void Linux::set_thread_key(unsigned key, void* value) {
  ScopedErrno keep;
  pthread_setspecific(pthread_key_t(key), value);
}

void Linux::register_atfork(AtforkFn prepare, AtforkFn parent, AtforkFn child) {
  ScopedErrno keep;
  pthread_atfork(prepare, parent, child);
}

void Linux::write_stream(void* stream, const char* s, size_t n) {
  ScopedErrno keep;
  fwrite(s, 1, n, static_cast<FILE*>(stream));
}

static_assert(kThreadKeyRounds == PTHREAD_DESTRUCTOR_ITERATIONS);

constinit thread_local bool t_owns_all_locks = false;

void Lock::lock_slow() {
  // Spin briefly: critical sections are a few hundred nanoseconds, shorter
  // than a futex round trip.
  for (int i = 0; i < 64; ++i) {
    uint32_t expected = kUnlocked;
    if (state_.load(std::memory_order_relaxed) == kUnlocked &&
        state_.compare_exchange_weak(expected, kLocked, std::memory_order_acquire))
      return;
    __builtin_ia32_pause();
  }
  uint32_t c = state_.exchange(kContended, std::memory_order_acquire);
  while (c != kUnlocked) {
    Linux::futex_wait(reinterpret_cast<uint32_t*>(&state_), kContended);
    c = state_.exchange(kContended, std::memory_order_acquire);
  }
}

void Lock::wake_one() { Linux::futex_wake_one(reinterpret_cast<uint32_t*>(&state_)); }

}  // namespace heapguard::pal
