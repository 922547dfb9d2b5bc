// SPDX-License-Identifier: Apache-2.0
// Option parsing: modes, the per-mode defaults of every option (checked
// against the table of the design, not against options.def itself), every
// option overridden, enum names and order, and one clear warning line
// (naming the option and the accepted values) for every kind of bad input,
// with the default kept.
#include "config/options.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "ds/ds.h"

namespace heapguard::test {

static_assert(std::is_same_v<std::underlying_type_t<GuardLevel>, uint8_t>);
static_assert(std::is_same_v<std::underlying_type_t<PoisonMode>, uint8_t>);
static_assert(std::is_same_v<std::underlying_type_t<UafCheck>, uint8_t>);

std::vector<std::string>* g_warnings;

void capture(const char* line, size_t len) { g_warnings->emplace_back(line, len); }

Options parse(const char* mode, const char* opts, std::vector<std::string>* warnings) {
  g_warnings = warnings;
  OptionSources s;
  s.mode = mode;
  s.options = opts;
  return parse_options(s, capture);
}

// Parses one HEAPGUARD_OPTIONS string in `mode` and expects exactly one
// warning, returning it.
std::string one_warning(const char* mode, const char* opts, Options* out = nullptr) {
  std::vector<std::string> w;
  Options o = parse(mode, opts, &w);
  if (out != nullptr) *out = o;
  EXPECT_EQ(w.size(), 1u) << opts;
  return w.empty() ? std::string() : w[0];
}

// Every option, field by field, so that a failure names the option.
void expect_same(const Options& got, const Options& want, const char* what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(got.mode, want.mode);
  EXPECT_EQ(got.verbosity, want.verbosity);
  EXPECT_EQ(got.print_stats, want.print_stats);
  EXPECT_EQ(got.retain_kb, want.retain_kb);
  EXPECT_EQ(got.quarantine_size_mb, want.quarantine_size_mb);
  EXPECT_EQ(got.guard, want.guard);
  EXPECT_EQ(got.randomize, want.randomize);
  EXPECT_EQ(got.seed, want.seed);
  EXPECT_EQ(got.check_slack, want.check_slack);
  EXPECT_EQ(got.redzone, want.redzone);
  EXPECT_EQ(got.poison, want.poison);
  EXPECT_EQ(got.uaf_check, want.uaf_check);
  EXPECT_EQ(got.alloc_dealloc_mismatch, want.alloc_dealloc_mismatch);
  EXPECT_EQ(got.new_delete_type_mismatch, want.new_delete_type_mismatch);
  EXPECT_EQ(got.guard_below, want.guard_below);
  EXPECT_EQ(got.guard_pool_mb, want.guard_pool_mb);
  EXPECT_EQ(got.sample_rate, want.sample_rate);
  EXPECT_EQ(got.malloc_context_size, want.malloc_context_size);
  EXPECT_EQ(got.fast_unwind, want.fast_unwind);
  EXPECT_EQ(got.halt_on_error, want.halt_on_error);
  EXPECT_EQ(got.abort_on_error, want.abort_on_error);
  EXPECT_EQ(got.exitcode, want.exitcode);
  EXPECT_STREQ(got.strings.log_path, want.strings.log_path);
  EXPECT_EQ(got.report_format, want.report_format);
  EXPECT_EQ(got.symbolize, want.symbolize);
  EXPECT_STREQ(got.strings.suppressions, want.strings.suppressions);
  EXPECT_EQ(got.detect_leaks, want.detect_leaks);
}

// The modes table of the design (docs/options.md), written out by hand.
Options table_defaults(Mode mode) {
  Options o;
  o.mode = mode;
  o.verbosity = 0;
  o.print_stats = 0;
  // The reporter's options: the same in every mode but where noted.
  o.guard_below = 0;
  o.guard_pool_mb = mode == Mode::Fast ? 0 : mode == Mode::Hardened ? 64 : 16384;
  o.sample_rate = mode == Mode::Hardened ? 5000 : 0;
  o.malloc_context_size = mode == Mode::Fast ? 0 : 16;
  o.fast_unwind = mode == Mode::Fast ? 0 : 1;
  o.halt_on_error = 1;
  o.abort_on_error = 1;
  o.exitcode = 1;
  o.report_format = int64_t(ReportFormat::Text);
  o.symbolize = mode == Mode::Debug || mode == Mode::Fuzz ? 1 : 0;
  o.detect_leaks = 0;
  switch (mode) {
    case Mode::Fast:
      o.retain_kb = 1024;
      o.quarantine_size_mb = 0;
      o.guard = int64_t(GuardLevel::Large);
      o.randomize = 0;
      o.seed = 0;
      o.check_slack = 0;
      o.redzone = 0;
      o.poison = int64_t(PoisonMode::None);
      o.uaf_check = int64_t(UafCheck::None);
      o.alloc_dealloc_mismatch = 0;
      o.new_delete_type_mismatch = 0;
      break;
    case Mode::Hardened:
      o.retain_kb = 256;
      o.quarantine_size_mb = 4;
      o.guard = int64_t(GuardLevel::Slabs);
      o.randomize = 1;
      o.seed = 0;
      o.check_slack = 1;
      o.redzone = 0;
      o.poison = int64_t(PoisonMode::Zero);
      o.uaf_check = int64_t(UafCheck::Bounded);
      o.alloc_dealloc_mismatch = 1;
      o.new_delete_type_mismatch = 1;
      break;
    case Mode::Debug:
    case Mode::Fuzz:
      o.retain_kb = 256;
      o.quarantine_size_mb = mode == Mode::Debug ? 256 : 32;
      o.guard = int64_t(GuardLevel::Slabs);
      o.randomize = 1;
      o.seed = mode == Mode::Debug ? 0 : 1;
      o.check_slack = 1;
      o.redzone = 16;
      o.poison = int64_t(PoisonMode::Pattern);
      o.uaf_check = int64_t(UafCheck::Full);
      o.alloc_dealloc_mismatch = 1;
      o.new_delete_type_mismatch = 1;
      break;
  }
  return o;
}

constexpr const char* kKnown =
    "(known: verbosity print_stats retain_kb quarantine_size_mb guard guard_below guard_pool_mb sample_rate randomize "
    "seed check_slack redzone poison "
    "uaf_check alloc_dealloc_mismatch new_delete_type_mismatch malloc_context_size fast_unwind halt_on_error "
    "abort_on_error exitcode log_path report_format symbolize suppressions detect_leaks)";

TEST(Options, DefaultsToHardenedWithNoEnvironment) {
  std::vector<std::string> w;
  expect_same(parse(nullptr, nullptr, &w), table_defaults(Mode::Hardened), "no environment");
  expect_same(parse(nullptr, "", &w), table_defaults(Mode::Hardened), "empty HEAPGUARD_OPTIONS");
  EXPECT_TRUE(w.empty());
}

TEST(Options, TheStructsInitialValuesAreTheHardenedDefaults) {
  // options() returns these before init, so they must be the safe ones.
  expect_same(Options{}, table_defaults(Mode::Hardened), "Options{}");
}

TEST(Options, EveryModeSetsEveryOptionToItsTableDefault) {
  for (Mode m : {Mode::Fast, Mode::Hardened, Mode::Debug, Mode::Fuzz}) {
    std::vector<std::string> w;
    expect_same(parse(mode_name(m), nullptr, &w), table_defaults(m), mode_name(m));
    EXPECT_TRUE(w.empty());
  }
}

TEST(Options, AnUnknownModeIsNamedAndTheDefaultKept) {
  std::vector<std::string> w;
  Options o = parse("Debug", nullptr, &w);
  expect_same(o, table_defaults(Mode::Hardened), "unknown mode");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], "HEAPGUARD_MODE='Debug' is not a mode (fast|hardened|debug|fuzz); using hardened");
}

TEST(Options, EveryOptionCanBeOverriddenInEveryMode) {
  const char* all =
      "verbosity=2:print_stats=true:retain_kb=7:quarantine_size_mb=65536:guard=none:randomize=no:"
      "seed=4611686018427387904:check_slack=false:redzone=2048:poison=pattern:uaf_check=bounded:"
      "alloc_dealloc_mismatch=0:new_delete_type_mismatch=no:guard_below=1:guard_pool_mb=1048576:"
      "sample_rate=1073741824:malloc_context_size=64:fast_unwind=0:halt_on_error=0:abort_on_error=0:exitcode=255:"
      "log_path=/tmp/hg.%p:report_format=json:symbolize=yes:suppressions=supp.txt:detect_leaks=1";
  for (Mode m : {Mode::Fast, Mode::Hardened, Mode::Debug, Mode::Fuzz}) {
    std::vector<std::string> w;
    Options o = parse(mode_name(m), all, &w);
    EXPECT_TRUE(w.empty()) << mode_name(m) << ": " << (w.empty() ? "" : w[0]);
    Options want;
    want.mode = m;
    want.verbosity = 2;
    want.print_stats = 1;
    want.retain_kb = 7;
    want.quarantine_size_mb = 65536;
    want.guard = int64_t(GuardLevel::None);
    want.randomize = 0;
    want.seed = int64_t{1} << 62;
    want.check_slack = 0;
    want.redzone = 2048;
    want.poison = int64_t(PoisonMode::Pattern);
    want.uaf_check = int64_t(UafCheck::Bounded);
    want.alloc_dealloc_mismatch = 0;
    want.new_delete_type_mismatch = 0;
    want.guard_below = 1;
    want.guard_pool_mb = 1048576;
    want.sample_rate = 1073741824;
    want.malloc_context_size = 64;
    want.fast_unwind = 0;
    want.halt_on_error = 0;
    want.abort_on_error = 0;
    want.exitcode = 255;
    std::strcpy(want.strings.log_path, "/tmp/hg.%p");
    want.report_format = int64_t(ReportFormat::Json);
    want.symbolize = 1;
    std::strcpy(want.strings.suppressions, "supp.txt");
    want.detect_leaks = 1;
    expect_same(o, want, mode_name(m));
  }
}

TEST(Options, TheFastModeCanTurnEveryCheckOn) {
  std::vector<std::string> w;
  Options o = parse("fast",
                    "quarantine_size_mb=1 guard=slabs randomize=yes seed=42 check_slack=1 redzone=32 "
                    "poison=zero uaf_check=full alloc_dealloc_mismatch=1 new_delete_type_mismatch=1",
                    &w);
  EXPECT_TRUE(w.empty());
  EXPECT_EQ(o.quarantine_size_mb, 1);
  EXPECT_EQ(static_cast<GuardLevel>(o.guard), GuardLevel::Slabs);
  EXPECT_EQ(o.randomize, 1);
  EXPECT_EQ(o.seed, 42);
  EXPECT_EQ(o.check_slack, 1);
  EXPECT_EQ(o.redzone, 32);
  EXPECT_EQ(static_cast<PoisonMode>(o.poison), PoisonMode::Zero);
  EXPECT_EQ(static_cast<UafCheck>(o.uaf_check), UafCheck::Full);
  EXPECT_EQ(o.alloc_dealloc_mismatch, 1);
  EXPECT_EQ(o.new_delete_type_mismatch, 1);
}

// The names users type map to the C++ enumerators the allocator tests.
TEST(Options, EnumValuesAreParsedByNameIntoTheirEnumerators) {
  struct Case {
    const char* text;
    int64_t Options::*field;
    int64_t want;
  };
  const Case cases[] = {
      {"guard=none", &Options::guard, int64_t(GuardLevel::None)},
      {"guard=large", &Options::guard, int64_t(GuardLevel::Large)},
      {"guard=slabs", &Options::guard, int64_t(GuardLevel::Slabs)},
      {"guard=all", &Options::guard, int64_t(GuardLevel::All)},
      {"report_format=text", &Options::report_format, int64_t(ReportFormat::Text)},
      {"report_format=json", &Options::report_format, int64_t(ReportFormat::Json)},
      {"poison=none", &Options::poison, int64_t(PoisonMode::None)},
      {"poison=zero", &Options::poison, int64_t(PoisonMode::Zero)},
      {"poison=pattern", &Options::poison, int64_t(PoisonMode::Pattern)},
      {"uaf_check=none", &Options::uaf_check, int64_t(UafCheck::None)},
      {"uaf_check=bounded", &Options::uaf_check, int64_t(UafCheck::Bounded)},
      {"uaf_check=full", &Options::uaf_check, int64_t(UafCheck::Full)},
  };
  for (const Case& c : cases) {
    for (const char* mode : {"fast", "debug"}) {
      std::vector<std::string> w;
      Options o = parse(mode, c.text, &w);
      EXPECT_EQ(o.*c.field, c.want) << mode << " " << c.text;
      EXPECT_TRUE(w.empty()) << c.text;
    }
  }
}

TEST(Options, SeparatorsAndEmptyPiecesBetweenThemAreAccepted) {
  std::vector<std::string> w;
  Options o = parse("debug", "::verbosity=2:,print_stats=true,retain_kb=0  \t\nguard=large::", &w);
  EXPECT_TRUE(w.empty());
  EXPECT_EQ(o.mode, Mode::Debug);
  EXPECT_EQ(o.verbosity, 2);
  EXPECT_EQ(o.print_stats, 1);
  EXPECT_EQ(o.retain_kb, 0);
  EXPECT_EQ(static_cast<GuardLevel>(o.guard), GuardLevel::Large);
  EXPECT_EQ(o.quarantine_size_mb, 256);
}

TEST(Options, TheLastValueOfARepeatedOptionWins) {
  std::vector<std::string> w;
  EXPECT_EQ(parse(nullptr, "guard=none:guard=large", &w).guard, int64_t(GuardLevel::Large));
  EXPECT_TRUE(w.empty());
}

TEST(Options, OutOfRangeValuesAreNamedAndTheDefaultKept) {
  Options o;
  EXPECT_EQ(one_warning("debug", "quarantine_size_mb=65537", &o),
            "HEAPGUARD_OPTIONS: quarantine_size_mb='65537' is not an integer in [0, 65536]; keeping 256");
  EXPECT_EQ(o.quarantine_size_mb, 256);
  EXPECT_EQ(one_warning("fuzz", "seed=4611686018427387905", &o),
            "HEAPGUARD_OPTIONS: seed='4611686018427387905' is not an integer in [0, 4611686018427387904]; "
            "keeping 1");
  EXPECT_EQ(o.seed, 1);
  EXPECT_EQ(one_warning(nullptr, "seed=-1", &o),
            "HEAPGUARD_OPTIONS: seed='-1' is not an integer in [0, 4611686018427387904]; keeping 0");
  EXPECT_EQ(o.seed, 0);
  EXPECT_EQ(one_warning(nullptr, "verbosity=7", &o),
            "HEAPGUARD_OPTIONS: verbosity='7' is not an integer in [0, 2]; keeping 0");
  EXPECT_EQ(o.verbosity, 0);
  EXPECT_EQ(one_warning(nullptr, "retain_kb=-5", &o),
            "HEAPGUARD_OPTIONS: retain_kb='-5' is not an integer in [0, 1048576]; keeping 256");
  EXPECT_EQ(o.retain_kb, 256);
  EXPECT_EQ(one_warning("debug", "redzone=2064", &o),
            "HEAPGUARD_OPTIONS: redzone='2064' is not a multiple of 16 in [0, 2048]; keeping 16");
  EXPECT_EQ(o.redzone, 16);
  EXPECT_EQ(one_warning("fast", "randomize=2", &o),
            "HEAPGUARD_OPTIONS: randomize='2' is not a boolean (0|1|true|false|yes|no); keeping 0");
  EXPECT_EQ(o.randomize, 0);
}

TEST(Options, NonNumbersAreNamedAndTheDefaultKept) {
  Options o;
  EXPECT_EQ(one_warning(nullptr, "retain_kb=12x", &o),
            "HEAPGUARD_OPTIONS: retain_kb='12x' is not an integer in [0, 1048576]; keeping 256");
  EXPECT_EQ(o.retain_kb, 256);
  EXPECT_EQ(one_warning(nullptr, "quarantine_size_mb=lots", &o),
            "HEAPGUARD_OPTIONS: quarantine_size_mb='lots' is not an integer in [0, 65536]; keeping 4");
  EXPECT_EQ(o.quarantine_size_mb, 4);
  EXPECT_EQ(one_warning("fuzz", "seed=0x10", &o),
            "HEAPGUARD_OPTIONS: seed='0x10' is not an integer in [0, 4611686018427387904]; keeping 1");
  EXPECT_EQ(o.seed, 1);
  // Past INT64_MAX: rejected, not wrapped around into range.
  EXPECT_EQ(one_warning(nullptr, "seed=18446744073709551617", &o),
            "HEAPGUARD_OPTIONS: seed='18446744073709551617' is not an integer in [0, 4611686018427387904]; "
            "keeping 0");
  EXPECT_EQ(o.seed, 0);
  EXPECT_EQ(one_warning(nullptr, "verbosity=-", &o),
            "HEAPGUARD_OPTIONS: verbosity='-' is not an integer in [0, 2]; keeping 0");
  EXPECT_EQ(one_warning("debug", "redzone=1e3", &o),
            "HEAPGUARD_OPTIONS: redzone='1e3' is not a multiple of 16 in [0, 2048]; keeping 16");
  EXPECT_EQ(o.redzone, 16);
  EXPECT_EQ(one_warning(nullptr, "print_stats=maybe", &o),
            "HEAPGUARD_OPTIONS: print_stats='maybe' is not a boolean (0|1|true|false|yes|no); keeping 0");
  EXPECT_EQ(o.print_stats, 0);
  EXPECT_EQ(one_warning(nullptr, "check_slack=TRUE", &o),
            "HEAPGUARD_OPTIONS: check_slack='TRUE' is not a boolean (0|1|true|false|yes|no); keeping 1");
  EXPECT_EQ(o.check_slack, 1);
}

TEST(Options, ARedzoneThatIsNotAMultipleOf16IsNamedAndTheDefaultKept) {
  Options o;
  EXPECT_EQ(one_warning("debug", "redzone=20", &o),
            "HEAPGUARD_OPTIONS: redzone='20' is not a multiple of 16 in [0, 2048]; keeping 16");
  EXPECT_EQ(o.redzone, 16);
  EXPECT_EQ(one_warning("hardened", "redzone=8", &o),
            "HEAPGUARD_OPTIONS: redzone='8' is not a multiple of 16 in [0, 2048]; keeping 0");
  EXPECT_EQ(o.redzone, 0);
  std::vector<std::string> w;
  EXPECT_EQ(parse("hardened", "redzone=0:redzone=48", &w).redzone, 48);
  EXPECT_TRUE(w.empty());
}

TEST(Options, BadEnumValuesListTheAcceptedNamesAndKeepTheDefault) {
  Options o;
  EXPECT_EQ(one_warning("fast", "guard=every", &o),
            "HEAPGUARD_OPTIONS: guard='every' is not one of none|large|slabs|all; keeping large");
  EXPECT_EQ(static_cast<GuardLevel>(o.guard), GuardLevel::Large);
  EXPECT_EQ(one_warning("debug", "poison=Zero", &o),
            "HEAPGUARD_OPTIONS: poison='Zero' is not one of none|zero|pattern; keeping pattern");
  EXPECT_EQ(static_cast<PoisonMode>(o.poison), PoisonMode::Pattern);
  EXPECT_EQ(one_warning("hardened", "uaf_check=2", &o),
            "HEAPGUARD_OPTIONS: uaf_check='2' is not one of none|bounded|full; keeping bounded");
  EXPECT_EQ(static_cast<UafCheck>(o.uaf_check), UafCheck::Bounded);
  // A prefix, or a name with the separator of the names list, is no name.
  EXPECT_EQ(one_warning("hardened", "guard=slab", &o),
            "HEAPGUARD_OPTIONS: guard='slab' is not one of none|large|slabs|all; keeping slabs");
  EXPECT_EQ(one_warning("hardened", "guard=none|large", &o),
            "HEAPGUARD_OPTIONS: guard='none|large' is not one of none|large|slabs|all; keeping slabs");
  EXPECT_EQ(static_cast<GuardLevel>(o.guard), GuardLevel::Slabs);
}

TEST(Options, UnknownKeysAreNamedWithTheKnownOnes) {
  Options o;
  EXPECT_EQ(one_warning(nullptr, "bogus=1", &o),
            std::string("HEAPGUARD_OPTIONS: unknown option 'bogus' ignored ") + kKnown);
  expect_same(o, table_defaults(Mode::Hardened), "after an unknown key");
  EXPECT_EQ(one_warning(nullptr, "Guard=none", &o),
            std::string("HEAPGUARD_OPTIONS: unknown option 'Guard' ignored ") + kKnown);
  EXPECT_EQ(static_cast<GuardLevel>(o.guard), GuardLevel::Slabs);
  EXPECT_EQ(one_warning(nullptr, "quarantine", &o),
            std::string("HEAPGUARD_OPTIONS: unknown option 'quarantine' ignored ") + kKnown);
}

TEST(Options, AKeyWithoutEqualsIsNamedAndTheDefaultKept) {
  Options o;
  EXPECT_EQ(one_warning(nullptr, "verbosity", &o),
            "HEAPGUARD_OPTIONS: verbosity has no '=value', expected an integer in [0, 2]; keeping 0");
  EXPECT_EQ(one_warning("debug", "uaf_check", &o),
            "HEAPGUARD_OPTIONS: uaf_check has no '=value', expected one of none|bounded|full; keeping full");
  EXPECT_EQ(static_cast<UafCheck>(o.uaf_check), UafCheck::Full);
  EXPECT_EQ(one_warning("hardened", "randomize:verbosity=1", &o),
            "HEAPGUARD_OPTIONS: randomize has no '=value', expected a boolean (0|1|true|false|yes|no); keeping 1");
  EXPECT_EQ(o.randomize, 1);
  EXPECT_EQ(o.verbosity, 1);
  EXPECT_EQ(one_warning("debug", "redzone", &o),
            "HEAPGUARD_OPTIONS: redzone has no '=value', expected a multiple of 16 in [0, 2048]; keeping 16");
}

TEST(Options, EmptyKeysAndValuesAreNamedAndTheDefaultKept) {
  Options o;
  EXPECT_EQ(one_warning(nullptr, "verbosity=", &o),
            "HEAPGUARD_OPTIONS: verbosity='' is not an integer in [0, 2]; keeping 0");
  EXPECT_EQ(one_warning("fast", "guard=", &o),
            "HEAPGUARD_OPTIONS: guard='' is not one of none|large|slabs|all; keeping large");
  EXPECT_EQ(static_cast<GuardLevel>(o.guard), GuardLevel::Large);
  EXPECT_EQ(one_warning(nullptr, "=3", &o), "HEAPGUARD_OPTIONS: '=3' names no option; ignored");
  EXPECT_EQ(one_warning(nullptr, "=", &o), "HEAPGUARD_OPTIONS: '=' names no option; ignored");
  expect_same(o, table_defaults(Mode::Hardened), "after empty pieces");
}

TEST(Options, AWarningKeepsTheValueInForceIncludingAnEarlierOverride) {
  Options o;
  EXPECT_EQ(one_warning("debug", "guard=large:guard=everything", &o),
            "HEAPGUARD_OPTIONS: guard='everything' is not one of none|large|slabs|all; keeping large");
  EXPECT_EQ(static_cast<GuardLevel>(o.guard), GuardLevel::Large);
}

TEST(Options, EveryBadPieceGetsItsOwnLineAndTheGoodOnesApply) {
  std::vector<std::string> w;
  Options o = parse(nullptr, "bogus=1:verbosity=7:guard=none:redzone=17:quarantine_size_mb=64:poison", &w);
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[0], std::string("HEAPGUARD_OPTIONS: unknown option 'bogus' ignored ") + kKnown);
  EXPECT_EQ(w[1], "HEAPGUARD_OPTIONS: verbosity='7' is not an integer in [0, 2]; keeping 0");
  EXPECT_EQ(w[2], "HEAPGUARD_OPTIONS: redzone='17' is not a multiple of 16 in [0, 2048]; keeping 0");
  EXPECT_EQ(w[3], "HEAPGUARD_OPTIONS: poison has no '=value', expected one of none|zero|pattern; keeping zero");
  EXPECT_EQ(o.verbosity, 0);
  EXPECT_EQ(static_cast<GuardLevel>(o.guard), GuardLevel::None);
  EXPECT_EQ(o.redzone, 0);
  EXPECT_EQ(o.quarantine_size_mb, 64);
  EXPECT_EQ(static_cast<PoisonMode>(o.poison), PoisonMode::Zero);
}

TEST(Options, HostileLengthsAreHandled) {
  std::vector<std::string> w;
  std::string huge(100000, 'a');
  std::string digits(100000, '9');
  std::string opts = "verbosity=" + huge + ":" + huge + "=1::::seed=" + digits + ":guard=" + huge;
  Options o = parse(huge.c_str(), opts.c_str(), &w);
  expect_same(o, table_defaults(Mode::Hardened), "hostile lengths");
  EXPECT_EQ(w.size(), 5u);
  for (const std::string& line : w) EXPECT_LE(line.size(), 1024u);
}

TEST(Options, DescribeNamesEveryOptionAndEnumsByName) {
  std::vector<std::string> w;
  MessageBuilder m;
  describe_options(parse("fast", "seed=4611686018427387904:uaf_check=bounded:suppressions='/x:y'", &w), m);
  EXPECT_EQ(std::string(m.data(), m.size()),
            " verbosity=0 print_stats=0 retain_kb=1024 quarantine_size_mb=0 guard=large"
            " guard_below=0 guard_pool_mb=0 sample_rate=0 randomize=0 seed=4611686018427387904 check_slack=0 redzone=0"
            " poison=none uaf_check=bounded alloc_dealloc_mismatch=0 new_delete_type_mismatch=0"
            " malloc_context_size=0 fast_unwind=0 halt_on_error=1 abort_on_error=1 exitcode=1 log_path="
            " report_format=text symbolize=0 suppressions=/x:y detect_leaks=0");
}

// Paths are copied whole; quotes let them hold separators; a path too long
// for the sealed copy is named and the previous value kept.
TEST(Options, TextOptionsTakePathsQuotedOrNot) {
  std::vector<std::string> w;
  Options o = parse("debug", "log_path=/tmp/a b:suppressions=\"/tmp/x:y z\":verbosity=1", &w);
  EXPECT_EQ(w.size(), 1u);  // "b" is a key without a value
  EXPECT_STREQ(o.strings.log_path, "/tmp/a");
  EXPECT_STREQ(o.strings.suppressions, "/tmp/x:y z");
  EXPECT_EQ(o.verbosity, 1);
  o = parse("debug", "log_path='unterminated:rest", &w);
  EXPECT_STREQ(o.strings.log_path, "unterminated:rest");
  std::string long_path = "log_path=/tmp/first:log_path=" + std::string(kStringOptionMax, 'p');
  Options kept;
  EXPECT_EQ(one_warning("hardened", long_path.c_str(), &kept).substr(0, 60),
            std::string("HEAPGUARD_OPTIONS: log_path='") + std::string(31, 'p'));
  EXPECT_STREQ(kept.strings.log_path, "/tmp/first");
  EXPECT_EQ(one_warning("hardened", "suppressions", &kept),
            "HEAPGUARD_OPTIONS: suppressions has no '=value', expected a text of at most 255 bytes; keeping ''");
  // Empty is a value: back to stderr.
  o = parse("debug", "log_path=/tmp/x:log_path=", &w);
  EXPECT_STREQ(o.strings.log_path, "");
}

// The unit tests run with HEAPGUARD_MODE set by CTest (and not AT_SECURE).
TEST(Options, TheLiveSnapshotFollowsTheEnvironment) {
  const char* mode = std::getenv("HEAPGUARD_MODE");
  const Options& o = options();
  EXPECT_STREQ(mode_name(o.mode), mode != nullptr ? mode : "hardened");
}

TEST(Options, TheLiveSnapshotIsSealedReadOnly) {
  const Options& o = options();
  EXPECT_DEATH(const_cast<Options&>(o).verbosity = 2, "");
  EXPECT_DEATH(const_cast<Options&>(o).guard = int64_t(GuardLevel::None), "");
}

}  // namespace heapguard::test
