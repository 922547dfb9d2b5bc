// SPDX-License-Identifier: Apache-2.0
// Attack 3, house of spirit: free a forged block, a fake chunk written into
// memory the attacker controls, so that a later allocation returns that
// memory. The forger copies everything in front of a real block (its
// header, and its left redzone in debug and fuzz) byte for byte, the best a
// forger without the key can do: the copy must not pass for a block at any
// other address. Each attempt is an invalid-free (the address is not a block
// heapguard handed out) or a heap-metadata-corruption (its header fails the
// check), and never yields the fake block.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "death_test_util.h"

namespace heapguard::test {

alignas(4096) char g_fake_area[3 * 4096];

// Copies the bytes in front of the real block `real` of n bytes to the
// front of `fake`.
void forge(char* fake, const char* real, size_t n) {
  size_t prefix = is_large(n) ? 8 : 8 + small_redzone();
  memcpy(opaque(fake - prefix), real - prefix, prefix);
  // The block's own bytes too, slack and all, as far as they are readable.
  memcpy(opaque(fake), real, n < 64 ? n : 64);
}

[[noreturn]] void fail_if_fake_returned(const char* fake, size_t n) {
  drain_quarantine();
  for (int i = 0; i < (is_large(n) ? 8 : 300); ++i) {
    if (opaque_chars(malloc(n)) == fake) {
      const char msg[] = "malloc returned the forged block\n";
      (void)!write(2, msg, sizeof msg - 1);
      _exit(3);
    }
  }
  _exit(0);
}

std::string rejected() { return report_head("(invalid-free|heap-metadata-corruption)"); }

class ForgedBlockTest : public DeathTestBase {};

TEST_P(ForgedBlockTest, FakeBlockInAGlobal) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* real = opaque_chars(malloc(n));
        char* fake = g_fake_area + 4096;
        forge(fake, real, n);
        free(fake);
        fail_if_fake_returned(fake, n);
      },
      report_head("invalid-free") + "0x[0-9a-f]+ is a global of [^\n]*attack_forged_block");
}

TEST_P(ForgedBlockTest, FakeBlockOnTheStack) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        alignas(64) char frame[1024];
        char* real = opaque_chars(malloc(n));
        char* fake = opaque_chars(frame) + 512;
        forge(fake, real, n);
        free(fake);
        fail_if_fake_returned(fake, n);
      },
      report_head("invalid-free") + "0x[0-9a-f]+ is on the stack of thread T0");
}

TEST_P(ForgedBlockTest, FakeBlockInAForeignMapping) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        // Page-aligned like a large block, and big enough to hold one.
        size_t bytes = n + 3 * 4096;
        char* map = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        char* real = opaque_chars(malloc(n));
        char* fake = map + 4096 + (reinterpret_cast<uintptr_t>(real) & 4095);
        forge(fake, real, n);
        free(fake);
        fail_if_fake_returned(fake, n);
      },
      report_head("invalid-free") + "0x[0-9a-f]+ was not allocated by heapguard: it points into an anonymous mapping");
}

TEST_P(ForgedBlockTest, FakeBlockInsideAnotherHeapBlock) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        // The carrier is a live block the attacker writes into legitimately.
        size_t carrier_size = n + 8192;
        char* carrier = opaque_chars(malloc(carrier_size));
        char* real = opaque_chars(malloc(n));
        char* fake = carrier + 4096;
        forge(fake, real, n);
        free(fake);
        fail_if_fake_returned(fake, n);
      },
      rejected());
}

TEST_P(ForgedBlockTest, HeaderCopiedFromAnotherLiveBlockOfTheClass) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        // Two real blocks: b gets a's header, as if to give b a's size or
        // state. The header is keyed to its own address.
        char* a = opaque_chars(malloc(n));
        char* b = opaque_chars(malloc(n));
        size_t prefix = is_large(n) ? 8 : 8 + small_redzone();
        memcpy(opaque(b - prefix), a - prefix, 8);
        free(b);
        fail_if_fake_returned(b, n);
      },
      report_head("heap-metadata-corruption"));
}

INSTANTIATE_TEST_SUITE_P(Sizes, ForgedBlockTest, ::testing::ValuesIn(kDeathSizes));

// The slot next to the only block of a rarely used class (98320-byte
// slots, five per 512 KiB slab, slabs aligned to their size), which has
// never been handed out; the one before if p is the last.
char* neighbour_slot(char* p) {
  constexpr uintptr_t kSlot = 98320, kSlab = uintptr_t{1} << 19, kSlots = 5;
  uintptr_t index = ((reinterpret_cast<uintptr_t>(p) & (kSlab - 1)) - 16) / kSlot;
  return index + 1 < kSlots ? p + kSlot : p - kSlot;
}

// A fake block in a slot of a real slab that was never handed out: the
// address is a plausible block start, its header a faithful copy; only
// out-of-line state knows no block was ever there.
TEST(ForgedSlabBlockTest, FakeBlockInANeverAllocatedSlot) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        constexpr size_t n = 90000;
        char* real = opaque_chars(malloc(n));
        char* fake = neighbour_slot(real);
        forge(fake, real, n);
        free(fake);
        fail_if_fake_returned(fake, n);
      },
      rejected());
}

}  // namespace heapguard::test
