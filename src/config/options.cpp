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

enum class Type { Bool, Int };

struct OptionInfo {
  const char* name;
  Type type;
  int64_t min, max;
  int64_t defaults[4];  // indexed by Mode
  int64_t Options::*field;
};

constexpr OptionInfo kOptions[] = {
#define HEAPGUARD_OPTION(type, name, min, max, fast, hardened, debug, fuzz, help) \
  {#name, Type::type, min, max, {fast, hardened, debug, fuzz}, &Options::name},
#include "config/options.def"
#undef HEAPGUARD_OPTION
};

constexpr Mode kModes[] = {Mode::Fast, Mode::Hardened, Mode::Debug, Mode::Fuzz};

// One page, so that sealing it protects nothing else.
struct alignas(4096) SealedOptions {
  Options value;
  char pad[4096 - sizeof(Options)];
};
static_assert(sizeof(SealedOptions) == 4096);
constinit SealedOptions g_sealed{};
constinit bool g_initialised = false;
constinit std::atomic<int64_t> g_retain_kb_override{-1};

bool equal(const char* a, size_t alen, const char* b) {
  size_t i = 0;
  for (; i < alen; ++i)
    if (b[i] == '\0' || a[i] != b[i]) return false;
  return b[i] == '\0';
}

bool is_separator(char c) { return c == ':' || c == ',' || c == ' ' || c == '\t' || c == '\n'; }

bool parse_int(const char* s, size_t len, int64_t* out) {
  if (len == 0 || len > 18) return false;
  bool negative = s[0] == '-';
  size_t i = negative ? 1 : 0;
  if (i == len) return false;
  int64_t v = 0;
  for (; i < len; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = negative ? -v : v;
  return true;
}

bool parse_bool(const char* s, size_t len, int64_t* out) {
  if (equal(s, len, "1") || equal(s, len, "true") || equal(s, len, "yes")) return (*out = 1), true;
  if (equal(s, len, "0") || equal(s, len, "false") || equal(s, len, "no")) return (*out = 0), true;
  return false;
}

void append(MessageBuilder& m, const char* s, size_t len) {
  for (size_t i = 0; i < len; ++i) m.ch(s[i]);
}

void emit(WarnFn warn, const MessageBuilder& m) { warn(m.data(), m.size()); }

void apply_one(Options& opts, const char* key, size_t klen, const char* val, size_t vlen, bool has_value,
               WarnFn warn) {
  for (const OptionInfo& info : kOptions) {
    if (!equal(key, klen, info.name)) continue;
    int64_t v = 0;
    bool ok = has_value && (info.type == Type::Bool ? parse_bool(val, vlen, &v) : parse_int(val, vlen, &v)) &&
              v >= info.min && v <= info.max;
    if (ok) {
      opts.*info.field = v;
      return;
    }
    MessageBuilder m;
    m.str("HEAPGUARD_OPTIONS: ").str(info.name).str("='");
    append(m, val, vlen);
    if (info.type == Type::Bool) m.str("' is not a boolean (0|1|true|false|yes|no)");
    else m.str("' is not an integer in [").dec(uint64_t(info.min)).str(", ").dec(uint64_t(info.max)).ch(']');
    m.str("; keeping ").dec(uint64_t(opts.*info.field));
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
  for (const OptionInfo& info : kOptions) opts.*info.field = info.defaults[static_cast<int>(opts.mode)];

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
      while (*s != '\0' && !is_separator(*s)) ++s;
      vlen = size_t(s - val);
    }
    apply_one(opts, key, klen, val, vlen, has_value, warn);
  }
  return opts;
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
  pal::Pal::set_read_only(&g_sealed, sizeof g_sealed, true);
}

const Options& options() { return g_sealed.value; }

int64_t retain_kb() {
  int64_t v = g_retain_kb_override.load(std::memory_order_relaxed);
  return v >= 0 ? v : g_sealed.value.retain_kb;
}

void set_retain_kb(int64_t kb) { g_retain_kb_override.store(kb < 0 ? 0 : kb, std::memory_order_relaxed); }

}  // namespace heapguard
