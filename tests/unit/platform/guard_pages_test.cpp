// SPDX-License-Identifier: Apache-2.0
// Guard pages of the platform layer, through both mechanisms: markers
// (MADV_GUARD_INSTALL, where the kernel has them) and the mprotect fallback
// (forced by a test switch): guards fault, split no mapping with markers and
// are charged against the budget with mprotect, discard what the pages held,
// and past the budget install nothing with one warning.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "platform/platform.h"

namespace heapguard::test {
namespace {

using pal::GuardKind;
using pal::Pal;

size_t page() { return Pal::page_size(); }

size_t mappings_over(uintptr_t from, uintptr_t to) {
  FILE* f = fopen("/proc/self/maps", "r");
  size_t n = 0;
  unsigned long lo, hi;
  char line[512];
  while (fgets(line, sizeof line, f) != nullptr) {
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo < to && hi > from) ++n;
  }
  fclose(f);
  return n;
}

// Four pages [0 1 2 3], page 1 and 2 written.
class GuardPagesTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    fallback_ = GetParam();
    if (fallback_) {
      Pal::disable_guard_markers_for_testing(true);
    } else if (!Pal::has_lightweight_guards()) {
      GTEST_SKIP() << "the kernel has no MADV_GUARD_INSTALL";
    }
    base_ = static_cast<char*>(Pal::map(4 * page()));
    ASSERT_NE(base_, nullptr);
    memset(base_ + page(), 0x11, 2 * page());
  }
  void TearDown() override {
    if (base_ != nullptr) Pal::unmap(base_, 4 * page());
    Pal::disable_guard_markers_for_testing(false);
  }
  GuardKind expected() const { return fallback_ ? GuardKind::Protect : GuardKind::Marker; }
  uintptr_t at(size_t page_index) const { return reinterpret_cast<uintptr_t>(base_) + page_index * page(); }
  bool fallback_ = false;
  char* base_ = nullptr;
};

INSTANTIATE_TEST_SUITE_P(Mechanisms, GuardPagesTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return std::string(info.param ? "MprotectFallback" : "Markers");
                         });

TEST_P(GuardPagesTest, GuardsFaultAndMarkersSplitNothing) {
  size_t before = Pal::guard_splits();
  ASSERT_EQ(Pal::try_guard(base_, page(), 1), expected());
  ASSERT_TRUE(Pal::guard_set(base_ + 3 * page(), page(), expected()));
  EXPECT_EXIT((void)*static_cast<volatile char*>(base_), ::testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EXIT(base_[page() - 1] = 1, ::testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EXIT(base_[3 * page()] = 1, ::testing::KilledBySignal(SIGSEGV), "");
  base_[page()] = 2;
  base_[3 * page() - 1] = 2;
  if (fallback_) {
    EXPECT_EQ(mappings_over(at(0), at(4)), 3u);
    EXPECT_GE(Pal::guard_splits(), before + 1);
    Pal::guard_uncharge(1);
  } else {
    EXPECT_EQ(mappings_over(at(0), at(4)), 1u);
    EXPECT_EQ(Pal::guard_splits(), before) << "markers are not charged";
  }
}

TEST_P(GuardPagesTest, GuardsDiscardContentsAndClearToZero) {
  ASSERT_EQ(Pal::try_guard(base_ + page(), page(), 2), expected());
  ASSERT_TRUE(Pal::guard_clear(base_ + page(), page(), expected()));
  for (size_t i = 0; i < page(); ++i) ASSERT_EQ(base_[page() + i], 0) << i;
  EXPECT_EQ(base_[2 * page()], 0x11) << "the neighbour page is untouched";
  // guard_set on a page next to nothing of that kind works the same way.
  ASSERT_TRUE(Pal::guard_set(base_ + 2 * page(), page(), expected()));
  EXPECT_EXIT((void)*static_cast<volatile char*>(base_ + 2 * page()), ::testing::KilledBySignal(SIGSEGV), "");
  ASSERT_TRUE(Pal::guard_clear(base_ + 2 * page(), page(), expected()));
  EXPECT_EQ(base_[2 * page()], 0);
  base_[2 * page()] = 3;
  if (fallback_) Pal::guard_uncharge(2);
  EXPECT_EQ(mappings_over(at(0), at(4)), 1u) << "cleared guards leave one mapping";
}

TEST_P(GuardPagesTest, NoneOnlyDiscards) {
  EXPECT_TRUE(Pal::guard_set(base_ + page(), page(), GuardKind::None));
  EXPECT_EQ(base_[page()], 0);
  base_[page()] = 1;
  EXPECT_TRUE(Pal::guard_clear(base_ + page(), page(), GuardKind::None));
  EXPECT_EQ(base_[page()], 1);
}

TEST_P(GuardPagesTest, InstallAndRemoveWithoutKnowingTheMechanism) {
  ASSERT_TRUE(Pal::guard_install(base_ + page(), page()));
  EXPECT_EXIT((void)*static_cast<volatile char*>(base_ + page()), ::testing::KilledBySignal(SIGSEGV), "");
  ASSERT_TRUE(Pal::guard_remove(base_ + page(), page()));
  EXPECT_EQ(base_[page()], 0);
  base_[page()] = 1;
  if (fallback_) Pal::guard_uncharge(2);
}

TEST_P(GuardPagesTest, GuardsMoveWithMremap) {
  ASSERT_EQ(Pal::try_guard(base_, page(), 1), expected());
  if (fallback_) {
    // mremap works on one kernel mapping: the caller lifts mprotect guards
    // first (LargeHeap::grow_mapping does).
    ASSERT_TRUE(Pal::guard_clear(base_, page(), expected()));
    Pal::guard_uncharge(1);
    return;
  }
  auto* moved = static_cast<char*>(Pal::remap(base_, 4 * page(), 64 * page()));
  ASSERT_NE(moved, nullptr);
  base_ = nullptr;
  EXPECT_EXIT((void)*static_cast<volatile char*>(moved), ::testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EQ(moved[page()], 0x11);
  moved[63 * page()] = 1;
  Pal::unmap(moved, 64 * page());
}

TEST(GuardBudget, PastTheBudgetNothingIsInstalledAndOneWarningIsPrinted) {
  Pal::disable_guard_markers_for_testing(true);
  char* m = static_cast<char*>(Pal::map(8 * page()));
  ASSERT_NE(m, nullptr);
  testing::internal::CaptureStderr();
  size_t before = Pal::guard_splits();
  Pal::set_guard_split_budget_for_testing(before + 3);
  EXPECT_EQ(Pal::guard_split_budget(), before + 3);
  GuardKind first = Pal::try_guard(m, page(), 2);
  GuardKind second = Pal::try_guard(m + 2 * page(), page(), 2);
  GuardKind third = Pal::try_guard(m + 4 * page(), page(), 1);
  bool legacy = Pal::guard_install(m + 6 * page(), page());
  size_t after = Pal::guard_splits();
  Pal::set_guard_split_budget_for_testing(0);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(first, GuardKind::Protect);
  EXPECT_EQ(second, GuardKind::None) << "2 more would pass the budget";
  EXPECT_EQ(third, GuardKind::Protect) << "1 more still fits";
  EXPECT_FALSE(legacy);
  EXPECT_EQ(after, before + 3);
  m[2 * page()] = 1;  // not a guard
  m[6 * page()] = 1;
  EXPECT_NE(err.find("HeapGuard: WARNING: guard pages thinned"), std::string::npos) << err;
  EXPECT_EQ(err.find("thinned"), err.rfind("thinned")) << "one warning";
  Pal::guard_uncharge(3);
  Pal::unmap(m, 8 * page());
  EXPECT_GT(Pal::guard_split_budget(), 1000u) << "the real budget is back (half of vm.max_map_count)";
  Pal::disable_guard_markers_for_testing(false);
}

TEST(GuardBudget, MarkersDependOnTheKernelOnly) {
  // An mlocked range refuses markers with EINVAL; that must not be taken
  // for a kernel without them.
  bool available = Pal::has_lightweight_guards();
  char* m = static_cast<char*>(Pal::map(2 * page()));
  ASSERT_NE(m, nullptr);
  m[0] = 1;
  if (mlock(m, 2 * page()) == 0) {
    GuardKind k = Pal::try_guard(m, page(), 1);
    if (k == GuardKind::Protect) Pal::guard_uncharge(1);
    EXPECT_NE(k, GuardKind::Marker);
    munlock(m, 2 * page());
  }
  EXPECT_EQ(Pal::has_lightweight_guards(), available);
  Pal::unmap(m, 2 * page());
}

}  // namespace
}  // namespace heapguard::test
