// SPDX-License-Identifier: Apache-2.0
// The sealed configuration: parsed once from HEAPGUARD_MODE and
// HEAPGUARD_OPTIONS (ignored under AT_SECURE), then made read-only so that a
// heap overflow cannot weaken it. Parsing never allocates and never fails:
// bad input gets one line on stderr and the default is kept.
#pragma once

#include <cstddef>
#include <cstdint>

#include "config/mode.h"

namespace heapguard {

class MessageBuilder;  // ds/fatal.h

#define HEAPGUARD_UNPAREN(...) __VA_ARGS__

// The enum options' types, declared by their options.def lines so that their
// order is the order of the value names users type:
//   GuardLevel {None, Large, Slabs, All}, PoisonMode {None, Zero, Pattern},
//   UafCheck {None, Bounded, Full}, ReportFormat {Text, Json}.
#define HEAPGUARD_OPTION(type, name, min, max, fast, hardened, debug, fuzz, help)
#define HEAPGUARD_ENUM_OPTION(name, Type, values, fast, hardened, debug, fuzz, help) \
  enum class Type : uint8_t { HEAPGUARD_UNPAREN values };
#define HEAPGUARD_STRING_OPTION(name, help)
#include "config/options.def"
#undef HEAPGUARD_STRING_OPTION
#undef HEAPGUARD_ENUM_OPTION
#undef HEAPGUARD_OPTION
#undef HEAPGUARD_UNPAREN

// Text options (paths) are copied out of the environment into fixed
// arrays, so the sealed page owns them and a later setenv cannot change
// what heapguard uses.
inline constexpr size_t kStringOptionMax = 256;
struct StringOptions {
#define HEAPGUARD_OPTION(type, name, min, max, fast, hardened, debug, fuzz, help)
#define HEAPGUARD_ENUM_OPTION(name, Type, values, fast, hardened, debug, fuzz, help)
#define HEAPGUARD_STRING_OPTION(name, help) char name[kStringOptionMax] = {};
#include "config/options.def"
#undef HEAPGUARD_STRING_OPTION
#undef HEAPGUARD_ENUM_OPTION
#undef HEAPGUARD_OPTION
};

// One int64_t per option, so the fast path loads any option as one word. An
// enum option holds its enumerator's index: read it as
// static_cast<GuardLevel>(options().guard).
struct Options {
  Mode mode = kDefaultMode;
#define HEAPGUARD_OPTION(type, name, min, max, fast, hardened, debug, fuzz, help) int64_t name = hardened;
#define HEAPGUARD_ENUM_OPTION(name, Type, values, fast, hardened, debug, fuzz, help) \
  int64_t name = int64_t(Type::hardened);
#define HEAPGUARD_STRING_OPTION(name, help)
#include "config/options.def"
#undef HEAPGUARD_STRING_OPTION
#undef HEAPGUARD_ENUM_OPTION
#undef HEAPGUARD_OPTION
  StringOptions strings;
};

// Where the text came from; diagnostics name it.
struct OptionSources {
  const char* mode = nullptr;     // HEAPGUARD_MODE value or nullptr
  const char* options = nullptr;  // HEAPGUARD_OPTIONS value or nullptr
};

// Pure: turns the two strings into Options, writing one stderr line per
// problem through `warn`. Exposed for tests and fuzzing.
using WarnFn = void (*)(const char* line, size_t len);
Options parse_options(const OptionSources& sources, WarnFn warn);

// Appends " name=value" for every option, in options.def order, enum values
// by name: the start-up line of verbosity=1 uses it so that a user sees what
// heapguard actually runs with.
void describe_options(const Options& opts, MessageBuilder& out);

// Reads the environment (not under AT_SECURE), parses, seals. Called once by
// the allocator's init, before anything that may allocate.
void init_options();

// The sealed snapshot. Before init_options() it holds the hardened defaults.
const Options& options();
inline const StringOptions& string_options() { return options().strings; }

// The free slab memory kept per size class: options().retain_kb unless
// mallopt(M_TRIM_THRESHOLD) changed it at run time. The run-time value lives
// outside the sealed page (an atomic), so setting it needs no unsealing and
// races with nothing, and it survives init if set before.
int64_t retain_kb();
void set_retain_kb(int64_t kb);

}  // namespace heapguard
