// SPDX-License-Identifier: Apache-2.0
// Option parsing and sealing. Runs during the first malloc, possibly inside
// the dynamic loader, so it uses no libc that may allocate: no getenv, no
// strtol (locale), no stdio.
#include "config/options.h"

#include <atomic>

#include "core/core.h"
#include "ds/ds.h"
#include "platform/platform.h"

namespace heapguard {
namespace {

enum class Type { Bool, Int, Aligned, Enum, String };

// Redzones and other Aligned values are laid out in whole granules.
constexpr int64_t kAlignedGranule = 16;

// An enum option's accepted names, "none|large|slabs": its enumerator list
// from options.def (stringised, "(None, Large, Slabs)"), lower-cased. Built
// at compile time from the same tokens that declare the C++ enum, so the two
// cannot disagree on names or order.
struct EnumNames {
  char text[64] = {};
  int64_t count = 0;
};

constexpr EnumNames enum_names(const char* list) {
  EnumNames names;
  size_t n = 0;
  names.count = 1;
  for (const char* p = list; *p != '\0'; ++p) {
    char c = *p;
    if (c == '(' || c == ')' || c == ' ') continue;
    if (c == ',') {
      c = '|';
      ++names.count;
    } else if (c >= 'A' && c <= 'Z') {
      c = char(c - 'A' + 'a');
    }
    names.text[n++] = c;
  }
  // Writing past the array is not a constant expression: too long a list
  // fails to compile instead of losing its terminator.
  names.text[n] = '\0';
  return names;
}

struct OptionInfo {
  const char* name;
  Type type;
  int64_t min, max;
  int64_t defaults[4];  // indexed by Mode
  int64_t Options::*field;  // all but String
  EnumNames names;           // Enum only
  char (StringOptions::*text)[kStringOptionMax];  // String only
};

constexpr OptionInfo kOptions[] = {
#define HEAPGUARD_OPTION(type, name, min, max, fast, hardened, debug, fuzz, help) \
  {#name, Type::type, min, max, {fast, hardened, debug, fuzz}, &Options::name, {}, nullptr},
#define HEAPGUARD_ENUM_OPTION(name, EnumType, values, fast, hardened, debug, fuzz, help)                  \
  {#name, Type::Enum, 0, enum_names(#values).count - 1,                                                   \
   {int64_t(EnumType::fast), int64_t(EnumType::hardened), int64_t(EnumType::debug), int64_t(EnumType::fuzz)}, \
   &Options::name, enum_names(#values), nullptr},
#define HEAPGUARD_STRING_OPTION(name, help) \
  {#name, Type::String, 0, 0, {0, 0, 0, 0}, nullptr, {}, &StringOptions::name},
#include "config/options.def"
#undef HEAPGUARD_STRING_OPTION
#undef HEAPGUARD_ENUM_OPTION
#undef HEAPGUARD_OPTION
};

consteval bool defaults_are_valid() {
  for (const OptionInfo& info : kOptions) {
    for (int64_t d : info.defaults) {
      if (d < info.min || d > info.max) return false;
      if (info.type == Type::Aligned && d % kAlignedGranule != 0) return false;
    }
  }
  return true;
}
static_assert(defaults_are_valid(), "an options.def default is outside its own range");

constexpr Mode kModes[] = {Mode::Fast, Mode::Hardened, Mode::Debug, Mode::Fuzz};

constinit Sealed<Options> g_sealed{};
constinit bool g_initialised = false;
constinit std::atomic<int64_t> g_retain_kb_override{-1};

bool equal(const char* a, size_t alen, const char* b) {
  size_t i = 0;
  for (; i < alen; ++i)
    if (b[i] == '\0' || a[i] != b[i]) return false;
  return b[i] == '\0';
}

bool is_separator(char c) { return c == ':' || c == ',' || c == ' ' || c == '\t' || c == '\n'; }

// Decimal only, optionally negative; no strtol (it consults the locale).
bool parse_int(const char* s, size_t len, int64_t* out) {
  constexpr uint64_t kLimit = uint64_t(INT64_MAX);
  bool negative = len > 0 && s[0] == '-';
  size_t i = negative ? 1 : 0;
  if (i == len) return false;
  uint64_t v = 0;
  for (; i < len; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    uint64_t digit = uint64_t(s[i] - '0');
    if (v > (kLimit - digit) / 10) return false;
    v = v * 10 + digit;
  }
  *out = negative ? -int64_t(v) : int64_t(v);
  return true;
}

bool parse_bool(const char* s, size_t len, int64_t* out) {
  if (equal(s, len, "1") || equal(s, len, "true") || equal(s, len, "yes")) return (*out = 1), true;
  if (equal(s, len, "0") || equal(s, len, "false") || equal(s, len, "no")) return (*out = 0), true;
  return false;
}

bool parse_enum(const EnumNames& names, const char* s, size_t len, int64_t* out) {
  const char* name = names.text;
  for (int64_t index = 0; index < names.count; ++index) {
    size_t n = 0;
    while (name[n] != '|' && name[n] != '\0') ++n;
    if (n == len) {
      size_t i = 0;
      while (i < len && s[i] == name[i]) ++i;
      if (i == len) return (*out = index), true;
    }
    name += n + 1;
  }
  return false;
}

bool parse_value(const OptionInfo& info, const char* s, size_t len, int64_t* out) {
  int64_t v = 0;
  bool ok = false;
  switch (info.type) {
    case Type::Bool: ok = parse_bool(s, len, &v); break;
    case Type::Int: ok = parse_int(s, len, &v); break;
    case Type::Aligned: ok = parse_int(s, len, &v) && v % kAlignedGranule == 0; break;
    case Type::Enum: ok = parse_enum(info.names, s, len, &v); break;
    case Type::String: return false;  // parsed by parse_text
  }
  if (!ok || v < info.min || v > info.max) return false;
  *out = v;
  return true;
}

// A text value: any bytes but NUL, at most kStringOptionMax - 1 of them.
bool parse_text(const char* s, size_t len, char* out) {
  if (len >= kStringOptionMax) return false;
  for (size_t i = 0; i < len; ++i) out[i] = s[i];
  out[len] = '\0';
  return true;
}

void append(MessageBuilder& m, const char* s, size_t len) {
  for (size_t i = 0; i < len; ++i) m.ch(s[i]);
}

// The value as a user writes it: an enum by name, anything else in decimal.
void append_value(MessageBuilder& m, const OptionInfo& info, int64_t v) {
  if (info.type != Type::Enum) {
    m.dec(uint64_t(v));
    return;
  }
  const char* name = info.names.text;
  for (int64_t index = 0; index < v && *name != '\0'; ++index) {
    while (*name != '|' && *name != '\0') ++name;
    if (*name == '|') ++name;
  }
  while (*name != '|' && *name != '\0') m.ch(*name++);
}

void append_accepted(MessageBuilder& m, const OptionInfo& info) {
  switch (info.type) {
    case Type::Bool: m.str("a boolean (0|1|true|false|yes|no)"); break;
    case Type::Int: m.str("an integer in [").dec(uint64_t(info.min)).str(", ").dec(uint64_t(info.max)).ch(']'); break;
    case Type::Aligned:
      m.str("a multiple of ").dec(uint64_t(kAlignedGranule)).str(" in [").dec(uint64_t(info.min)).str(", ");
      m.dec(uint64_t(info.max)).ch(']');
      break;
    case Type::Enum: m.str("one of ").str(info.names.text); break;
    case Type::String: m.str("a text of at most ").dec(kStringOptionMax - 1).str(" bytes"); break;
  }
}

void emit(WarnFn warn, const MessageBuilder& m) { warn(m.data(), m.size()); }

void apply_one(Options& opts, const char* key, size_t klen, const char* val, size_t vlen, bool has_value,
               WarnFn warn) {
  if (klen == 0) {
    MessageBuilder m;
    m.str("HEAPGUARD_OPTIONS: '=");
    append(m, val, vlen);
    m.str("' names no option; ignored");
    emit(warn, m);
    return;
  }
  for (const OptionInfo& info : kOptions) {
    if (!equal(key, klen, info.name)) continue;
    if (info.type == Type::String) {
      if (has_value && parse_text(val, vlen, opts.strings.*info.text)) return;
    } else if (has_value && parse_value(info, val, vlen, &(opts.*info.field))) {
      return;
    }
    MessageBuilder m;
    m.str("HEAPGUARD_OPTIONS: ").str(info.name);
    if (has_value) {
      m.str("='");
      append(m, val, vlen);
      m.str("' is not ");
    } else {
      m.str(" has no '=value', expected ");
    }
    append_accepted(m, info);
    m.str("; keeping ");
    if (info.type == Type::String) {
      m.ch('\'').str(opts.strings.*info.text).ch('\'');
    } else {
      append_value(m, info, opts.*info.field);
    }
    emit(warn, m);
    return;
  }
  MessageBuilder m;
  m.str("HEAPGUARD_OPTIONS: unknown option '");
  append(m, key, klen);
  m.str("' ignored (known:");
  for (const OptionInfo& info : kOptions) m.ch(' ').str(info.name);
  m.ch(')');
  emit(warn, m);
}

void stderr_warn(const char* line, size_t len) {
  MessageBuilder m;
  append(m, line, len);
  print_line(m);
}

}  // namespace

Options parse_options(const OptionSources& sources, WarnFn warn) {
  Options opts;
  if (sources.mode != nullptr) {
    size_t len = 0;
    while (sources.mode[len] != '\0') ++len;
    bool found = false;
    for (Mode m : kModes) {
      if (equal(sources.mode, len, mode_name(m))) {
        opts.mode = m;
        found = true;
      }
    }
    if (!found) {
      MessageBuilder m;
      m.str("HEAPGUARD_MODE='");
      append(m, sources.mode, len);
      m.str("' is not a mode (fast|hardened|debug|fuzz); using ").str(mode_name(kDefaultMode));
      emit(warn, m);
    }
  }
  for (const OptionInfo& info : kOptions)
    if (info.type != Type::String) opts.*info.field = info.defaults[static_cast<int>(opts.mode)];

  const char* s = sources.options;
  if (s == nullptr) return opts;
  while (*s != '\0') {
    while (is_separator(*s)) ++s;
    if (*s == '\0') break;
    const char* key = s;
    while (*s != '\0' && *s != '=' && !is_separator(*s)) ++s;
    size_t klen = size_t(s - key);
    const char* val = s;
    size_t vlen = 0;
    bool has_value = *s == '=';
    if (has_value) {
      val = ++s;
      if (*s == '"' || *s == '\'') {
        // Quoted: runs to the matching quote, separators included (a path
        // with ':' in it). An unterminated quote takes the rest.
        char quote = *s;
        val = ++s;
        while (*s != '\0' && *s != quote) ++s;
        vlen = size_t(s - val);
        if (*s == quote) ++s;
      } else {
        while (*s != '\0' && !is_separator(*s)) ++s;
        vlen = size_t(s - val);
      }
    }
    apply_one(opts, key, klen, val, vlen, has_value, warn);
  }
  return opts;
}

void describe_options(const Options& opts, MessageBuilder& out) {
  for (const OptionInfo& info : kOptions) {
    out.ch(' ').str(info.name).ch('=');
    if (info.type == Type::String) out.str(opts.strings.*info.text);
    else append_value(out, info, opts.*info.field);
  }
}

void init_options() {
  if (g_initialised) return;
  OptionSources sources;
  // Under AT_SECURE the environment belongs to a possibly hostile caller:
  // no weaker mode, no log file of its choosing.
  if (!pal::Pal::is_secure()) {
    sources.mode = pal::Pal::env_lookup("HEAPGUARD_MODE");
    sources.options = pal::Pal::env_lookup("HEAPGUARD_OPTIONS");
  }
  g_sealed.value = parse_options(sources, stderr_warn);
  g_initialised = true;
  g_sealed.seal();
}

const Options& options() { return g_sealed.value; }

int64_t retain_kb() {
  int64_t v = g_retain_kb_override.load(std::memory_order_relaxed);
  return v >= 0 ? v : g_sealed.value.retain_kb;
}

void set_retain_kb(int64_t kb) { g_retain_kb_override.store(kb < 0 ? 0 : kb, std::memory_order_relaxed); }

}  // namespace heapguard
