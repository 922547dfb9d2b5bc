// SPDX-License-Identifier: Apache-2.0
//
// fork() from a multi-threaded program while other threads allocate. Any
// allocator lock held by another thread at the moment of fork stays locked in
// the child unless the allocator's atfork handlers take and release it, so
// the child, which allocates heavily, would hang (caught by alarm()) or
// corrupt its heap. Forks come from the main thread and from a worker.

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "block_pattern.h"
#include "preload_check.h"

namespace heapguard::test {
namespace {

constexpr int kWorkers = 4;
constexpr int kMainForks = 12;
constexpr int kWorkerForks = 4;
constexpr int kChildOps = 20000;
constexpr int kHeldBlocks = 64;
constexpr unsigned kChildAlarmSeconds = 30;

std::atomic<bool> stop_workers{false};
std::atomic<int> children_ok{0};
std::atomic<int> children_failed{0};

// Blocks the main thread holds across every fork; each child checks and frees
// its copies.
void* held[kHeldBlocks];
std::size_t held_size[kHeldBlocks];

std::uint32_t next_random(std::uint32_t& state) {
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return state;
}

std::size_t random_size(std::uint32_t& state) {
  std::uint32_t r = next_random(state);
  switch (r % 8) {
    case 0: return 150000 + r % 100000;  // large, mmap'd
    case 1: return 4096 + r % 60000;
    default: return 1 + r % 512;
  }
}

void fill(void* p, std::size_t n) { fill_block(p, n, n); }
bool intact(const void* p, std::size_t n) { return block_intact(p, n, n); }

// What every child does: check and free the inherited blocks, allocate
// heavily (C and C++ paths, realloc, large blocks), start a thread of its own,
// fork once more and exit through exit() so atexit handlers run too.
[[noreturn]] void child_main(std::uint32_t seed, bool fork_grandchild) {
  alarm(kChildAlarmSeconds);
  for (int i = 0; i < kHeldBlocks; ++i) {
    HEAPGUARD_TEST_REQUIRE_NOEXIT(intact(held[i], held_size[i]));
    std::free(held[i]);
  }
  std::vector<std::pair<void*, std::size_t>> live(256, {nullptr, 0});
  std::uint32_t state = seed | 1;
  for (int op = 0; op < kChildOps; ++op) {
    auto& slot = live[next_random(state) % live.size()];
    if (slot.first != nullptr) {
      HEAPGUARD_TEST_REQUIRE_NOEXIT(intact(slot.first, slot.second));
      if (op % 7 == 0) {
        std::size_t n = random_size(state);
        void* q = std::realloc(slot.first, n);
        HEAPGUARD_TEST_REQUIRE_NOEXIT(q != nullptr);
        slot = {q, n};
        fill(q, n);
        continue;
      }
      std::free(slot.first);
    }
    std::size_t n = random_size(state);
    slot = {std::malloc(n), n};
    HEAPGUARD_TEST_REQUIRE_NOEXIT(slot.first != nullptr && heapguard_test_owned(slot.first));
    fill(slot.first, n);
  }
  for (auto& [p, n] : live) {
    if (p == nullptr) continue;
    HEAPGUARD_TEST_REQUIRE_NOEXIT(intact(p, n));
    std::free(p);
  }
  std::vector<std::string> strings;
  for (int i = 0; i < 2000; ++i) strings.emplace_back(static_cast<std::size_t>(i % 300), 'c');

  pthread_t thread;
  auto thread_body = [](void*) -> void* {
    for (int i = 0; i < 5000; ++i) delete new std::string(static_cast<std::size_t>(i % 100), 't');
    return nullptr;
  };
  HEAPGUARD_TEST_REQUIRE_NOEXIT(pthread_create(&thread, nullptr, thread_body, nullptr) == 0);
  HEAPGUARD_TEST_REQUIRE_NOEXIT(pthread_join(thread, nullptr) == 0);

  if (fork_grandchild) {
    pid_t pid = fork();
    HEAPGUARD_TEST_REQUIRE_NOEXIT(pid >= 0);
    if (pid == 0) {
      alarm(kChildAlarmSeconds);
      for (int i = 0; i < 10000; ++i) std::free(std::malloc(static_cast<std::size_t>(i % 2000) + 1));
      std::exit(0);
    }
    int status = 0;
    HEAPGUARD_TEST_REQUIRE_NOEXIT(waitpid(pid, &status, 0) == pid);
    HEAPGUARD_TEST_REQUIRE_NOEXIT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::exit(0);
}

void fork_and_wait(std::uint32_t seed, bool fork_grandchild) {
  pid_t pid = fork();
  if (pid < 0) {
    children_failed.fetch_add(1);
    return;
  }
  if (pid == 0) child_main(seed, fork_grandchild);
  int status = 0;
  if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    children_ok.fetch_add(1);
  } else {
    std::fprintf(stderr, "FAIL: child %d ended with status 0x%x\n", static_cast<int>(pid), status);
    children_failed.fetch_add(1);
  }
}

// Workers keep allocator locks busy so that some fork lands while one is held.
void* worker_main(void* raw) {
  auto index = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(raw));
  std::uint32_t state = 0x9e3779b9u * (index + 1);
  std::vector<std::pair<void*, std::size_t>> live(64, {nullptr, 0});
  // Only one worker forks; the others keep the allocator busy meanwhile.
  const int forks_wanted = index == 0 ? kWorkerForks : 0;
  int forks_done = 0;
  for (std::uint64_t iteration = 0; !stop_workers.load(std::memory_order_relaxed); ++iteration) {
    auto& slot = live[next_random(state) % live.size()];
    if (slot.first != nullptr) {
      if (!intact(slot.first, slot.second)) {
        std::fprintf(stderr, "FAIL: worker %u found a corrupted block\n", index);
        std::exit(1);
      }
      std::free(slot.first);
    }
    std::size_t n = random_size(state) % 8192 + 1;
    slot = {std::malloc(n), n};
    if (slot.first == nullptr) std::exit(1);
    fill(slot.first, n);
    delete new std::vector<int>(static_cast<std::size_t>(n % 64), 1);
    if (forks_done < forks_wanted && iteration % 20000 == 19999) {
      fork_and_wait(state, false);
      ++forks_done;
    }
  }
  // Keep forking until done, so the count is the same on every run.
  while (forks_done < forks_wanted) {
    fork_and_wait(state, false);
    ++forks_done;
  }
  for (auto& [p, n] : live) std::free(p);
  return nullptr;
}

int run() {
  heapguard_test_require_loaded();
  std::uint32_t state = 12345;
  for (int i = 0; i < kHeldBlocks; ++i) {
    held_size[i] = random_size(state);
    held[i] = std::malloc(held_size[i]);
    HEAPGUARD_TEST_REQUIRE(held[i] != nullptr);
    fill(held[i], held_size[i]);
  }
  // Children exit through exit(): anything still buffered would be written
  // twice, once by each process.
  std::fflush(stdout);

  pthread_t workers[kWorkers];
  for (int w = 0; w < kWorkers; ++w) {
    HEAPGUARD_TEST_REQUIRE(pthread_create(&workers[w], nullptr, worker_main,
                                          reinterpret_cast<void*>(static_cast<std::uintptr_t>(w))) == 0);
  }
  for (int f = 0; f < kMainForks; ++f) {
    usleep(3000);
    fork_and_wait(next_random(state), f % 4 == 0);
  }
  stop_workers.store(true);
  for (auto& worker : workers) HEAPGUARD_TEST_REQUIRE(pthread_join(worker, nullptr) == 0);

  for (int i = 0; i < kHeldBlocks; ++i) {
    HEAPGUARD_TEST_REQUIRE(intact(held[i], held_size[i]));
    std::free(held[i]);
  }
  HEAPGUARD_TEST_REQUIRE(children_failed.load() == 0);
  std::printf("fork_threads: %d children exited 0 (%d workers allocating during fork)\n",
              children_ok.load(), kWorkers);
  return 0;
}

}  // namespace
}  // namespace heapguard::test

int main() { return heapguard::test::run(); }
