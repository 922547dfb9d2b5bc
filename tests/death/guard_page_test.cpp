// SPDX-License-Identifier: Apache-2.0
// Guard pages around large blocks (every mode: guard=large or slabs). The
// block ends against its trailing guard page, so an overflow that outruns
// the slack faults at once, and the page below the header's page is the
// leading guard. The fault handler turns each fault into a report naming
// the block, then aborts.
#include <signal.h>

#include <cstring>

#include "death_test_util.h"

namespace heapguard::test {

class LargeGuardDeathTest : public DeathTestBase {};

TEST_P(LargeGuardDeathTest, WritePastTheLastPageFaults) {
  size_t n = GetParam();
  EXPECT_EXIT(
      {
        char* p = opaque_chars(malloc(n));
        uintptr_t end = reinterpret_cast<uintptr_t>(p) + n;
        poke(reinterpret_cast<char*>((end + 4095) & ~uintptr_t{4095}), 1);
        exit(0);
      },
      ::testing::KilledBySignal(SIGABRT),
      fault_report("heap-buffer-overflow", "WRITE", "0x[0-9a-f]+ is located [0-9]+ bytes to the right of " + region(n)));
}

TEST_P(LargeGuardDeathTest, WriteBelowTheHeaderPageFaults) {
  size_t n = GetParam();
  EXPECT_EXIT(
      {
        char* p = opaque_chars(malloc(n));
        uintptr_t header_page = (reinterpret_cast<uintptr_t>(p) - 8) & ~uintptr_t{4095};
        poke(reinterpret_cast<char*>(header_page - 1), 1);
        exit(0);
      },
      ::testing::KilledBySignal(SIGABRT),
      fault_report("heap-buffer-overflow", "WRITE", "0x[0-9a-f]+ is located [0-9]+ bytes to the left of " + region(n)));
}

INSTANTIATE_TEST_SUITE_P(Sizes, LargeGuardDeathTest, ::testing::Values(size_t{300001}, size_t{1} << 20, size_t{150000}));

}  // namespace heapguard::test
