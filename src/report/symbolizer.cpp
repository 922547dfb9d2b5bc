// SPDX-License-Identifier: Apache-2.0
// Symbolizer (see symbolizer.h). The module table is append-only and
// lock-free: a slot is claimed with fetch_add, filled, then published with a
// release store, and never changed again, so names and paths handed out stay
// valid and a signal handler that interrupts a thread filling a slot simply
// claims another (at worst a module is indexed twice). Nothing blocks.
#include "report/symbolizer.h"

#include <atomic>
#include <cstddef>
#include <cstring>

#include "platform/platform.h"
#include "report/elf_reader.h"

namespace heapguard {

namespace {

constexpr unsigned kMaxModules = 256;
constexpr size_t kPathPoolSize = 64 * 1024;
constexpr uint32_t kSlotEmpty = 0;
constexpr uint32_t kSlotReady = 2;

struct Module {
  std::atomic<uint32_t> state{kSlotEmpty};
  uint64_t inode = 0;
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  uintptr_t pseudo_start = 0;  // "[vdso]": its address (no inode to key on)
  const char* path = nullptr;
  bool elf_ok = false;
  ElfImage elf;
};

constinit Module g_modules[kMaxModules];
constinit std::atomic<unsigned> g_module_slots{0};
constinit char g_path_pool[kPathPoolSize] = {};
constinit std::atomic<size_t> g_path_used{0};
constinit std::atomic<bool> g_fallbacks{true};

const char* intern_path(const char* path) {
  size_t len = strlen(path) + 1;
  size_t at = g_path_used.fetch_add(len, std::memory_order_relaxed);
  if (at > kPathPoolSize || len > kPathPoolSize - at) return nullptr;
  memcpy(g_path_pool + at, path, len);
  return g_path_pool + at;
}

bool is_vdso(const pal::MemoryMapping& m) { return strcmp(m.path, "[vdso]") == 0; }

bool same_module(const Module& mod, const pal::MemoryMapping& m) {
  if (mod.path == nullptr) return false;
  if (m.inode == 0) return mod.inode == 0 && mod.pseudo_start == m.start - m.offset &&
                           strcmp(mod.path, m.path) == 0;
  return mod.inode == m.inode && mod.dev_major == m.dev_major && mod.dev_minor == m.dev_minor &&
         strcmp(mod.path, m.path) == 0;
}

// Opens the file behind mapping m, checking it is the one mapped (a binary
// rebuilt while the program runs would give wrong names). The path first;
// then /proc/self/map_files, which reaches a replaced or deleted file where
// the kernel lets us (it may demand CAP_SYS_ADMIN).
int open_mapped_file(const pal::MemoryMapping& m, pal::FileId* id) {
  int fd = pal::open_read_only(m.path);
  if (fd >= 0) {
    if (pal::file_id(fd, id) && id->inode == m.inode) return fd;
    pal::close_fd(fd);
  }
  char link[64];
  char* p = link;
  auto put_hex = [&p](uintptr_t v) {
    char tmp[2 * sizeof v];
    int k = 0;
    do {
      tmp[k++] = "0123456789abcdef"[v & 15];
      v >>= 4;
    } while (v != 0);
    while (k > 0) *p++ = tmp[--k];
  };
  const char prefix[] = "/proc/self/map_files/";
  memcpy(p, prefix, sizeof prefix - 1);
  p += sizeof prefix - 1;
  put_hex(m.start);
  *p++ = '-';
  put_hex(m.end);
  *p = '\0';
  fd = pal::open_read_only(link);
  if (fd >= 0) {
    if (pal::file_id(fd, id) && id->inode == m.inode) return fd;
    pal::close_fd(fd);
  }
  return -1;
}

void index_module(Module* mod, const pal::MemoryMapping& m) {
  if (m.inode == 0) {
    // The vdso is a complete ELF image in memory, symbols included.
    if (is_vdso(m) && m.readable) {
      mod->elf_ok = mod->elf.init(reinterpret_cast<const void*>(m.start), m.end - m.start);
    }
    return;
  }
  pal::FileId id;
  int fd = open_mapped_file(m, &id);
  if (fd < 0) return;
  const void* image = nullptr;
  if (id.size != 0 && id.size <= SIZE_MAX) {
    image = pal::map_file_read_only(fd, static_cast<size_t>(id.size));
  }
  pal::close_fd(fd);
  if (image == nullptr) return;
  // Kept mapped for good: names returned point into it.
  mod->elf_ok = mod->elf.init(image, static_cast<size_t>(id.size));
  if (!mod->elf_ok) pal::unmap_file(image, static_cast<size_t>(id.size));
}

// The table entry for mapping m, created on first sight; nullptr when the
// table or the path pool is full.
const Module* module_for(const pal::MemoryMapping& m) {
  unsigned used = g_module_slots.load(std::memory_order_acquire);
  if (used > kMaxModules) used = kMaxModules;
  for (unsigned i = 0; i < used; ++i) {
    const Module& mod = g_modules[i];
    if (mod.state.load(std::memory_order_acquire) == kSlotReady && same_module(mod, m)) return &mod;
  }
  unsigned slot = g_module_slots.fetch_add(1, std::memory_order_acq_rel);
  if (slot >= kMaxModules) return nullptr;
  Module* mod = &g_modules[slot];
  mod->inode = m.inode;
  mod->dev_major = m.dev_major;
  mod->dev_minor = m.dev_minor;
  mod->pseudo_start = m.inode == 0 ? m.start - m.offset : 0;
  mod->path = intern_path(m.path);
  if (mod->path != nullptr) index_module(mod, m);
  // Published even without a path or symbols, so the work is not redone;
  // an entry without a path never matches.
  mod->state.store(kSlotReady, std::memory_order_release);
  return mod->path != nullptr ? mod : nullptr;
}

void resolve_in(const Module& mod, const pal::MemoryMapping& m, FrameInfo* f) {
  f->module = mod.path;
  uintptr_t bias;
  if (mod.elf_ok && mod.elf.load_bias(m.start, m.offset, pal::Pal::page_size(), &bias)) {
    f->module_offset = f->pc - bias;
    ElfSymbol sym;
    if (mod.elf.find_function(f->module_offset, &sym)) {
      f->function = sym.name;
      f->function_offset = f->module_offset - sym.value;
    }
  } else {
    // No program headers: the file offset, which is the link-time address
    // of the usual layouts (text at vaddr == offset) and still lets a human
    // find the code.
    f->module_offset = f->pc - m.start + m.offset;
  }
}

}  // namespace

unsigned symbolize_frames(const uintptr_t* pcs, unsigned n, FrameInfo* out) {
  pal::ScopedErrno keep;
  for (unsigned i = 0; i < n; ++i) out[i] = FrameInfo{pcs[i], nullptr, nullptr, 0, 0};
  if (n == 0) return 0;
  pal::MapsReader maps;
  if (!maps.open()) return 0;
  unsigned left = n;
  pal::MemoryMapping m;
  while (left > 0 && maps.next(&m)) {
    if (!m.executable || m.path[0] == '\0') continue;
    const Module* mod = nullptr;
    bool looked_up = false;
    for (unsigned i = 0; i < n; ++i) {
      FrameInfo* f = &out[i];
      if (f->module != nullptr || f->pc < m.start || f->pc >= m.end) continue;
      if (!looked_up) {
        mod = module_for(m);
        looked_up = true;
      }
      if (mod == nullptr) break;
      resolve_in(*mod, m, f);
      --left;
    }
  }
  return n - left;
}

bool symbolize_frame(uintptr_t pc, FrameInfo* out) { return symbolize_frames(&pc, 1, out) == 1; }

void set_symbolizer_fallbacks_for_testing(bool enabled) {
  g_fallbacks.store(enabled, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------
// External symbolizer.

namespace {

constexpr unsigned kBatch = 64;            // pcs per tool run
constexpr size_t kInputSize = 80 * 1024;   // request text of one run
constexpr size_t kLineSize = 4096;         // longest answer line kept
constexpr size_t kAnswerStrings = 64 * 1024;  // names and files of one batch
constexpr uint64_t kTimeoutNs = 2000000000u;

enum class Tool { None, LlvmSymbolizer, Addr2line };

// Static: the report path runs on small (alternate signal) stacks. One user
// at a time, by g_external_busy.
struct ExternalState {
  char tool_path[1024];
  FrameInfo frames[kBatch];
  unsigned input_index[kBatch];  // answer k belongs to pc input_index[k]
  char input[kInputSize];
  char line[kLineSize];
  char chunk[4096];
  // Answers of one batch, handed to the sink in index order at its end.
  struct Answer {
    const char* function;
    const char* file;
    unsigned line;
  } answers[kBatch];
  char strings[kAnswerStrings];
  size_t strings_used;
};
constinit ExternalState g_ext = {};
constinit std::atomic<bool> g_external_busy{false};

Tool find_tool(char* path, size_t cap) {
  if (pal::find_in_path("llvm-symbolizer", path, cap)) return Tool::LlvmSymbolizer;
  if (pal::find_in_path("llvm-symbolizer-14", path, cap)) return Tool::LlvmSymbolizer;
  if (g_fallbacks.load(std::memory_order_relaxed)) {
    const char kFixed[] = "/usr/lib/llvm-14/bin/llvm-symbolizer";
    if (pal::is_executable(kFixed) && sizeof kFixed <= cap) {
      memcpy(path, kFixed, sizeof kFixed);
      return Tool::LlvmSymbolizer;
    }
  }
  if (pal::find_in_path("addr2line", path, cap)) return Tool::Addr2line;
  return Tool::None;
}

// Keeps a copy of s for the batch's answers; nullptr when s is nullptr or
// the pool is full (the answer is then "unknown", never truncated).
const char* keep_string(const char* s) {
  if (s == nullptr) return nullptr;
  size_t len = strlen(s) + 1;
  if (len > kAnswerStrings - g_ext.strings_used) return nullptr;
  char* p = g_ext.strings + g_ext.strings_used;
  memcpy(p, s, len);
  g_ext.strings_used += len;
  return p;
}

void record(unsigned i, const char* function, const char* file, unsigned line) {
  g_ext.answers[i].function = keep_string(function);
  g_ext.answers[i].file = keep_string(file);
  g_ext.answers[i].line = g_ext.answers[i].file != nullptr ? line : 0;
}

// Appends to the request buffer; false when it is full.
struct Appender {
  char* buf;
  size_t cap;
  size_t len = 0;
  bool put(const char* s, size_t n) {
    if (n > cap - len) return false;
    memcpy(buf + len, s, n);
    len += n;
    return true;
  }
  bool put(const char* s) { return put(s, strlen(s)); }
  bool put_hex(uintptr_t v) {
    char tmp[2 + 2 * sizeof v];
    char* p = tmp + sizeof tmp;
    do {
      *--p = "0123456789abcdef"[v & 15];
      v >>= 4;
    } while (v != 0);
    *--p = 'x';
    *--p = '0';
    return put(p, static_cast<size_t>(tmp + sizeof tmp - p));
  }
};

// Splits "FILE:LINE[:COL]" (llvm-symbolizer, with_column) or "FILE:LINE"
// possibly followed by " (discriminator N)" (addr2line). "??" is unknown.
void parse_location(char* loc, bool with_column, const char** file, unsigned* line) {
  *file = nullptr;
  *line = 0;
  char* end = loc + strlen(loc);
  if (!with_column) {
    char* space = strstr(loc, " (discriminator");
    if (space != nullptr) end = space;
  }
  *end = '\0';
  char* colon = strrchr(loc, ':');
  if (colon == nullptr) return;
  if (with_column) {
    *colon = '\0';
    colon = strrchr(loc, ':');
    if (colon == nullptr) return;
  }
  *colon = '\0';
  unsigned v = 0;
  for (const char* d = colon + 1; *d >= '0' && *d <= '9'; ++d) v = v * 10 + static_cast<unsigned>(*d - '0');
  if (strcmp(loc, "??") == 0 || loc[0] == '\0') return;
  *file = loc;
  *line = v;
}

// Runs the tool on the request in g_ext.input and hands each answer line to
// on_line. False on a start failure or timeout.
template <typename OnLine>
bool run_tool(const char* const* argv, size_t input_len, uint64_t deadline, OnLine on_line) {
  static const char* const kEnv[] = {"LC_ALL=C", nullptr};
  pal::ChildProcess child;
  if (!pal::spawn_piped(argv[0], argv, kEnv, &child)) return false;
  // The whole request first: one batch is far below the socket buffers, so
  // the tool never blocks on an answer we are not yet reading.
  bool ok = pal::write_with_deadline(child.stdin_fd, g_ext.input, input_len, deadline);
  pal::close_fd(child.stdin_fd);  // EOF: the tool answers and exits
  child.stdin_fd = -1;
  size_t line_len = 0;
  bool overlong = false;
  while (ok) {
    long r = pal::read_with_deadline(child.stdout_fd, g_ext.chunk, sizeof g_ext.chunk, deadline);
    if (r < 0) ok = false;
    if (r <= 0) break;
    for (long i = 0; i < r; ++i) {
      char c = g_ext.chunk[i];
      if (c == '\n') {
        if (overlong) {
          // Dropped, but still counted: answers stay in step with requests.
          memcpy(g_ext.line, "??", 3);
        } else {
          g_ext.line[line_len] = '\0';
        }
        on_line(g_ext.line);
        line_len = 0;
        overlong = false;
      } else if (line_len + 1 < kLineSize) {
        g_ext.line[line_len++] = c;
      } else {
        overlong = true;
      }
    }
  }
  // The exit status is not consulted: a program that ignores SIGCHLD has
  // its children reaped by the kernel, and a complete set of answers is
  // what counts (callers compare answers to requests).
  pal::finish_child(&child, deadline);
  return ok;
}

// llvm-symbolizer: one request line per pc with a module, answered by
// "FUNCTION\nFILE:LINE:COL\n\n" (--inlining=false: one frame each).
bool run_llvm_symbolizer(unsigned count, uint64_t deadline) {
  Appender in{g_ext.input, sizeof g_ext.input};
  unsigned asked = 0;
  for (unsigned i = 0; i < count; ++i) {
    const FrameInfo& f = g_ext.frames[i];
    bool sendable = f.module != nullptr && f.module[0] == '/' && strchr(f.module, '"') == nullptr &&
                    strchr(f.module, '\n') == nullptr;
    size_t mark = in.len;
    if (sendable && in.put("\"") && in.put(f.module) && in.put("\" ") && in.put_hex(f.module_offset) &&
        in.put("\n")) {
      g_ext.input_index[asked++] = i;
    } else {
      in.len = mark;
    }
  }
  if (asked == 0) return true;
  const char* const argv[] = {g_ext.tool_path, "--demangle", "--inlining=false",
                              "--output-style=LLVM", nullptr};
  unsigned answered = 0;
  unsigned phase = 0;  // 0: function line, 1: location line, 2: blank
  char function[512];
  bool ok = run_tool(argv, in.len, deadline, [&](char* line) {
    if (answered >= asked) return;
    if (phase == 0) {
      if (line[0] == '\0') return;  // tolerate extra blank lines
      size_t len = strlen(line);
      if (len >= sizeof function) len = sizeof function - 1;
      memcpy(function, line, len);
      function[len] = '\0';
      phase = 1;
    } else if (phase == 1) {
      const char* file;
      unsigned line_no;
      parse_location(line, /*with_column=*/true, &file, &line_no);
      bool known_fn = strcmp(function, "??") != 0;
      record(g_ext.input_index[answered], known_fn ? function : nullptr, file, line_no);
      ++answered;
      phase = 2;
    } else {
      phase = line[0] == '\0' ? 0 : 1;
      if (phase == 1) {  // no blank separator: this was the next function
        size_t len = strlen(line);
        if (len >= sizeof function) len = sizeof function - 1;
        memcpy(function, line, len);
        function[len] = '\0';
      }
    }
  });
  return ok && answered == asked;
}

// addr2line takes one module per run: "0xOFFSET" lines, answered by
// "FUNCTION\nFILE:LINE".
bool run_addr2line(unsigned count, uint64_t deadline) {
  bool done[kBatch] = {};
  bool all_ok = true;
  for (unsigned i = 0; i < count; ++i) {
    const FrameInfo& f = g_ext.frames[i];
    if (done[i]) continue;
    if (f.module == nullptr || f.module[0] != '/' || !all_ok) {
      done[i] = true;
      continue;
    }
    Appender in{g_ext.input, sizeof g_ext.input};
    unsigned asked = 0;
    for (unsigned j = i; j < count; ++j) {
      const FrameInfo& g = g_ext.frames[j];
      if (done[j] || g.module == nullptr || strcmp(g.module, f.module) != 0) continue;
      in.put_hex(g.module_offset);
      in.put("\n");
      g_ext.input_index[asked++] = j;
      done[j] = true;
    }
    const char* const argv[] = {g_ext.tool_path, "-f", "-C", "-e", f.module, nullptr};
    unsigned answered = 0;
    bool want_function = true;
    char function[512];
    bool ok = run_tool(argv, in.len, deadline, [&](char* line) {
      if (answered >= asked) return;
      if (want_function) {
        size_t len = strlen(line);
        if (len >= sizeof function) len = sizeof function - 1;
        memcpy(function, line, len);
        function[len] = '\0';
        want_function = false;
        return;
      }
      const char* file;
      unsigned line_no;
      parse_location(line, /*with_column=*/false, &file, &line_no);
      bool known_fn = strcmp(function, "??") != 0;
      record(g_ext.input_index[answered], known_fn ? function : nullptr, file, line_no);
      ++answered;
      want_function = true;
    });
    if (!ok || answered != asked) all_ok = false;  // the rest only get "unknown"
  }
  return all_ok;
}

}  // namespace

bool symbolize_external(const uintptr_t* pcs, unsigned n, ExternalFrameFn sink, void* ctx) {
  pal::ScopedErrno keep;
  if (pcs == nullptr || sink == nullptr || n == 0) return false;
  // A setuid program must not exec whatever PATH names.
  if (pal::Pal::is_secure()) return false;
  bool expected = false;
  if (!g_external_busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) return false;
  uint64_t deadline = pal::monotonic_ns() + kTimeoutNs;
  Tool tool = find_tool(g_ext.tool_path, sizeof g_ext.tool_path);
  if (tool == Tool::None) {
    g_external_busy.store(false, std::memory_order_release);
    return false;
  }
  bool ok = true;
  for (unsigned base = 0; base < n; base += kBatch) {
    unsigned count = n - base < kBatch ? n - base : kBatch;
    for (unsigned i = 0; i < count; ++i) g_ext.answers[i] = {nullptr, nullptr, 0};
    g_ext.strings_used = 0;
    // After a failed run (most likely the deadline passed) the rest are
    // unknown, but every pc still gets its one call.
    if (ok) {
      symbolize_frames(pcs + base, count, g_ext.frames);
      ok = tool == Tool::LlvmSymbolizer ? run_llvm_symbolizer(count, deadline)
                                        : run_addr2line(count, deadline);
    }
    for (unsigned i = 0; i < count; ++i) {
      sink(ctx, base + i, g_ext.answers[i].function, g_ext.answers[i].file, g_ext.answers[i].line);
    }
  }
  g_external_busy.store(false, std::memory_order_release);
  return ok;
}

}  // namespace heapguard
