// SPDX-License-Identifier: Apache-2.0
// The process allocator (g_allocator) through its internal interface:
// ownership checks never fault and accept exactly live block starts, realloc
// stays in place within a class, thread exit and fork give cached slots
// back, figures track live blocks, and trim returns memory.
#include "frontend/allocator.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>
#include <vector>

namespace heapguard::test {

TEST(Allocator, OwnsExactlyLiveBlockStarts) {
  Allocator& a = g_allocator;
  void* small = a.allocate(100, Origin::Malloc);
  void* large = a.allocate(1 << 20, Origin::Malloc);
  void* aligned = a.allocate_aligned(256, 100, Origin::Malloc);
  int on_stack = 0;
  EXPECT_TRUE(a.owns(small));
  EXPECT_TRUE(a.owns(large));
  EXPECT_TRUE(a.owns(aligned));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(aligned) % 256, 0u);
  EXPECT_FALSE(a.owns(static_cast<char*>(small) + 16));
  EXPECT_FALSE(a.owns(static_cast<char*>(large) + 4096));
  EXPECT_FALSE(a.owns(&on_stack));
  EXPECT_FALSE(a.owns(nullptr));
  // A pointer deep into the unused part of the slab arena: must not fault.
  uintptr_t far = reinterpret_cast<uintptr_t>(small) + (uintptr_t{1} << 33);
  EXPECT_FALSE(a.owns(reinterpret_cast<void*>(far & ~uintptr_t{15})));
  a.deallocate(small);
  a.deallocate(large);
  a.deallocate(aligned);
  EXPECT_FALSE(a.owns(small));
  EXPECT_FALSE(a.owns(aligned));
}

TEST(Allocator, UsableSizeCoversTheRequestAndTheSlot) {
  Allocator& a = g_allocator;
  for (size_t n : {0, 1, 24, 25, 1000, 5000, 131072, 131081, 1 << 20}) {
    void* p = a.allocate(n, Origin::Malloc);
    size_t u = a.usable_size(p);
    EXPECT_GE(u, n);
    // With the slack checked (every mode but fast) a byte past the request
    // is an overflow, so exactly the request is usable.
    if (g_policy.check_slack) EXPECT_EQ(u, n);
    else if (n <= kMaxSmallSize) EXPECT_EQ(u, kSizeClasses[size_to_class(n)].usable);
    a.deallocate(p);
  }
}

TEST(Allocator, ReallocStaysInPlaceWithinAClassAndMovesAcross) {
  Allocator& a = g_allocator;
  auto* p = static_cast<char*>(a.allocate(100, Origin::Malloc));
  size_t usable = a.usable_size(p);
  EXPECT_EQ(a.reallocate(p, usable), p);
  EXPECT_EQ(a.reallocate(p, usable - 7), p);
  auto* q = static_cast<char*>(a.reallocate(p, 2000));
  EXPECT_NE(q, p);
  EXPECT_FALSE(a.owns(p));
  a.deallocate(q);
}

TEST(Allocator, FiguresTrackLiveBlocks) {
  Allocator& a = g_allocator;
  std::vector<void*> blocks;
  blocks.reserve(1000);  // the vector's own buffer must not move mid-count
  // This thread's first sampled allocation (hardened) sets up its stack
  // capture, which allocates a few blocks that stay: get that done first.
  for (int i = 0; i < 20000; ++i) a.deallocate(a.allocate(48, Origin::Malloc));
  HeapFigures before = a.figures();
  for (int i = 0; i < 1000; ++i) blocks.push_back(a.allocate(48, Origin::Malloc));
  HeapFigures during = a.figures();
  // Sampled blocks (hardened) live in the guarded pool.
  EXPECT_EQ(during.small_live_blocks + during.guarded_live_blocks,
            before.small_live_blocks + before.guarded_live_blocks + 1000);
  for (void* p : blocks) a.deallocate(p);
  HeapFigures after = a.figures();
  EXPECT_EQ(after.small_live_blocks, before.small_live_blocks);
  EXPECT_EQ(after.guarded_live_blocks, before.guarded_live_blocks);
  // Freed blocks wait in the quarantine (except in fast mode), counted there;
  // a sampled block (1 in 5000, hardened) is freed in the pool instead.
  if (g_policy.quarantine_bytes != 0) EXPECT_GE(after.small_quarantined_blocks + 5u, 1000u);
  else EXPECT_EQ(after.small_quarantined_blocks, 0u);
  // malloc_trim drains the quarantine (this thread is the only one).
  a.trim();
  EXPECT_EQ(a.figures().small_quarantined_blocks, 0u);
  EXPECT_EQ(a.figures().small_live_blocks, before.small_live_blocks);
}

TEST(Allocator, ThreadExitReturnsTheThreadsCache) {
  Allocator& a = g_allocator;
  size_t caches_before = a.figures().thread_caches;
  std::thread t([&] {
    std::vector<void*> blocks;
    for (int i = 0; i < 5000; ++i) blocks.push_back(a.allocate(64 + i % 500, Origin::Malloc));
    for (void* p : blocks) a.deallocate(p);
    EXPECT_EQ(a.figures().thread_caches, caches_before + 1);
    EXPECT_GT(a.figures().small_cached_bytes, 0u);
  });
  t.join();
  HeapFigures after = a.figures();
  EXPECT_EQ(after.thread_caches, caches_before);
}

TEST(Allocator, ForkChildReclaimsOtherThreadsCaches) {
  Allocator& a = g_allocator;
  std::atomic<bool> stop{false};
  std::atomic<bool> ready{false};
  std::thread worker([&] {
    std::vector<void*> blocks;
    for (int i = 0; i < 200; ++i) blocks.push_back(a.allocate(32, Origin::Malloc));
    for (void* p : blocks) a.deallocate(p);
    ready = true;
    while (!stop) std::this_thread::yield();
  });
  while (!ready) std::this_thread::yield();
  pid_t pid = fork();
  if (pid == 0) {
    HeapFigures f = a.figures();
    bool ok = f.thread_caches == 1;
    void* p = a.allocate(32, Origin::Malloc);
    ok = ok && p != nullptr;
    a.deallocate(p);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  stop = true;
  worker.join();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Allocator, TrimReturnsFreedSlabs) {
  Allocator& a = g_allocator;
  std::vector<void*> blocks;
  for (int i = 0; i < 20000; ++i) blocks.push_back(a.allocate(700, Origin::Malloc));
  for (void* p : blocks) a.deallocate(p);
  EXPECT_GT(a.trim(), 0u);
}

}  // namespace heapguard::test
