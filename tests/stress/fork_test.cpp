// SPDX-License-Identifier: Apache-2.0
// Fork storm: threads keep allocating while the main thread forks repeatedly, so
// some fork lands while another thread holds an allocator lock. Every child must be
// able to allocate, free, start a thread and exit 0; a hang means a lock leaked.
#include <gtest/gtest.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "block_pattern.h"
#include "split_mix.h"

namespace {

using heapguard::test::all_zero;
using heapguard::test::fill_pattern;
using heapguard::test::first_mismatch;
using heapguard::test::SplitMix64;

constexpr int kForks = 100;
constexpr int kChurnThreads = 2;
// Only a watchdog: a healthy child exits in milliseconds.
constexpr auto kChildDeadline = std::chrono::seconds(20);

// Exit codes name the check that failed inside the child.
enum ChildExit : int {
  kOk = 0,
  kMallocNull = 10,
  kCorrupted = 11,
  kCallocDirty = 12,
  kThreadFailed = 13,
  kGrandchildFailed = 14,
  kForkFailed = 15,
};

int allocate_and_verify(uint64_t seed) {
  SplitMix64 rng(seed);
  struct Live {
    void* ptr;
    size_t size;
    unsigned seed;
  };
  std::vector<Live> live;
  for (unsigned i = 0; i < 200; ++i) {
    const size_t n = rng.block_size(512 * 1024);
    void* p = malloc(n);
    if (p == nullptr) return kMallocNull;
    fill_pattern(p, n, i);
    live.push_back({p, n, i});
    if (rng.percent(40)) {
      const size_t victim = rng.below(live.size());
      const Live b = live[victim];
      if (first_mismatch(b.ptr, b.size, b.seed) != b.size) return kCorrupted;
      free(b.ptr);
      live.erase(live.begin() + static_cast<ptrdiff_t>(victim));
    }
  }
  for (const Live& b : live) {
    if (first_mismatch(b.ptr, b.size, b.seed) != b.size) return kCorrupted;
    free(b.ptr);
  }
  for (int i = 0; i < 20; ++i) {
    auto* p = static_cast<unsigned char*>(calloc(1, 5000));
    if (p == nullptr) return kMallocNull;
    if (!all_zero(p, 5000)) return kCallocDirty;
    std::memset(p, 0xAB, 5000);
    free(p);
  }
  auto* arr = new (std::nothrow) uint64_t[4096];
  if (arr == nullptr) return kMallocNull;
  delete[] arr;
  return kOk;
}

[[noreturn]] void run_child(int index) {
  int status = allocate_and_verify(static_cast<uint64_t>(index) * 7919);
  if (status == kOk) {
    // A thread in the child needs a fresh thread cache after fork.
    std::atomic<int> thread_status{kThreadFailed};
    std::thread t([&] { thread_status = allocate_and_verify(static_cast<uint64_t>(index) + 1); });
    t.join();
    if (thread_status != kOk) status = kThreadFailed;
  }
  if (status == kOk && index % 10 == 0) {
    // Fork again from the child: the atfork handlers must leave it fork-safe too.
    const pid_t grandchild = fork();
    if (grandchild < 0) {
      status = kForkFailed;
    } else if (grandchild == 0) {
      _exit(allocate_and_verify(static_cast<uint64_t>(index) + 2));
    } else {
      int gs = 0;
      if (waitpid(grandchild, &gs, 0) != grandchild || !WIFEXITED(gs) || WEXITSTATUS(gs) != 0) {
        status = kGrandchildFailed;
      }
    }
  }
  // Half of the children run the exit handlers (heapguard's included), half skip them.
  if (index % 2 == 0) exit(status);
  _exit(status);
}

// Waits for pid with a deadline; a hung child is killed and reported.
std::string wait_child(pid_t pid, int index) {
  const auto deadline = std::chrono::steady_clock::now() + kChildDeadline;
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0) return "waitpid failed for child " + std::to_string(index);
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return "child " + std::to_string(index) + " hung (an allocator lock held across fork?)";
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (WIFSIGNALED(status)) {
    return "child " + std::to_string(index) + " killed by signal " + std::to_string(WTERMSIG(status));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return "child " + std::to_string(index) + " exited with " + std::to_string(WEXITSTATUS(status));
  }
  return {};
}

TEST(ForkStorm, ChildrenOfABusyMultiThreadedParentCanAllocate) {
  std::atomic<bool> stop{false};
  std::atomic<size_t> churn_failures{0};
  std::vector<std::thread> churners;
  for (int t = 0; t < kChurnThreads; ++t) {
    churners.emplace_back([&, t] {
      SplitMix64 rng(0xF0F0u + static_cast<unsigned>(t));
      std::vector<std::pair<void*, size_t>> ring(64, {nullptr, 0});
      size_t slot = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        // Brief pauses leave the children some CPU on a two-core machine while the
        // churners still spend most of their time inside the allocator.
        if (slot % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
        auto& [p, n] = ring[slot++ % ring.size()];
        if (p != nullptr) {
          if (first_mismatch(p, n, static_cast<unsigned>(n)) != n) churn_failures.fetch_add(1);
          free(p);
        }
        n = rng.block_size(512 * 1024);
        p = malloc(n);
        if (p == nullptr) {
          churn_failures.fetch_add(1);
          continue;
        }
        fill_pattern(p, n, static_cast<unsigned>(n));
      }
      for (auto& [p, n] : ring) free(p);
    });
  }

  std::vector<std::string> failures;
  for (int i = 0; i < kForks; ++i) {
    std::fflush(nullptr);  // no buffered output may be duplicated into the child
    const pid_t pid = fork();
    ASSERT_GE(pid, 0) << "fork failed at iteration " << i;
    if (pid == 0) run_child(i);
    if (std::string f = wait_child(pid, i); !f.empty()) failures.push_back(f);
    // The parent keeps allocating between forks as well.
    void* p = malloc(static_cast<size_t>(i) * 100 + 1);
    ASSERT_NE(p, nullptr);
    free(p);
  }
  stop = true;
  for (auto& t : churners) t.join();

  if (!failures.empty()) {
    ADD_FAILURE() << failures.size() << " of " << kForks << " children failed; first: " << failures.front();
  }
  EXPECT_EQ(churn_failures.load(), 0u);
}

}  // namespace
