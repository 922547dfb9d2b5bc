// SPDX-License-Identifier: Apache-2.0
// Thread-exit storm: thousands of short threads allocate, free some blocks, free a
// block of the main thread, and hand others back for the main thread to free later.
// Thread caches must be torn down and recycled, and blocks must outlive their thread.
#include <heapguard/heapguard.h>

#include <gtest/gtest.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "block_pattern.h"
#include "split_mix.h"

namespace {

using heapguard::test::fill_pattern;
using heapguard::test::first_mismatch;
using heapguard::test::SplitMix64;

constexpr int kThreads = 3000;
constexpr int kConcurrent = 4;

struct Handoff {
  void* ptr;
  size_t size;
  unsigned seed;
};

std::mutex g_handoff_mu;
std::vector<Handoff> g_handoff;
std::vector<std::string> g_errors;

void hand_to_main(void* p, size_t n, unsigned seed) {
  std::lock_guard lock(g_handoff_mu);
  g_handoff.push_back({p, n, seed});
}

void record_error(std::string e) {
  std::lock_guard lock(g_handoff_mu);
  g_errors.push_back(std::move(e));
}

// Registered as a pthread key destructor: it runs during thread teardown, possibly
// after heapguard has torn down the thread's cache, and must still be able to allocate.
void allocate_at_thread_exit(void* arg) {
  const auto seed = static_cast<unsigned>(reinterpret_cast<uintptr_t>(arg));
  void* p = malloc(96);
  if (p == nullptr) {
    record_error("malloc failed in a key destructor");
    return;
  }
  fill_pattern(p, 96, seed);
  void* q = malloc(4000);
  free(q);
  hand_to_main(p, 96, seed);
}

pthread_key_t g_exit_key;

void thread_body(int index, Handoff from_main) {
  SplitMix64 rng(static_cast<uint64_t>(index) * 104729);
  const auto base_seed = static_cast<unsigned>(index) * 64;
  // The first operation on a fresh thread varies: a remote free, calloc, realloc,
  // operator new, or plain malloc.
  switch (index % 5) {
    case 0:
      if (first_mismatch(from_main.ptr, from_main.size, from_main.seed) != from_main.size) {
        record_error("main-thread block corrupted before thread " + std::to_string(index));
      }
      free(from_main.ptr);
      from_main.ptr = nullptr;
      break;
    case 1:
      free(calloc(3, 33));
      break;
    case 2:
      free(realloc(nullptr, 77));
      break;
    case 3:
      delete new int(index);
      break;
    default:
      break;
  }
  Handoff mine[12];
  for (unsigned i = 0; i < 12; ++i) {
    const size_t n = rng.block_size(300 * 1024);
    void* p = malloc(n);
    if (p == nullptr) {
      record_error("malloc(" + std::to_string(n) + ") failed in thread " + std::to_string(index));
      mine[i] = {nullptr, 0, 0};
      continue;
    }
    fill_pattern(p, n, base_seed + i);
    mine[i] = {p, n, base_seed + i};
  }
  for (unsigned i = 0; i < 12; ++i) {
    if (mine[i].ptr == nullptr) continue;
    if (i % 3 == 0) {
      hand_to_main(mine[i].ptr, mine[i].size, mine[i].seed);  // leaked to the main thread
    } else {
      if (first_mismatch(mine[i].ptr, mine[i].size, mine[i].seed) != mine[i].size) {
        record_error("thread-local block corrupted in thread " + std::to_string(index));
      }
      free(mine[i].ptr);
    }
  }
  if (from_main.ptr != nullptr) {
    if (first_mismatch(from_main.ptr, from_main.size, from_main.seed) != from_main.size) {
      record_error("main-thread block corrupted in thread " + std::to_string(index));
    }
    free(from_main.ptr);
  }
  if (index % 7 == 0) {
    pthread_setspecific(g_exit_key, reinterpret_cast<void*>(static_cast<uintptr_t>(index) + 1));
  }
}

TEST(ThreadExitStorm, BlocksOutliveShortThreads) {
  ASSERT_EQ(pthread_key_create(&g_exit_key, allocate_at_thread_exit), 0);
  heapguard_stats before{};
  ASSERT_EQ(heapguard_get_stats(&before), 0);

  for (int first = 0; first < kThreads; first += kConcurrent) {
    std::vector<std::thread> batch;
    for (int index = first; index < first + kConcurrent && index < kThreads; ++index) {
      const size_t n = static_cast<size_t>(index % 200) + 1;
      void* p = malloc(n);
      ASSERT_NE(p, nullptr);
      fill_pattern(p, n, 7);
      batch.emplace_back(thread_body, index, Handoff{p, n, 7});
    }
    for (auto& t : batch) t.join();
  }

  std::vector<Handoff> handed;
  {
    std::lock_guard lock(g_handoff_mu);
    handed.swap(g_handoff);
    for (const std::string& e : g_errors) ADD_FAILURE() << e;
  }
  // 4 of every 12 blocks per thread, plus one from each thread that used the key.
  EXPECT_EQ(handed.size(), static_cast<size_t>(kThreads) * 4 + (kThreads + 6) / 7);
  size_t corrupted = 0;
  for (const Handoff& h : handed) {
    if (first_mismatch(h.ptr, h.size, h.seed) != h.size) ++corrupted;
    free(h.ptr);
  }
  EXPECT_EQ(corrupted, 0u) << "blocks changed after their thread exited";

  heapguard_stats after{};
  ASSERT_EQ(heapguard_get_stats(&after), 0);
  // Exited threads must give their caches back; only this thread's remains in use.
  EXPECT_LE(after.thread_caches, before.thread_caches + 2)
      << "thread caches leak across " << kThreads << " thread exits";
  // glibc keeps a few dtv blocks for its cached thread stacks; anything beyond
  // that is a block freed by another thread but still counted live.
  EXPECT_LE(after.live_blocks, before.live_blocks + 64);
  pthread_key_delete(g_exit_key);
}

}  // namespace
