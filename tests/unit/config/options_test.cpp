// SPDX-License-Identifier: Apache-2.0
// Option parsing: modes, per-mode defaults, overrides, separators, and one
// clear warning line (naming the option and the accepted values) for every
// kind of bad input, with the default kept.
#include "config/options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace heapguard::test {

std::vector<std::string>* g_warnings;

void capture(const char* line, size_t len) { g_warnings->emplace_back(line, len); }

Options parse(const char* mode, const char* opts, std::vector<std::string>* warnings) {
  g_warnings = warnings;
  OptionSources s;
  s.mode = mode;
  s.options = opts;
  return parse_options(s, capture);
}

TEST(Options, DefaultsToHardenedWithNoEnvironment) {
  std::vector<std::string> w;
  Options o = parse(nullptr, nullptr, &w);
  EXPECT_EQ(o.mode, Mode::Hardened);
  EXPECT_EQ(o.verbosity, 0);
  EXPECT_EQ(o.retain_kb, 256);
  EXPECT_TRUE(w.empty());
}

TEST(Options, EveryModeIsRecognisedAndSetsItsDefaults) {
  std::vector<std::string> w;
  EXPECT_EQ(parse("fast", nullptr, &w).mode, Mode::Fast);
  EXPECT_EQ(parse("fast", nullptr, &w).retain_kb, 1024);
  EXPECT_EQ(parse("hardened", nullptr, &w).mode, Mode::Hardened);
  EXPECT_EQ(parse("debug", nullptr, &w).mode, Mode::Debug);
  EXPECT_EQ(parse("fuzz", nullptr, &w).mode, Mode::Fuzz);
  EXPECT_TRUE(w.empty());
}

TEST(Options, AnUnknownModeIsNamedAndTheDefaultKept) {
  std::vector<std::string> w;
  Options o = parse("Debug", nullptr, &w);
  EXPECT_EQ(o.mode, Mode::Hardened);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], "HEAPGUARD_MODE='Debug' is not a mode (fast|hardened|debug|fuzz); using hardened");
}

TEST(Options, OverridesWithEverySeparator) {
  std::vector<std::string> w;
  Options o = parse("debug", "verbosity=2:print_stats=true,retain_kb=0 ", &w);
  EXPECT_EQ(o.mode, Mode::Debug);
  EXPECT_EQ(o.verbosity, 2);
  EXPECT_EQ(o.print_stats, 1);
  EXPECT_EQ(o.retain_kb, 0);
  EXPECT_TRUE(w.empty());
}

TEST(Options, BadInputGetsOneClearLineEachAndKeepsDefaults) {
  std::vector<std::string> w;
  Options o = parse(nullptr, "bogus=1:verbosity=7:print_stats=maybe:retain_kb=-5:verbosity:retain_kb=12x", &w);
  EXPECT_EQ(o.verbosity, 0);
  EXPECT_EQ(o.print_stats, 0);
  EXPECT_EQ(o.retain_kb, 256);
  ASSERT_EQ(w.size(), 6u);
  EXPECT_EQ(w[0], "HEAPGUARD_OPTIONS: unknown option 'bogus' ignored (known: verbosity print_stats retain_kb)");
  EXPECT_EQ(w[1], "HEAPGUARD_OPTIONS: verbosity='7' is not an integer in [0, 2]; keeping 0");
  EXPECT_EQ(w[2], "HEAPGUARD_OPTIONS: print_stats='maybe' is not a boolean (0|1|true|false|yes|no); keeping 0");
  EXPECT_EQ(w[3], "HEAPGUARD_OPTIONS: retain_kb='-5' is not an integer in [0, 1048576]; keeping 256");
  EXPECT_EQ(w[4], "HEAPGUARD_OPTIONS: verbosity='' is not an integer in [0, 2]; keeping 0");
  EXPECT_EQ(w[5], "HEAPGUARD_OPTIONS: retain_kb='12x' is not an integer in [0, 1048576]; keeping 256");
}

TEST(Options, HostileLengthsAreHandled) {
  std::vector<std::string> w;
  std::string huge(100000, 'a');
  std::string opts = "verbosity=" + huge + ":" + huge + "=1::::";
  Options o = parse(huge.c_str(), opts.c_str(), &w);
  EXPECT_EQ(o.mode, Mode::Hardened);
  EXPECT_EQ(w.size(), 3u);
  for (const std::string& line : w) EXPECT_LE(line.size(), 1024u);
}

TEST(Options, TheLiveSnapshotIsSealedReadOnly) {
  const Options& o = options();
  EXPECT_DEATH(const_cast<Options&>(o).verbosity = 2, "");
}

}  // namespace heapguard::test
