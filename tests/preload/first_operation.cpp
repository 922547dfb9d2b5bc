// SPDX-License-Identifier: Apache-2.0
//
// The first allocator call on a brand-new thread. A thread cache starts as an
// empty sentinel, so that first call (malloc, operator new, or a free of a
// block some other thread allocated) is what runs the per-thread init path;
// waves of threads released together make that path race with itself.

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "block_pattern.h"
#include "preload_check.h"

namespace heapguard::test {
namespace {

enum class FirstOp { kMalloc, kFreeRemote, kNew };

constexpr int kWaves = 4;
constexpr int kThreadsPerWave = 16;
// One size per regime: tiny, small classes, the largest small class and a
// mmap'd large block.
constexpr std::size_t kSizes[] = {1, 24, 200, 3000, 65536, 131072, 300000};
constexpr int kSizeCount = sizeof(kSizes) / sizeof(kSizes[0]);
constexpr int kWorkOps = 500;

struct Node {
  std::uint64_t words[6];
};

// The block's address seeds its pattern: a block returned twice, to two
// owners, fails the check of one of them.
std::size_t seed_of(const void* block) { return reinterpret_cast<std::uintptr_t>(block) >> 4; }
void fill(void* block, std::size_t n) { fill_block(block, n, seed_of(block)); }
bool intact(const void* block, std::size_t n) { return block_intact(block, n, seed_of(block)); }

struct ThreadArg {
  FirstOp op;
  int index;
  std::atomic<bool>* go;
  void* remote[kSizeCount];  // blocks another thread allocated (kFreeRemote)
  bool ok;
};

// Ordinary traffic after the first call, so the new cache also refills,
// flushes and sees large blocks.
bool churn(unsigned seed) {
  void* live[32] = {};
  std::size_t live_size[32] = {};
  for (int i = 0; i < kWorkOps; ++i) {
    seed = seed * 1103515245u + 12345u;
    int slot = static_cast<int>((seed >> 8) % 32);
    if (live[slot] != nullptr) {
      if (!intact(live[slot], live_size[slot])) return false;
      std::free(live[slot]);
    }
    std::size_t n = kSizes[(seed >> 16) % kSizeCount] / ((seed >> 20) % 4 + 1) + 1;
    live[slot] = std::malloc(n);
    if (live[slot] == nullptr || !heapguard_test_owned(live[slot])) return false;
    live_size[slot] = n;
    fill(live[slot], n);
  }
  for (int slot = 0; slot < 32; ++slot) {
    if (live[slot] == nullptr) continue;
    if (!intact(live[slot], live_size[slot])) return false;
    std::free(live[slot]);
  }
  return true;
}

void* thread_main(void* raw) {
  auto* arg = static_cast<ThreadArg*>(raw);
  // Spin rather than block: waking up must not allocate, and all threads
  // should hit their first call together.
  while (!arg->go->load(std::memory_order_acquire)) sched_yield();

  bool ok = true;
  switch (arg->op) {
    case FirstOp::kMalloc: {
      std::size_t n = kSizes[arg->index % kSizeCount];
      void* p = std::malloc(n);  // the thread's first allocator call
      ok = p != nullptr && heapguard_test_owned(p);
      if (ok) {
        fill(p, n);
        ok = intact(p, n);
        std::free(p);
      }
      break;
    }
    case FirstOp::kFreeRemote: {
      // The first call frees a block this thread never saw allocated; the
      // contents are checked before, because after the free they are gone.
      ok = intact(arg->remote[0], kSizes[0]);
      std::free(arg->remote[0]);  // the thread's first allocator call
      for (int i = 1; i < kSizeCount; ++i) {
        ok = ok && intact(arg->remote[i], kSizes[i]);
        std::free(arg->remote[i]);
      }
      break;
    }
    case FirstOp::kNew: {
      Node* node = new Node{};  // the thread's first allocator call
      ok = heapguard_test_owned(node);
      for (auto w : node->words) ok = ok && w == 0;
      auto* array = new std::uint64_t[1000];
      ok = ok && heapguard_test_owned(array);
      for (int i = 0; i < 1000; ++i) array[i] = static_cast<std::uint64_t>(i) * 3;
      for (int i = 0; i < 1000; ++i) ok = ok && array[i] == static_cast<std::uint64_t>(i) * 3;
      delete[] array;
      delete node;
      break;
    }
  }
  arg->ok = ok && churn(static_cast<unsigned>(arg->index) * 2654435761u + 1);
  return nullptr;
}

// Allocates the blocks a wave will free first. Half of the producers are
// threads that have exited by the time the blocks are freed, so the free
// also reaches a cache that no longer exists.
void* producer_main(void* raw) {
  auto* arg = static_cast<ThreadArg*>(raw);
  for (int i = 0; i < kSizeCount; ++i) {
    arg->remote[i] = std::malloc(kSizes[i]);
    HEAPGUARD_TEST_REQUIRE(arg->remote[i] != nullptr);
    fill(arg->remote[i], kSizes[i]);
  }
  return nullptr;
}

void produce_remote_blocks(ThreadArg* arg) {
  if (arg->index % 2 == 0) {
    producer_main(arg);
    return;
  }
  pthread_t producer;
  HEAPGUARD_TEST_REQUIRE(pthread_create(&producer, nullptr, producer_main, arg) == 0);
  HEAPGUARD_TEST_REQUIRE(pthread_join(producer, nullptr) == 0);
}

int run(FirstOp op, const char* name) {
  heapguard_test_require_loaded();
  for (int wave = 0; wave < kWaves; ++wave) {
    std::atomic<bool> go{false};
    ThreadArg args[kThreadsPerWave];
    pthread_t threads[kThreadsPerWave];
    for (int t = 0; t < kThreadsPerWave; ++t) {
      args[t] = ThreadArg{op, wave * kThreadsPerWave + t, &go, {}, false};
      if (op == FirstOp::kFreeRemote) produce_remote_blocks(&args[t]);
      HEAPGUARD_TEST_REQUIRE(pthread_create(&threads[t], nullptr, thread_main, &args[t]) == 0);
    }
    go.store(true, std::memory_order_release);
    for (int t = 0; t < kThreadsPerWave; ++t) {
      HEAPGUARD_TEST_REQUIRE(pthread_join(threads[t], nullptr) == 0);
      if (!args[t].ok) {
        std::fprintf(stderr, "FAIL: %s: thread %d of wave %d saw a bad block\n", name, t, wave);
        return 1;
      }
    }
  }
  std::printf("first_operation %s: %d waves x %d threads ok\n", name, kWaves, kThreadsPerWave);
  return 0;
}

}  // namespace
}  // namespace heapguard::test

int main(int argc, char** argv) {
  using heapguard::test::FirstOp;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s malloc|free_remote|new\n", argv[0]);
    return 64;
  }
  if (std::strcmp(argv[1], "malloc") == 0) return heapguard::test::run(FirstOp::kMalloc, argv[1]);
  if (std::strcmp(argv[1], "free_remote") == 0) {
    return heapguard::test::run(FirstOp::kFreeRemote, argv[1]);
  }
  if (std::strcmp(argv[1], "new") == 0) return heapguard::test::run(FirstOp::kNew, argv[1]);
  std::fprintf(stderr, "unknown first operation '%s'\n", argv[1]);
  return 64;
}
