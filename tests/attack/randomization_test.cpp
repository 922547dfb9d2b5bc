// SPDX-License-Identifier: Apache-2.0
// Attack 6, heap feng shui: exploits groom the heap so that a victim block
// lands right after an overflowable one, relying on allocations coming out
// at predictable addresses. Measured here (hardened, debug, fuzz):
//  - consecutive same-size allocations do not follow a fixed stride;
//  - a freed block is not handed out again by the next malloc;
//  - two processes get different layouts, unless both use the same seed
//    (fuzz mode's default seed=1, or seed=N in any mode), in which case the
//    layout is identical, so a fuzzing crash reproduces;
//  - two children forked from one heap choose differently (unseeded) or
//    identically (seeded);
//  - with a seed, the same blocks are sampled into the guarded pool.
// Layouts are compared as offsets between blocks of a size, which address
// space randomization of the whole arena does not change.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "death_test_util.h"

extern char** environ;

namespace heapguard::test {
namespace {

constexpr const char* kLayoutVariable = "HEAPGUARD_TEST_PRINT_LAYOUT";
constexpr size_t kLayoutSizes[] = {16, 64, 256, 1000, 5000};
constexpr size_t kLayoutBlocks = 64;
constexpr ptrdiff_t kNearby = ptrdiff_t(1) << 30;

// The layout of this process: for each size, the offsets of kLayoutBlocks
// fresh blocks from the first one. Written with write(2) from a fixed
// buffer, so that printing does not allocate in between.
std::string layout_of_this_process() {
  static char text[64 * 1024];
  size_t len = 0;
  for (size_t size : kLayoutSizes) {
    char* first = nullptr;
    char* first_far = nullptr;
    for (size_t i = 0; i < kLayoutBlocks; ++i) {
      char* p = opaque_chars(malloc(size));
      if (first == nullptr) first = p;
      // A block far from the first (a sampled one, in the guarded pool's own
      // mapping) is placed relative to the first such block: the distance
      // between the two mappings is the kernel's choice, not the layout's.
      ptrdiff_t offset = p - first;
      if (offset > kNearby || offset < -kNearby) {
        if (first_far == nullptr) first_far = p;
        len += size_t(snprintf(text + len, sizeof text - len, "far%td ", p - first_far));
        continue;
      }
      len += size_t(snprintf(text + len, sizeof text - len, "%td ", offset));
    }
    len += size_t(snprintf(text + len, sizeof text - len, "\n"));
  }
  return std::string(text, len);
}

// Child mode: the test binary re-executed by ProcessLayout prints its
// layout before gtest (or anything else in main) runs, and exits.
__attribute__((constructor)) void print_layout_if_asked() {
  if (getenv(kLayoutVariable) == nullptr) return;
  std::string text = layout_of_this_process();
  (void)!write(1, text.data(), text.size());
  _exit(0);
}

// Runs this binary again with HEAPGUARD_OPTIONS=options (unset if empty)
// and returns the layout it printed.
std::string layout_of_a_new_process(const std::string& options) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (strncmp(*e, "HEAPGUARD_OPTIONS=", 18) == 0 || strncmp(*e, kLayoutVariable, strlen(kLayoutVariable)) == 0)
      continue;
    env_strings.emplace_back(*e);
  }
  env_strings.push_back(std::string(kLayoutVariable) + "=1");
  if (!options.empty()) env_strings.push_back("HEAPGUARD_OPTIONS=" + options);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  char self[] = "/proc/self/exe";
  char* argv[] = {self, nullptr};

  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execve(self, argv, envp.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t got;
  while ((got = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, size_t(got));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "child failed with status " + std::to_string(status);
  return out;
}

bool layout_is_complete(const std::string& layout) {
  return std::count(layout.begin(), layout.end(), '\n') == ptrdiff_t(std::size(kLayoutSizes)) &&
         std::count(layout.begin(), layout.end(), ' ') == ptrdiff_t(std::size(kLayoutSizes) * kLayoutBlocks);
}

// Fuzz mode derives every layout choice from seed=1 unless told otherwise.
bool seeded_by_default() { return mode_is("fuzz"); }

// The fraction of consecutive pairs among `count` allocations of `size`
// that share the most common address difference (1.0 for a bump or
// free-list allocator walking a fresh slab).
double most_common_stride_share(size_t size, size_t count) {
  std::vector<char*> blocks;
  for (size_t i = 0; i < count / 10; ++i) blocks.push_back(opaque_chars(malloc(size)));  // warm-up
  std::vector<char*> measured;
  for (size_t i = 0; i < count; ++i) measured.push_back(opaque_chars(malloc(size)));
  std::map<ptrdiff_t, size_t> strides;
  size_t most = 0;
  for (size_t i = 1; i < measured.size(); ++i) most = std::max(most, ++strides[measured[i] - measured[i - 1]]);
  for (char* p : blocks) free(p);
  for (char* p : measured) free(p);
  return double(most) / double(count - 1);
}

}  // namespace

// Sizes with the largest share of one stride allowed. The entropy of a slot
// choice is bounded by the slots per slab: hundreds for small classes, a
// dozen at 5000 bytes, five at 100000 bytes. A sequential allocator scores
// 0.75 to 1.0 at every one of these sizes.
struct StrideCase {
  size_t size;
  double max_share;
  size_t count;  // fewer of the big ones: debug mode fills each block
};

class StrideTest : public ::testing::TestWithParam<StrideCase> {};

TEST_P(StrideTest, ConsecutiveAllocationsHaveNoCommonStride) {
  StrideCase c = GetParam();
  double share = most_common_stride_share(c.size, c.count);
  EXPECT_LT(share, c.max_share) << "of " << c.count << " allocations of " << c.size
                                << " bytes, this share followed the most common stride";
}

INSTANTIATE_TEST_SUITE_P(Sizes, StrideTest,
                         ::testing::Values(StrideCase{16, 0.10, 10000}, StrideCase{64, 0.10, 10000},
                                           StrideCase{1000, 0.10, 10000}, StrideCase{5000, 0.25, 10000},
                                           StrideCase{100000, 0.5, 1000}));

TEST(ReuseTest, AFreedBlockIsNotTheNextOneHandedOut) {
  size_t reused = 0;
  for (int i = 0; i < 1000; ++i) {
    char* p = opaque_chars(malloc(64));
    free(p);
    char* q = opaque_chars(malloc(64));
    reused += p == q;
    free(q);
  }
  EXPECT_EQ(reused, 0u) << "times out of 1000 that malloc returned the block just freed";
}

TEST(ProcessLayoutTest, TwoRunsDifferUnlessSeeded) {
  std::string first = layout_of_a_new_process("");
  std::string second = layout_of_a_new_process("");
  ASSERT_TRUE(layout_is_complete(first)) << first;
  ASSERT_TRUE(layout_is_complete(second)) << second;
  if (seeded_by_default()) {
    EXPECT_EQ(first, second) << "fuzz mode (seed=1) must reproduce its layout";
  } else {
    EXPECT_NE(first, second) << "two unseeded processes got the same layout";
  }
}

TEST(ProcessLayoutTest, TheSameSeedGivesTheSameLayout) {
  std::string a = layout_of_a_new_process("seed=12345");
  std::string b = layout_of_a_new_process("seed=12345");
  std::string c = layout_of_a_new_process("seed=54321");
  ASSERT_TRUE(layout_is_complete(a)) << a;
  ASSERT_TRUE(layout_is_complete(c)) << c;
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c) << "two seeds gave the same layout";
}

// Sampling into the guarded pool is a layout choice too: with a seed, the
// same allocations are sampled again, or a seeded crash in a sampled block
// would not reproduce. Sampling 1 in 16 makes some of the layout's blocks
// pool blocks, which the run without sampling shows.
TEST(ProcessLayoutTest, TheSameSeedSamplesTheSameBlocks) {
  std::string a = layout_of_a_new_process("seed=777:sample_rate=16");
  std::string b = layout_of_a_new_process("seed=777:sample_rate=16");
  std::string unsampled = layout_of_a_new_process("seed=777:sample_rate=0");
  ASSERT_TRUE(layout_is_complete(a)) << a;
  ASSERT_TRUE(layout_is_complete(unsampled)) << unsampled;
  EXPECT_NE(a, unsampled) << "no block of the layout was sampled";
  EXPECT_EQ(a, b);
}

// The addresses of kCount fresh 64-byte blocks in a forked child.
std::vector<uintptr_t> layout_of_a_forked_child(size_t count) {
  std::vector<uintptr_t> child(count);
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    for (size_t i = 0; i < count; ++i) {
      uintptr_t p = reinterpret_cast<uintptr_t>(opaque(malloc(64)));
      if (write(fds[1], &p, sizeof p) != sizeof p) _exit(1);
    }
    _exit(0);
  }
  close(fds[1]);
  size_t got = 0;
  while (got < count * sizeof(uintptr_t)) {
    ssize_t r = read(fds[0], reinterpret_cast<char*>(child.data()) + got, count * sizeof(uintptr_t) - got);
    if (r <= 0) break;
    got += size_t(r);
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != count * sizeof(uintptr_t) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return {};
  return child;
}

TEST(ProcessLayoutTest, TwoForkedChildrenDifferUnlessSeeded) {
  // Both start from the same heap. Enough blocks that the thread cache
  // (inherited, already shuffled) runs dry and each refills from its
  // generator, which an unseeded child draws afresh.
  constexpr size_t kCount = 4000;
  std::vector<uintptr_t> a = layout_of_a_forked_child(kCount);
  std::vector<uintptr_t> b = layout_of_a_forked_child(kCount);
  ASSERT_EQ(a.size(), kCount);
  ASSERT_EQ(b.size(), kCount);
  size_t same = 0;
  for (size_t i = 0; i < kCount; ++i) same += a[i] == b[i];
  if (seeded_by_default()) {
    EXPECT_EQ(same, kCount) << "seeded children from one heap must make the same choices";
  } else {
    EXPECT_LT(same, kCount / 2) << "blocks at the same address in two children, of " << kCount;
  }
}

}  // namespace heapguard::test
