// SPDX-License-Identifier: Apache-2.0
// A futex mutex (Drepper's three-state design). constinit-constructible so
// that locks are usable before any constructor runs; fork handlers reset it
// in the child with reset_after_fork().
#pragma once

#include <atomic>
#include <cstdint>

namespace heapguard::pal {

// Set on the thread that called fork() while it holds every allocator lock
// (between the allocator's prepare and parent/child handlers). Other
// libraries' fork handlers run in that window and may allocate; the forking
// thread already owns every lock, so its lock and unlock calls do nothing.
extern constinit thread_local bool t_owns_all_locks;

class Lock {
 public:
  constexpr Lock() = default;

  void lock() {
    if (__builtin_expect(t_owns_all_locks, 0)) return;
    uint32_t expected = kUnlocked;
    if (__builtin_expect(state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire), 1)) return;
    lock_slow();
  }

  void unlock() {
    if (__builtin_expect(t_owns_all_locks, 0)) return;
    if (__builtin_expect(state_.exchange(kUnlocked, std::memory_order_release) == kContended, 0)) wake_one();
  }

  // The child of fork() has only the forking thread; the lock's other owners
  // are gone, so its state is simply cleared.
  void reset_after_fork() { state_.store(kUnlocked, std::memory_order_relaxed); }

 private:
  static constexpr uint32_t kUnlocked = 0, kLocked = 1, kContended = 2;
  void lock_slow();
  void wake_one();
  std::atomic<uint32_t> state_{kUnlocked};
};

class LockGuard {
 public:
  explicit LockGuard(Lock& lock) : lock_(lock) { lock_.lock(); }
  ~LockGuard() { lock_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  Lock& lock_;
};

}  // namespace heapguard::pal
