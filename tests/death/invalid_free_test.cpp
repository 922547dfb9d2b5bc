// SPDX-License-Identifier: Apache-2.0
// invalid-free: pointers into the middle of a block, to the stack, to a
// global, to a never-allocated slot of the arena, and through realloc and
// malloc_usable_size, each reported with what the pointer is.
#include <malloc.h>

#include "death_test_util.h"

namespace heapguard::test {

char g_global[64];

// A rarely used class (98320-byte slots, five per 512 KiB slab, slabs
// aligned to their size): the only block of it is fresh, so the slot next
// to it in its slab has never been handed out. Randomized modes may pick
// the last slot; then the one before.
char* neighbour_slot_of_a_lone_90000_byte_block(char* p) {
  constexpr uintptr_t kSlot = 98320, kSlab = uintptr_t{1} << 19, kSlots = 5;
  uintptr_t index = ((reinterpret_cast<uintptr_t>(p) & (kSlab - 1)) - 16) / kSlot;
  return index + 1 < kSlots ? p + kSlot : p - kSlot;
}

class InvalidFreeDeathTest : public DeathTestBase {};

TEST_P(InvalidFreeDeathTest, InteriorPointer) {
  size_t n = GetParam();
  // Small and large blocks alike: the report names the block and the offset.
  const std::string expected =
      report_head("invalid-free") + "0x[0-9a-f]+ "
      "is located 16 bytes inside of [0-9]+-byte region \\[0x[0-9a-f]+,0x[0-9a-f]+\\)\nthe pointer is not the start of "
      "the block\nthe pointer was passed to free\\(\\)\n([^\n]*\n)*SUMMARY: HeapGuard: invalid-free";
  EXPECT_DEATH(free(static_cast<char*>(opaque(malloc(n))) + 16), expected);
}

INSTANTIATE_TEST_SUITE_P(Sizes, InvalidFreeDeathTest, ::testing::ValuesIn(kDeathSizes));

TEST(InvalidFreeKindsDeathTest, StackGlobalAndWildPointers) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  char local[32];
  EXPECT_DEATH(free(opaque(local)), report_head("invalid-free") + "0x[0-9a-f]+ is on the stack of thread T0 \\(a local variable\\), not a heap block\n");
  EXPECT_DEATH(free(opaque(g_global)), report_head("invalid-free") + "0x[0-9a-f]+ is a global of [^\n]*death_invalid_free[^\n]*, not a heap block\n");
  EXPECT_DEATH(free(opaque(reinterpret_cast<void*>(0x1000))),
               report_head("invalid-free", "0x1000") + "0x1000 is not a heap address: nothing is mapped there");
}

TEST(InvalidFreeKindsDeathTest, NeverAllocatedSlotInTheArena) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(90000));
        free(neighbour_slot_of_a_lone_90000_byte_block(p));
      },
      // In debug and fuzz modes the pointer is where the slot's block would
      // start after its left redzone: inside the slot rather than at it.
      report_head("invalid-free") + "0x[0-9a-f]+ (is a heapguard slot that was never "
      "allocated|points into a heapguard slot that is not allocated)");
}

TEST(InvalidFreeKindsDeathTest, PointerIntoTheChunkHeader) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(free(small_header(opaque(malloc(100)))),
               report_head("invalid-free") + "0x[0-9a-f]+ points into the chunk header in "
               "front of a heapguard block\n");
}

TEST(InvalidFreeKindsDeathTest, PointerJustBeforeTheBlock) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // The chunk header in fast and hardened modes, the left redzone in debug
  // and fuzz: never a block start either way.
  EXPECT_DEATH(free(opaque_chars(malloc(100)) - 8), report_head("invalid-free"));
}

TEST(InvalidFreeKindsDeathTest, ReallocAndUsableSizeValidateToo) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  char local[32];
  EXPECT_DEATH((void)opaque(realloc(opaque(local), 100)), "invalid-free on address .*\n.*\nthe pointer was passed to realloc\\(\\)");
  EXPECT_DEATH((void)malloc_usable_size(opaque(local)), "invalid-free on address .*\n.*\nthe pointer was passed to malloc_usable_size\\(\\)");
}

}  // namespace heapguard::test
