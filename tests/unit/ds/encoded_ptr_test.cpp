// SPDX-License-Identifier: Apache-2.0
// PointerCodec: a stored pointer round-trips at its own location, the stored
// word is never the pointer itself, the same pointer stored at different
// locations gives different words, and a word read back at any other location
// (copied, or moved by a heap bug) decodes to something else.
#include "ds/ds.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>

namespace heapguard::test {
namespace {

constexpr uint64_t kKey = 0x9E3779B97F4A7C15ULL;

constinit PointerCodec g_constant_codec(kKey);

const void* at(uintptr_t a) { return reinterpret_cast<const void*>(a); }

TEST(EncodedPtr, RoundTripsAtItsOwnLocation) {
  PointerCodec codec(kKey);
  for (uintptr_t value : {uintptr_t{0}, uintptr_t{16}, uintptr_t{0x7f0000001010}, uintptr_t{0x555555554000},
                          ~uintptr_t{0}}) {
    for (uintptr_t loc = 0x7f0000000000; loc < 0x7f0000000000 + 64 * 1024; loc += 8) {
      ASSERT_EQ(codec.decode(codec.encode(value, at(loc)), at(loc)), value);
    }
  }
  EXPECT_EQ(g_constant_codec.decode(g_constant_codec.encode(0x1234, at(0x1000)), at(0x1000)), 0x1234u);
}

TEST(EncodedPtr, TheStoredWordIsNotThePointer) {
  PointerCodec codec(kKey);
  for (uintptr_t loc = 0x7f0000000000; loc < 0x7f0000000000 + 64 * 1024; loc += 8) {
    uintptr_t value = loc + 0x1000;  // a heap pointer next to where it is stored
    uintptr_t stored = codec.encode(value, at(loc));
    ASSERT_NE(stored, value);
    // Not a plausible heap address either: the high half is scrambled.
    ASSERT_NE(stored >> 40, value >> 40) << std::hex << stored;
  }
}

TEST(EncodedPtr, DifferentLocationsGiveDifferentStoredWords) {
  PointerCodec codec(kKey);
  const uintptr_t value = 0x7f0000123450;
  std::set<uintptr_t> seen;
  for (uintptr_t loc = 0x7f0000200000; loc < 0x7f0000200000 + 8 * 4096; loc += 8)
    EXPECT_TRUE(seen.insert(codec.encode(value, at(loc))).second) << "location " << std::hex << loc;
}

TEST(EncodedPtr, AWordReadAtAnotherLocationDecodesToSomethingElse) {
  PointerCodec codec(kKey);
  const uintptr_t value = 0x7f0000123450;
  const uintptr_t home = 0x7f0000300008;
  uintptr_t stored = codec.encode(value, at(home));
  for (uintptr_t loc = home - 4096; loc < home + 4096; loc += 8) {
    if (loc == home) continue;
    uintptr_t decoded = codec.decode(stored, at(loc));
    ASSERT_NE(decoded, value) << "location " << std::hex << loc;
    // Far from the original: a plausibility check on the region rejects it.
    uintptr_t distance = decoded > value ? decoded - value : value - decoded;
    ASSERT_GT(distance, uintptr_t{1} << 28) << "location " << std::hex << loc;
  }
}

TEST(EncodedPtr, TheKeyMatters) {
  PointerCodec a(kKey), b(kKey ^ 0x10);
  const uintptr_t value = 0x7f0000123450;
  EXPECT_NE(a.encode(value, at(0x1000)), b.encode(value, at(0x1000)));
  EXPECT_NE(b.decode(a.encode(value, at(0x1000)), at(0x1000)), value);
  PointerCodec c(kKey);
  c.set_key(kKey ^ 0x10);
  EXPECT_EQ(c.decode(b.encode(value, at(0x1000)), at(0x1000)), value);
}

}  // namespace
}  // namespace heapguard::test
