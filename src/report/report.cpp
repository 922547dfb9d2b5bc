// SPDX-License-Identifier: Apache-2.0
// The reporter; see report.h and docs/report-format.md. Everything a report
// needs lives in static storage guarded by one lock (one report at a time),
// so the report path costs little stack (it may run on a signal handler's
// alternate stack), never allocates, and takes no allocator lock:
//   report_error
//     lock (re-entry on this thread aborts)
//     gather stacks: current (given, or pal::capture_stack_slow), allocated
//       and freed (g_stack_depot)
//     suppressed and recoverable? unlock, return
//     write the raw report (text or JSON) through g_out to the sink
//     symbolize=1: llvm-symbolizer/addr2line, then the source-locations block
//     halt (abort or _exit(exitcode)) or unlock and return
#include "report/report.h"

#include <atomic>

#include "config/config.h"
#include "platform/platform.h"

namespace heapguard {
namespace {

constexpr const char* kLeakClass = "memory-leak";
constexpr size_t kMaxName = 512;

// The three stacks of a report, in the order they are printed.
enum StackSlot : unsigned { kCurrent, kAllocated, kFreed, kSlots };

struct Stack {
  uintptr_t pcs[pal::kMaxStackFrames];
  unsigned n;
  uint32_t thread;
  bool present;  // false: heading omitted (not known)
};

constinit Stack g_stacks[kSlots] = {};
constinit ReportBuffer g_out{2};
constinit JsonWriter g_json{g_out};

// The report lock: the owner's thread id (0 = free), waited on with a
// futex, and the process it was taken in. A lock inherited through fork from
// a thread that does not exist in the child is taken over.
alignas(4) constinit uint32_t g_lock_word = 0;
constinit std::atomic<int> g_lock_pid{0};

constinit std::atomic<uint32_t> g_errors{0};
constinit std::atomic<ThreadNumberFn> g_thread_source{nullptr};

constinit bool g_test_settings_set = false;
constinit ReportSettings g_test_settings{};

// heapguard's own module (as the symbolizer names it), found from the
// address of report_error: frames in it are heapguard's, not the program's.
constinit char g_self_module[kMaxName] = {};
constinit bool g_self_module_known = false;

void lock_report() {
  std::atomic_ref<uint32_t> word(g_lock_word);
  const uint32_t self = pal::Pal::thread_id();
  const int pid = pal::Pal::process_id();
  for (;;) {
    uint32_t owner = 0;
    if (word.compare_exchange_strong(owner, self, std::memory_order_acquire)) break;
    // An error while this thread is reporting (the reporter itself broke, or
    // a signal handler freed badly): nothing can be trusted; stop at once.
    if (owner == self) pal::Pal::abort_process();
    int owner_pid = g_lock_pid.load(std::memory_order_acquire);
    if (owner_pid != 0 && owner_pid != pid) {
      // Held by a thread of the parent when it forked: it never unlocks here.
      if (word.compare_exchange_strong(owner, self, std::memory_order_acquire)) break;
      continue;
    }
    pal::Pal::futex_wait(&g_lock_word, owner);
  }
  g_lock_pid.store(pid, std::memory_order_release);
}

void unlock_report() {
  g_lock_pid.store(0, std::memory_order_relaxed);
  std::atomic_ref<uint32_t>(g_lock_word).store(0, std::memory_order_release);
  pal::Pal::futex_wake_one(&g_lock_word);
}

bool same(const char* a, const char* b) {
  while (*a != '\0' && *a == *b) {
    ++a;
    ++b;
  }
  return *a == *b;
}

bool starts_with(const char* s, const char* prefix) {
  while (*prefix != '\0') {
    if (*s++ != *prefix++) return false;
  }
  return true;
}

const char* basename_of(const char* path) {
  const char* base = path;
  for (const char* p = path; *p != '\0'; ++p) {
    if (*p == '/') base = p + 1;
  }
  return base;
}

void find_self_module() {
  if (g_self_module_known) return;
  FrameInfo info{};
  if (!symbolize_frame(reinterpret_cast<uintptr_t>(&report_error), &info) || info.module == nullptr) return;
  size_t i = 0;
  for (; info.module[i] != '\0' && i + 1 < kMaxName; ++i) g_self_module[i] = info.module[i];
  g_self_module[i] = '\0';
  g_self_module_known = true;
}

// The entry points through which a program calls into heapguard: the frame
// #0 of a stack captured inside malloc or free is one of them.
bool is_api_entry(const char* f) {
  static constexpr const char* kNames[] = {
      "malloc", "free", "calloc", "realloc", "reallocarray", "memalign", "aligned_alloc", "posix_memalign",
      "valloc", "pvalloc", "malloc_usable_size", "free_sized", "free_aligned_sized", "cfree"};
  for (const char* n : kNames) {
    if (same(f, n)) return true;
  }
  // operator new / delete, mangled (.symtab) or demangled.
  return starts_with(f, "_Znw") || starts_with(f, "_Zna") || starts_with(f, "_Zdl") || starts_with(f, "_Zda") ||
         starts_with(f, "operator new") || starts_with(f, "operator delete") || starts_with(f, "_ZN9heapguard") ||
         starts_with(f, "heapguard::") || starts_with(f, "heapguard_");
}

// Whether a frame is heapguard's own rather than the program's. In the
// shared library every frame of its module is; linked statically, heapguard
// shares the executable's module, so its frames are told by name.
bool is_heapguard_frame(const FrameInfo& info) {
  if (!g_self_module_known || info.module == nullptr || !same(info.module, g_self_module)) return false;
  if (starts_with(basename_of(info.module), "libheapguard")) return true;
  return info.function != nullptr && is_api_entry(info.function);
}

// Symbolizes frame i of pcs with the in-process ELF reader; the offset is
// that of pcs[i] itself (what the user sees printed), even when the byte
// before a return address was looked up.
bool symbolize_at(const uintptr_t* pcs, unsigned i, FrameInfo* info) {
  *info = FrameInfo{};
  uintptr_t look = frame_lookup_pc(pcs, i);
  if (!symbolize_frame(look, info)) return false;
  info->module_offset += pcs[i] - look;
  return true;
}

ReportBuffer& thread_text(ReportBuffer& o, uint32_t t) {
  o.ch('T');
  if (t == kUnknownThread) return o.ch('?');
  return o.dec(t);
}

void json_thread(uint32_t t) {
  if (t == kUnknownThread) g_json.null();
  else g_json.number(t);
}

uint32_t current_thread(const ReportInfo& info) {
  if (info.thread != kUnknownThread) return info.thread;
  ThreadNumberFn fn = g_thread_source.load(std::memory_order_acquire);
  return fn != nullptr ? fn() : kUnknownThread;
}

void write_frames_text(const Stack& s) {
  if (s.n == 0) {
    g_out.str("    <empty stack>\n");
    return;
  }
  for (unsigned i = 0; i < s.n; ++i) {
    FrameInfo info{};
    bool ok = symbolize_at(s.pcs, i, &info);
    g_out.str("    #").dec(i).ch(' ').hex(s.pcs[i]).str(" in ");
    g_out.str(ok && info.function != nullptr ? info.function : "<unknown>");
    if (ok && info.module != nullptr) g_out.str(" (").str(info.module).ch('+').hex(info.module_offset).ch(')');
    else g_out.str(" (<unknown module>)");
    g_out.ch('\n');
  }
}

void write_frames_json(const Stack& s) {
  g_json.begin_array();
  for (unsigned i = 0; i < s.n; ++i) {
    FrameInfo info{};
    bool ok = symbolize_at(s.pcs, i, &info);
    g_json.begin_object().key("pc").hex_string(s.pcs[i]);
    g_json.key("function").string(ok ? info.function : nullptr);
    g_json.key("module").string(ok ? info.module : nullptr);
    g_json.key("offset");
    if (ok && info.module != nullptr) g_json.hex_string(info.module_offset);
    else g_json.null();
    g_json.end_object();
  }
  g_json.end_array();
}

void write_stack_json(const Stack& s) {
  if (!s.present) {
    g_json.null();
    return;
  }
  g_json.begin_object().key("thread");
  json_thread(s.thread);
  g_json.key("frames");
  write_frames_json(s);
  g_json.end_object();
}

// "<class> in FUNCTION (MODULE+0xOFF)": the first frame of the current
// stack that is the program's (frame #0 of a stack captured in free() is
// free itself), else frame #0.
void format_summary(const char* class_name, const Stack& s, MessageBuilder& m) {
  m.str(class_name);
  if (s.n == 0) return;
  find_self_module();
  FrameInfo info{};
  bool ok = false;
  bool found = false;
  for (unsigned i = 0; i < s.n && !found; ++i) {
    ok = symbolize_at(s.pcs, i, &info);
    if (!ok || !is_heapguard_frame(info)) found = true;
  }
  if (!found) ok = symbolize_at(s.pcs, 0, &info);
  m.str(" in ").str(ok && info.function != nullptr ? info.function : "<unknown>");
  // As the frames print it.
  if (ok && info.module != nullptr) m.str(" (").str(info.module).ch('+').hex(info.module_offset).ch(')');
  else m.str(" (<unknown module>)");
}

struct Region {
  bool present;
  Relation relation;
  uint64_t offset;
};

Region describe(const ReportInfo& info) {
  Region r{false, Relation::None, 0};
  if (info.region_size == 0 && info.relation == Relation::None) return r;
  r.present = true;
  const uintptr_t a = info.address, start = info.region_start, end = info.region_start + info.region_size;
  // The caller's relation when the addresses agree with it; derived otherwise.
  Relation rel = info.relation;
  if (rel == Relation::Left && a >= start) rel = Relation::None;
  if (rel == Relation::Right && a < end) rel = Relation::None;
  if (rel == Relation::Inside && (a < start || (a >= end && info.region_size != 0))) rel = Relation::None;
  if (rel == Relation::None) {
    if (a < start) rel = Relation::Left;
    else if (a >= end && info.region_size != 0) rel = Relation::Right;
    else rel = Relation::Inside;
  }
  r.relation = rel;
  r.offset = rel == Relation::Left ? start - a : rel == Relation::Right ? a - end : a - start;
  return r;
}

const char* relation_text(Relation r) {
  switch (r) {
    case Relation::Left: return " bytes to the left of ";
    case Relation::Right: return " bytes to the right of ";
    default: return " bytes inside of ";
  }
}

const char* relation_json(Relation r) {
  switch (r) {
    case Relation::Left: return "left";
    case Relation::Right: return "right";
    default: return "inside";
  }
}

void write_text(const ReportInfo& info, uintptr_t pc, uint32_t thread, const MessageBuilder& summary) {
  const char* name = error_name(info.kind);
  g_out.pid_prefix().str("ERROR: HeapGuard: ").str(name).str(" on address ").hex(info.address);
  g_out.str(" at pc ").hex(pc).str(" thread ");
  thread_text(g_out, thread).ch('\n');
  if (info.access != nullptr) {
    g_out.str(info.access).str(" at ").hex(info.address).str(" thread ");
    thread_text(g_out, thread).ch('\n');
  }
  write_frames_text(g_stacks[kCurrent]);
  Region r = describe(info);
  if (r.present) {
    g_out.hex(info.address).str(" is located ").dec(r.offset).str(relation_text(r.relation));
    g_out.dec(info.region_size).str("-byte region [").hex(info.region_start).ch(',');
    g_out.hex(info.region_start + info.region_size).str(")\n");
  }
  if (info.detail != nullptr && info.detail->size() != 0) {
    g_out.put(info.detail->data(), info.detail->size());
    if (info.detail->data()[info.detail->size() - 1] != '\n') g_out.ch('\n');
  }
  static constexpr const char* kVerb[kSlots] = {nullptr, "allocated", "freed"};
  for (unsigned slot = kAllocated; slot < kSlots; ++slot) {
    const Stack& s = g_stacks[slot];
    if (!s.present) continue;
    g_out.str(kVerb[slot]).str(" by thread ");
    thread_text(g_out, s.thread).str(" here:\n");
    write_frames_text(s);
  }
  g_out.str("SUMMARY: HeapGuard: ").put(summary.data(), summary.size()).ch('\n');
  g_out.flush();
}

void write_json(const ReportInfo& info, uintptr_t pc, uint32_t thread, const MessageBuilder& summary) {
  g_json.reset();
  g_json.begin_object();
  g_json.key("heapguard").number(1).key("pid").number(uint64_t(pal::Pal::process_id()));
  g_json.key("class").string(error_name(info.kind));
  g_json.key("address").hex_string(info.address).key("pc").hex_string(pc);
  g_json.key("thread");
  json_thread(thread);
  g_json.key("access").string(info.access);
  g_json.key("region");
  Region r = describe(info);
  if (r.present) {
    g_json.begin_object().key("start").hex_string(info.region_start).key("size").number(info.region_size);
    g_json.key("relation").string(relation_json(r.relation)).key("offset").number(r.offset).end_object();
  } else {
    g_json.null();
  }
  g_json.key("detail");
  if (info.detail != nullptr && info.detail->size() != 0) {
    size_t n = info.detail->size();
    if (info.detail->data()[n - 1] == '\n') --n;
    g_json.string(info.detail->data(), n);
  } else {
    g_json.null();
  }
  g_json.key("stacks").begin_object();
  g_json.key("current");
  write_stack_json(g_stacks[kCurrent]);
  g_json.key("allocated");
  write_stack_json(g_stacks[kAllocated]);
  g_json.key("freed");
  write_stack_json(g_stacks[kFreed]);
  g_json.end_object();
  g_json.key("summary").string(summary.data(), summary.size());
  g_json.end_object();
  g_out.ch('\n');
  g_out.flush();
}

// --- source locations (external symbolizer) -------------------------------

constexpr unsigned kMaxExternal = kSlots * pal::kMaxStackFrames;
constexpr size_t kMaxFile = 256;
constexpr size_t kMaxFunction = 256;

struct SourceLocation {
  char file[kMaxFile];
  char function[kMaxFunction];
  uint32_t line;
  bool known;
};

constinit uintptr_t g_ext_pcs[kMaxExternal] = {};
constinit SourceLocation g_locations[kMaxExternal] = {};

void copy_name(char* out, size_t cap, const char* s) {
  size_t i = 0;
  if (s != nullptr) {
    for (; s[i] != '\0' && i + 1 < cap; ++i) out[i] = s[i];
  }
  out[i] = '\0';
}

void store_location(void* ctx, unsigned index, const char* function, const char* file, unsigned line) {
  unsigned limit = *static_cast<unsigned*>(ctx);
  if (index >= limit) return;
  SourceLocation& l = g_locations[index];
  copy_name(l.file, kMaxFile, file);
  copy_name(l.function, kMaxFunction, function);
  l.line = line;
  l.known = true;
}

// Runs the external symbolizer over every frame of the report's stacks
// (one process for all of them). False when there is no tool or it failed.
bool resolve_sources(unsigned* total) {
  unsigned n = 0;
  for (unsigned slot = 0; slot < kSlots; ++slot) {
    const Stack& s = g_stacks[slot];
    if (!s.present) continue;
    for (unsigned i = 0; i < s.n; ++i) g_ext_pcs[n++] = frame_lookup_pc(s.pcs, i);
  }
  *total = n;
  if (n == 0) return false;
  for (unsigned i = 0; i < n; ++i) g_locations[i].known = false;
  return symbolize_external(g_ext_pcs, n, &store_location, total);
}

void write_location_text(unsigned index, unsigned frame, uintptr_t pc) {
  const SourceLocation& l = g_locations[index];
  g_out.str("    #").dec(frame).ch(' ').hex(pc).str(" in ");
  g_out.str(l.known && l.function[0] != '\0' ? l.function : "<unknown>");
  if (l.known && l.file[0] != '\0') g_out.ch(' ').str(l.file).ch(':').dec(l.line);
  g_out.ch('\n');
}

void write_sources_text(unsigned total) {
  g_out.pid_prefix().str("HeapGuard: source locations:\n");
  unsigned index = 0;
  static constexpr const char* kVerb[kSlots] = {nullptr, "allocated", "freed"};
  for (unsigned slot = 0; slot < kSlots && index < total; ++slot) {
    const Stack& s = g_stacks[slot];
    if (!s.present) continue;
    if (slot == kCurrent) {
      g_out.str("current:\n");
    } else {
      g_out.str(kVerb[slot]).str(" by thread ");
      thread_text(g_out, s.thread).str(":\n");
    }
    for (unsigned i = 0; i < s.n && index < total; ++i) write_location_text(index++, i, s.pcs[i]);
  }
  g_out.flush();
}

void write_sources_json(unsigned total) {
  static constexpr const char* kName[kSlots] = {"current", "allocated", "freed"};
  g_json.reset();
  g_json.begin_object().key("heapguard").number(1).key("pid").number(uint64_t(pal::Pal::process_id()));
  g_json.key("type").string("source-locations").key("frames").begin_array();
  unsigned index = 0;
  for (unsigned slot = 0; slot < kSlots && index < total; ++slot) {
    const Stack& s = g_stacks[slot];
    if (!s.present) continue;
    for (unsigned i = 0; i < s.n && index < total; ++i, ++index) {
      const SourceLocation& l = g_locations[index];
      g_json.begin_object().key("stack").string(kName[slot]).key("index").number(i);
      g_json.key("pc").hex_string(s.pcs[i]);
      g_json.key("function").string(l.known && l.function[0] != '\0' ? l.function : nullptr);
      g_json.key("file").string(l.known && l.file[0] != '\0' ? l.file : nullptr);
      g_json.key("line");
      if (l.known && l.file[0] != '\0') g_json.number(l.line);
      else g_json.null();
      g_json.end_object();
    }
  }
  g_json.end_array().end_object();
  g_out.ch('\n');
  g_out.flush();
}

void append_sources(bool json) {
  unsigned total = 0;
  if (!resolve_sources(&total)) {
    // Say so, in text: a reader who expects file:line should know why
    // there is none (no llvm-symbolizer or addr2line, or it timed out).
    if (!json && total != 0) {
      g_out.pid_prefix().str("HeapGuard: no source locations (no llvm-symbolizer or addr2line found, or it did not "
                             "answer within 2 s); tools/heapguard-symbolize can add them later\n");
      g_out.flush();
    }
    return;
  }
  if (json) write_sources_json(total);
  else write_sources_text(total);
}

// Linked statically, heapguard's frames cannot be trimmed at capture time
// (they share the executable's module): drop its internal frames here, by
// name, down to the API entry (malloc, free, ...), so every stack starts
// where the program called in. A no-op for the shared library, whose
// captures are trimmed already.
void drop_internal_frames(Stack& s) {
  find_self_module();
  unsigned skip = 0;
  FrameInfo top{};
  bool top_ok = s.n > 1 && symbolize_at(s.pcs, 0, &top);
  while (top_ok && skip + 1 < s.n) {
    if (!is_heapguard_frame(top) || top.function == nullptr ||
        !(starts_with(top.function, "_ZN9heapguard") || starts_with(top.function, "heapguard::")))
      break;
    // Each frame is symbolized once: the next one becomes the top.
    FrameInfo next{};
    if (!symbolize_at(s.pcs, skip + 1, &next) || !is_heapguard_frame(next)) break;
    top = next;
    ++skip;
  }
  if (skip == 0) return;
  for (unsigned i = skip; i < s.n; ++i) s.pcs[i - skip] = s.pcs[i];
  s.n -= skip;
}

void load_stack(Stack& s, TraceRef ref) {
  s.present = ref.stack != 0;
  s.thread = ref.thread;
  s.n = s.present ? g_stack_depot.get(ref.stack, s.pcs, pal::kMaxStackFrames) : 0;
  drop_internal_frames(s);
}

[[noreturn]] void halt(const ReportSettings& s) {
  if (s.abort_on_error) pal::Pal::abort_process();
  pal::Pal::exit_process(s.exitcode);
}

}  // namespace

ReportSettings report_settings() {
  if (g_test_settings_set) return g_test_settings;
  const Options& o = options();
  ReportSettings s;
  s.halt_on_error = o.halt_on_error != 0;
  s.abort_on_error = o.abort_on_error != 0;
  s.exitcode = int(o.exitcode);
  s.json = o.report_format == int64_t(ReportFormat::Json);
  s.symbolize = o.symbolize != 0;
  s.fuzz = o.mode == Mode::Fuzz;
  return s;
}

void set_report_settings_for_testing(const ReportSettings* s) {
  g_test_settings_set = s != nullptr;
  if (s != nullptr) g_test_settings = *s;
}

void set_thread_number_source(ThreadNumberFn fn) { g_thread_source.store(fn, std::memory_order_release); }

uint32_t errors_reported() { return g_errors.load(std::memory_order_relaxed); }

void report_after_fork_child() {
  g_errors.store(0, std::memory_order_relaxed);
  // Only the forking thread exists now, and it was not reporting (fork is
  // not called from the report path): any owner is gone.
  g_lock_pid.store(0, std::memory_order_relaxed);
  std::atomic_ref<uint32_t>(g_lock_word).store(0, std::memory_order_release);
}

void report_error(const ReportInfo& info) {
  pal::ScopedErrno keep_errno;
  lock_report();
  const ReportSettings settings = report_settings();

  Stack& cur = g_stacks[kCurrent];
  cur.present = true;
  cur.thread = current_thread(info);
  if (info.current != nullptr) {
    cur.n = info.current_n < pal::kMaxStackFrames ? info.current_n : pal::kMaxStackFrames;
    for (unsigned i = 0; i < cur.n; ++i) cur.pcs[i] = info.current[i];
  } else {
    cur.n = pal::capture_stack_slow(cur.pcs, pal::kMaxStackFrames);
    drop_internal_frames(cur);
  }
  load_stack(g_stacks[kAllocated], info.allocated);
  load_stack(g_stacks[kFreed], info.freed);

  const bool suppressed = is_suppressed(info.kind, cur.pcs, cur.n);
  if (suppressed && info.recoverable) {
    unlock_report();
    return;
  }

  const uintptr_t pc = info.pc != 0 ? info.pc : cur.n != 0 ? cur.pcs[0] : 0;
  MessageBuilder summary;
  format_summary(error_name(info.kind), cur, summary);
  g_out.set_fd(report_sink_fd());
  if (settings.json) write_json(info, pc, cur.thread, summary);
  else write_text(info, pc, cur.thread, summary);
  // The raw report is safely out; only now start a process, which may fail
  // or hang (bounded by the symbolizer's timeout).
  if (settings.symbolize && !pal::Pal::is_secure()) append_sources(settings.json);
  g_errors.fetch_add(1, std::memory_order_relaxed);

  const bool halt_now = settings.fuzz || settings.halt_on_error;
  if (info.recoverable && (!halt_now || suppressed)) {
    unlock_report();
    return;
  }
  halt(settings);
}

bool is_leak_suppressed(TraceRef alloc) {
  if (suppression_count() == 0 || alloc.stack == 0) return false;
  uintptr_t pcs[pal::kMaxStackFrames];
  unsigned n = g_stack_depot.get(alloc.stack, pcs, pal::kMaxStackFrames);
  return is_suppressed(kLeakClass, pcs, n);
}

void LeakReportWriter::begin(uint64_t total_blocks, uint64_t total_bytes) {
  lock_report();
  active_ = true;
  total_blocks_ = total_blocks;
  total_bytes_ = total_bytes;
  shown_blocks_ = shown_bytes_ = 0;
  groups_ = 0;
}

bool LeakReportWriter::group(uint64_t bytes, uint64_t blocks, TraceRef alloc) {
  if (!active_) return false;
  Stack& s = g_stacks[kAllocated];
  s.thread = alloc.thread;
  s.present = true;
  s.n = alloc.stack != 0 ? g_stack_depot.get(alloc.stack, s.pcs, pal::kMaxStackFrames) : 0;
  if (is_suppressed(kLeakClass, s.pcs, s.n)) return false;
  const bool json = report_settings().json;
  // The heading waits for the first group that is shown, so a report whose
  // every group is suppressed writes nothing at all.
  if (groups_ == 0) {
    g_out.set_fd(report_sink_fd());
    if (json) {
      g_json.reset();
      g_json.begin_object().key("heapguard").number(1).key("pid").number(uint64_t(pal::Pal::process_id()));
      g_json.key("class").string(kLeakClass).key("leaks").begin_array();
    } else {
      g_out.pid_prefix().str("ERROR: HeapGuard: memory-leak: ").dec(total_bytes_).str(" bytes in ");
      g_out.dec(total_blocks_).str(" blocks are unreachable at exit\n");
    }
  }
  ++groups_;
  shown_blocks_ += blocks;
  shown_bytes_ += bytes;
  if (json) {
    g_json.begin_object().key("bytes").number(bytes).key("blocks").number(blocks).key("allocated");
    write_stack_json(s);
    g_json.end_object();
  } else {
    g_out.dec(bytes).str(" bytes in ").dec(blocks).str(" blocks allocated by thread ");
    thread_text(g_out, s.thread).str(" here:\n");
    write_frames_text(s);
  }
  return true;
}

unsigned LeakReportWriter::end() {
  if (!active_) return 0;
  active_ = false;
  unsigned groups = groups_;
  if (groups != 0) {
    if (report_settings().json) {
      g_json.end_array().key("total_bytes").number(shown_bytes_).key("total_blocks").number(shown_blocks_);
      g_json.end_object();
      g_out.ch('\n');
    } else {
      g_out.str("SUMMARY: HeapGuard: memory-leak ").dec(shown_bytes_).str(" bytes in ").dec(shown_blocks_);
      g_out.str(" blocks\n");
    }
    g_out.flush();
    g_errors.fetch_add(1, std::memory_order_relaxed);
  }
  unlock_report();
  return groups;
}

}  // namespace heapguard
