// SPDX-License-Identifier: Apache-2.0
// MessageBuilder: decimal and hex formatting at the extremes, and silent
// truncation at capacity (the report path must never fail).
#include <gtest/gtest.h>

#include <string>

#include "ds/fatal.h"

namespace heapguard::test {

std::string text(const MessageBuilder& m) { return std::string(m.data(), m.size()); }

TEST(MessageBuilder, FormatsNumbers) {
  MessageBuilder m;
  m.dec(0).ch(' ').dec(18446744073709551615ULL).ch(' ').hex(0).ch(' ').hex(0xdeadbeef).ch(' ').hex(~0ULL);
  EXPECT_EQ(text(m), "0 18446744073709551615 0x0 0xdeadbeef 0xffffffffffffffff");
}

TEST(MessageBuilder, PadsToAMinimumWidth) {
  MessageBuilder m;
  m.dec(42, 10).ch('|').dec(1234567890123ULL, 5);
  EXPECT_EQ(text(m), "        42|1234567890123");
}

TEST(MessageBuilder, TruncatesInsteadOfOverflowing) {
  MessageBuilder m;
  for (int i = 0; i < 500; ++i) m.str("abcdefgh");
  EXPECT_EQ(m.size(), 1024u);
  EXPECT_EQ(text(m).substr(0, 8), "abcdefgh");
}

TEST(ErrorCatalogue, NamesAreTheReportContract) {
  EXPECT_STREQ(error_name(ErrorKind::DoubleFree), "double-free");
  EXPECT_STREQ(error_name(ErrorKind::InvalidFree), "invalid-free");
  EXPECT_STREQ(error_name(ErrorKind::MetadataCorruption), "heap-metadata-corruption");
}

}  // namespace heapguard::test
