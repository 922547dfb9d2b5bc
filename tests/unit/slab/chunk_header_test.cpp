// SPDX-License-Identifier: Apache-2.0
// HeaderCodec: round trip of every field, and the keyed checksum rejects a
// flipped bit, a header moved to another address, and a different key.
#include "slab/chunk_header.h"

#include <gtest/gtest.h>

namespace heapguard::test {

ChunkHeader sample() {
  ChunkHeader h;
  h.class_id = 37;
  h.state = ChunkState::Allocated;
  h.origin = Origin::NewArray;
  h.aligned_alias = true;
  h.unused_bytes = kMaxUnusedBytes;
  h.alias_offset16 = 255;
  return h;
}

TEST(ChunkHeader, RoundTripsEveryField) {
  HeaderCodec codec(0x1234567890abcdefULL);
  ChunkHeader h = sample();
  uint64_t w = codec.pack(h, 0x7f0000001008);
  ChunkHeader out;
  ASSERT_TRUE(codec.unpack(w, 0x7f0000001008, &out));
  EXPECT_EQ(out.class_id, h.class_id);
  EXPECT_EQ(out.state, h.state);
  EXPECT_EQ(out.origin, h.origin);
  EXPECT_EQ(out.aligned_alias, h.aligned_alias);
  EXPECT_EQ(out.unused_bytes, h.unused_bytes);
  EXPECT_EQ(out.alias_offset16, h.alias_offset16);
}

TEST(ChunkHeader, EverySingleBitFlipIsDetected) {
  HeaderCodec codec(0x0badc0ffee0ddf00ULL);
  uint64_t w = codec.pack(sample(), 0x7f0000002008);
  ChunkHeader out;
  for (int bit = 0; bit < 64; ++bit)
    EXPECT_FALSE(codec.unpack(w ^ (uint64_t{1} << bit), 0x7f0000002008, &out)) << "bit " << bit;
}

TEST(ChunkHeader, AHeaderCopiedToAnotherAddressIsRejectedAlmostAlways) {
  HeaderCodec codec(0x5eed5eed5eed5eedULL);
  uint64_t w = codec.pack(sample(), 0x7f0000003008);
  ChunkHeader out;
  int accepted = 0;
  for (uintptr_t a = 0x7f0000004008; a < 0x7f0000004008 + 16 * 100000; a += 16)
    accepted += codec.unpack(w, a, &out) ? 1 : 0;
  // A 16-bit checksum lets about 1 in 65536 through.
  EXPECT_LE(accepted, 10);
}

TEST(ChunkHeader, TheKeyChangesTheChecksum) {
  HeaderCodec one(1), two(2);
  uint64_t a = one.pack(sample(), 0x7f0000005008);
  uint64_t b = two.pack(sample(), 0x7f0000005008);
  EXPECT_NE(a, b);
  ChunkHeader out;
  EXPECT_FALSE(two.unpack(a, 0x7f0000005008, &out));
}

}  // namespace heapguard::test
