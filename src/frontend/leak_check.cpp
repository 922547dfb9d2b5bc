// SPDX-License-Identifier: Apache-2.0
// Leak check (layer frontend): stop the world, list live blocks, mark from
// roots, flood the unreached ones to tell direct from indirect leaks, group
// them by allocation stack and report.
//
// Check overview
//   run_leak_check()                      atexit, detect_leaks=1, debug
//     check_for_leaks()                   registers + frame of the caller
//       pal::stop_the_world               other threads parked in a handler
//       collect_blocks                    slab slots whose header is
//                                         Allocated, large blocks not
//                                         quarantined, guarded-pool blocks;
//                                         sorted by address (mapped array)
//       scan_roots                        module data (+bss), each thread's
//                                         stack from sp, its registers, the
//                                         static TLS block and descriptor
//       drain                             reached blocks scanned in turn
//       flood_unreached                   leaked blocks reached only from
//                                         other leaked blocks: indirect
//       pal::resume_the_world
//       report_groups                     LeakReportWriter, largest first
//     exit with exitcode if any reported
//
// What is not a root: heapguard's own module and mappings (thread caches
// and the quarantine hold encoded pointers; the large-block table holds
// raw user pointers, and would hide every large leak), the heap itself, and
// anonymous mappings the program made (like LeakSanitizer).
#include "frontend/leak_check.h"

#include <algorithm>
#include <atomic>
#include <cstdio>

#include "config/config.h"
#include "frontend/allocator.h"
#include "platform/platform.h"
#include "report/report.h"

namespace heapguard {
namespace {

enum Tag : uint64_t { kUnreached = 0, kReachable = 1, kIndirect = 2 };
constexpr unsigned kTagShift = 62;
constexpr uint64_t kSizeMask = (uint64_t{1} << kTagShift) - 1;
// Below the interrupted sp: x86-64 leaf functions keep data in the 128-byte
// red zone, which the kernel skips when it builds the signal frame.
constexpr uintptr_t kRedZone = 128;
// Around a thread pointer outside its thread's stack mapping (the main
// thread's, set up by the dynamic loader), when the C library does not tell
// the static TLS size (pal::static_tls_range): static TLS lies below it,
// the TCB (struct pthread) above.
constexpr uintptr_t kStaticTlsWindow = uintptr_t{64} << 20;
constexpr uintptr_t kTcbWindow = 16 << 10;

struct LiveBlock {
  uintptr_t begin;
  uint64_t size_tag;  // requested size, tag in the top bits
  size_t size() const { return size_t(size_tag & kSizeMask); }
  Tag tag() const { return Tag(size_tag >> kTagShift); }
  void set_tag(Tag t) { size_tag = (size_tag & kSizeMask) | (uint64_t(t) << kTagShift); }
};

struct Group {
  TraceRef trace;
  bool indirect;
  size_t blocks, bytes;
  uintptr_t example;
  bool used;
};

std::atomic<LiveBlockEnumerator> g_guarded_enumerator{nullptr};

// Memory for the check's own tables: mapped, never malloc, unmapped at the end.
class MappedArray {
 public:
  bool allocate(size_t bytes) {
    bytes_ = align_up(bytes == 0 ? 1 : bytes, pal::Pal::page_size());
    ptr_ = pal::Pal::map(bytes_);
    if (ptr_ != nullptr) pal::Pal::name_region(ptr_, bytes_, "heapguard-leak-check");
    return ptr_ != nullptr;
  }
  ~MappedArray() {
    if (ptr_ != nullptr) pal::Pal::unmap(ptr_, bytes_);
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class LeakScanner {
 public:
  LeakScanner(LiveBlock* blocks, size_t n, uint32_t* work) : blocks_(blocks), n_(n), work_(work) {
    if (n != 0) {
      lo_ = blocks[0].begin;
      for (size_t i = 0; i < n; ++i) {
        uintptr_t end = blocks[i].begin + (blocks[i].size() == 0 ? 1 : blocks[i].size());
        if (end > hi_) hi_ = end;
      }
    }
  }

  // Marks the block a word points into (interior pointers count).
  HEAPGUARD_FAST_PATH void consider(uintptr_t v, Tag tag, size_t exclude) {
    if (v < lo_ || v >= hi_) return;
    size_t i = find(v);
    if (i == SIZE_MAX || i == exclude || blocks_[i].tag() != kUnreached) return;
    blocks_[i].set_tag(tag);
    work_[work_n_++] = uint32_t(i);
  }

  void scan_range(uintptr_t begin, uintptr_t end, Tag tag, size_t exclude = SIZE_MAX) {
    begin = align_up(begin, sizeof(uintptr_t));
    for (uintptr_t p = begin; p + sizeof(uintptr_t) <= end; p += sizeof(uintptr_t))
      consider(*reinterpret_cast<const uintptr_t*>(p), tag, exclude);
  }

  // Marks block i reachable (it is a root of its own); drain() scans it.
  void keep(size_t i) {
    if (blocks_[i].tag() != kUnreached) return;
    blocks_[i].set_tag(kReachable);
    work_[work_n_++] = uint32_t(i);
  }

  // Scans reached blocks until none is left; each is pushed once.
  void drain(Tag tag, size_t exclude = SIZE_MAX) {
    while (work_n_ != 0) {
      const LiveBlock& b = blocks_[work_[--work_n_]];
      scan_range(b.begin, b.begin + b.size(), tag, exclude);
    }
  }

  // Leaked blocks reachable from another leaked block are indirect leaks.
  // A cycle of leaked blocks keeps one direct member: the block flooded
  // from is excluded from its own flood.
  void flood_unreached() {
    for (size_t i = 0; i < n_; ++i) {
      if (blocks_[i].tag() != kUnreached) continue;
      scan_range(blocks_[i].begin, blocks_[i].begin + blocks_[i].size(), kIndirect, i);
      drain(kIndirect, i);
    }
  }

 private:
  size_t find(uintptr_t v) const {
    size_t lo = 0, hi = n_;
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (blocks_[mid].begin <= v) lo = mid + 1;
      else hi = mid;
    }
    if (lo == 0) return SIZE_MAX;
    const LiveBlock& b = blocks_[lo - 1];
    size_t size = b.size() == 0 ? 1 : b.size();
    return v - b.begin < size ? lo - 1 : SIZE_MAX;
  }

  LiveBlock* blocks_;
  size_t n_;
  uint32_t* work_;
  size_t work_n_ = 0;
  uintptr_t lo_ = 1, hi_ = 0;
};

// Counts, then fills, the live blocks of every heap.
struct BlockSink {
  LiveBlock* out = nullptr;  // nullptr: count only
  size_t n = 0;
  size_t cap = 0;
  void add(uintptr_t user, size_t size) {
    if (out != nullptr) {
      if (n == cap) return;  // appeared since the count: cannot happen with the world stopped
      out[n] = {user, uint64_t(size) & kSizeMask};
    }
    ++n;
  }
};

void add_guarded(uintptr_t user, size_t size, void* ctx) { static_cast<BlockSink*>(ctx)->add(user, size); }

void collect_blocks(BlockSink* sink) {
  const SlabHeap& slabs = g_allocator.slab_heap();
  for (unsigned c = 1; c < kNumClasses; ++c) {
    const SizeClass& sc = kSizeClasses[c];
    slabs.for_each_slot_out(c, [&](uintptr_t block) {
      ChunkHeader h;
      // Slots in thread caches and in the quarantine say Free or
      // Quarantined: only Allocated ones are the program's.
      if (!g_header_codec.unpack(HeaderCodec::load(block), block - kHeaderSize, &h)) return;
      if (h.state != ChunkState::Allocated || h.class_id != c || h.aligned_alias) return;
      uintptr_t user = block + uintptr_t(h.alias_offset16) * 16;
      size_t usable = block + sc.usable - user;
      if (user >= block + sc.usable || h.unused_bytes > usable) return;
      sink->add(user, usable - h.unused_bytes);
    });
  }
  g_allocator.large_heap().region_table().for_each_unlocked([&](const LargeBlock& b) {
    // Quarantined blocks are freed, and their pages are inaccessible.
    if (!b.quarantined) sink->add(b.user, b.requested);
  });
  LiveBlockEnumerator guarded = g_guarded_enumerator.load(std::memory_order_acquire);
  if (guarded != nullptr) guarded(add_guarded, sink);
}

bool same_file(const pal::Mapping& a, const pal::Mapping& b) {
  return a.kind == pal::Mapping::Kind::File && b.kind == pal::Mapping::Kind::File && a.inode == b.inode &&
         a.dev_major == b.dev_major && a.dev_minor == b.dev_minor;
}

// The module holding this code, unless it is the main executable (a static
// link): its data are heapguard's own tables, not the program's globals.
bool find_own_module(pal::Mapping* own) {
  uintptr_t here = reinterpret_cast<uintptr_t>(&collect_blocks);
  pal::MappingReader maps;
  pal::Mapping m;
  bool found = false;
  while (maps.next(&m)) {
    if (here >= m.begin && here < m.end) {
      *own = m;
      found = m.kind == pal::Mapping::Kind::File;
      break;
    }
  }
  if (!found) return false;
  uint64_t inode;
  uint32_t major, minor;
  if (pal::main_executable_identity(&inode, &major, &minor) && inode == own->inode) return false;
  return true;
}

bool overlaps_heap(uintptr_t begin, uintptr_t end) {
  const SlabHeap& slabs = g_allocator.slab_heap();
  return slabs.contains(begin) || (end != begin && slabs.contains(end - 1));
}

// The writable PT_LOAD segments of every loaded ELF module (RELRO and bss
// included), read from its program headers, scanned where mapped: the
// module's own file mappings and the anonymous bss after them.
void scan_module_data(LeakScanner* scanner) {
  pal::Mapping own;
  bool exclude_own = find_own_module(&own);
  pal::MappingReader maps;
  pal::Mapping m, image{};
  uintptr_t data_begin = 0, data_end = 0;  // of the module whose offset-0 mapping is `image`
  while (maps.next(&m)) {
    if (m.kind == pal::Mapping::Kind::File && m.offset == 0 && m.readable) {
      image = m;
      if (!pal::elf_data_span(m.begin, m.end - m.begin, &data_begin, &data_end) ||
          (exclude_own && same_file(m, own)))
        data_begin = data_end = 0;
    }
    if (!m.readable || m.shared || data_end <= m.begin || data_begin >= m.end) continue;
    if (!same_file(m, image) && m.kind != pal::Mapping::Kind::Anonymous) continue;
    if (overlaps_heap(m.begin, m.end)) continue;
    scanner->scan_range(m.begin > data_begin ? m.begin : data_begin, m.end < data_end ? m.end : data_end,
                        kReachable);
  }
}

bool mapping_containing(uintptr_t p, pal::Mapping* out) {
  pal::MappingReader maps;
  while (maps.next(out))
    if (p >= out->begin && p < out->end) return true;
  return false;
}

// Scans the readable parts of [begin, end) that are neither heapguard's
// (when mappings are named) nor the heap.
void scan_mapped(LeakScanner* scanner, uintptr_t begin, uintptr_t end) {
  pal::MappingReader maps;
  pal::Mapping m;
  while (maps.next(&m)) {
    if (m.end <= begin || m.begin >= end || !m.readable || m.heapguard || overlaps_heap(m.begin, m.end)) continue;
    scanner->scan_range(m.begin > begin ? m.begin : begin, m.end < end ? m.end : end, kReachable);
  }
}

// Each thread's stack from its sp up to the end of its thread descriptor
// (glibc puts a thread's static TLS and struct pthread at the top of its
// stack mapping), its registers, its static TLS block and descriptor when
// they lie elsewhere (the main thread's, mapped by the dynamic loader), and
// its dynamic thread vector (dynamic TLS blocks whose allocation stack is
// empty, allocated while heapguard's own unwinder ran, would otherwise
// escape keep_loader_blocks).
// Returns threads not scanned.
// Never a whole mapping around a thread pointer: those are anonymous, and
// the kernel merges adjacent anonymous mappings of the same protection, so
// the one holding the main thread's TLS, or a thread's stack, may run on
// into heapguard's own tables when the kernel cannot name mappings (the
// large blocks' trace table, keyed by user pointer, then hid large leaks).
// Only without the C library's TLS figures is a window used instead.
unsigned scan_threads(LeakScanner* scanner, const pal::StoppedWorld& world) {
  unsigned not_scanned = 0;
  for (unsigned i = 0; i < world.count; ++i) {
    const pal::ThreadSnapshot& t = world.threads[i];
    if (t.tid == 0) continue;
    for (unsigned r = 0; r < t.register_count; ++r) scanner->consider(t.registers[r], kReachable, SIZE_MAX);
    uintptr_t tp = t.thread_pointer;
    uintptr_t tls_begin = 0, tls_end = 0;
    bool exact_tls = pal::static_tls_range(tp, &tls_begin, &tls_end);
    pal::Mapping stack{};
    bool have_stack = t.sp != 0 && mapping_containing(t.sp, &stack) && stack.readable && !stack.heapguard &&
                      !overlaps_heap(stack.begin, stack.end);
    bool tls_on_stack = false;
    if (have_stack) {
      uintptr_t from = t.sp - kRedZone > stack.begin && t.sp - kRedZone < t.sp ? t.sp - kRedZone : stack.begin;
      uintptr_t to = stack.end;
      if (tp > t.sp && tp < stack.end) {
        tls_on_stack = true;
        if (exact_tls && tls_end > t.sp && tls_end < to) to = tls_end;
      }
      scanner->scan_range(from, to, kReachable);
    } else {
      ++not_scanned;
    }
    uintptr_t vector_begin, vector_end;
    if (exact_tls && pal::thread_vector_range(tp, &vector_begin, &vector_end))
      scan_mapped(scanner, vector_begin, vector_end);
    if (tp == 0 || tls_on_stack) continue;
    if (exact_tls) {
      scan_mapped(scanner, tls_begin, tls_end);
      continue;
    }
    pal::Mapping tls{};
    if (mapping_containing(tp, &tls) && tls.readable && !tls.heapguard && !overlaps_heap(tls.begin, tls.end)) {
      uintptr_t from = tp - tls.begin > kStaticTlsWindow ? tp - kStaticTlsWindow : tls.begin;
      uintptr_t to = tls.end - tp > kTcbWindow ? tp + kTcbWindow : tls.end;
      scanner->scan_range(from, to, kReachable);
    }
  }
  return not_scanned + world.overflow;
}

// The dynamic loader's code: blocks it allocated for itself are not the
// program's leaks (below).
struct LoaderText {
  static constexpr unsigned kMaxRanges = 4;
  uintptr_t begin[kMaxRanges] = {}, end[kMaxRanges] = {};
  unsigned n = 0;
  bool contains(uintptr_t pc) const {
    for (unsigned i = 0; i < n; ++i)
      if (pc >= begin[i] && pc < end[i]) return true;
    return false;
  }
};

LoaderText find_loader_text() {
  LoaderText text;
  uintptr_t base = pal::dynamic_loader_base();
  pal::Mapping loader{};
  if (base == 0 || !mapping_containing(base, &loader) || loader.kind != pal::Mapping::Kind::File) return text;
  pal::MappingReader maps;
  pal::Mapping m;
  while (maps.next(&m) && text.n < LoaderText::kMaxRanges) {
    if (m.executable && same_file(m, loader)) {
      text.begin[text.n] = m.begin;
      text.end[text.n] = m.end;
      ++text.n;
    }
  }
  return text;
}

// A thread's DTV and dynamic TLS blocks are allocated by the dynamic loader
// and kept, after the thread exits, with its stack in glibc's stack cache,
// which the scan does not see (no live thread's sp points there). Like
// LeakSanitizer, every block whose allocating caller (frame #1, the first
// frame outside heapguard) is in the loader counts as reachable, and is
// scanned. Needs allocation stacks (malloc_context_size > 0).
void keep_loader_blocks(LeakScanner* scanner, const LiveBlock* blocks, size_t n) {
  LoaderText text = find_loader_text();
  if (text.n == 0) return;
  for (size_t i = 0; i < n; ++i) {
    if (blocks[i].tag() != kUnreached) continue;
    TraceRef trace = block_allocation_trace(blocks[i].begin);
    uintptr_t pcs[2];
    if (trace.stack == 0 || g_stack_depot.get(trace.stack, pcs, 2) < 2) continue;
    if (text.contains(pcs[1])) scanner->keep(i);
  }
  scanner->drain(kReachable);
}

uint64_t group_hash(uint32_t stack) { return uint64_t(stack) * 0x9E3779B97F4A7C15ULL; }

// Groups leaked blocks (direct and indirect) by allocation stack and writes
// the unsuppressed groups, largest first. Returns the groups written.
size_t report_groups(const LiveBlock* blocks, size_t n, const LeakTotals& totals) {
  size_t leaked = totals.direct_blocks + totals.indirect_blocks;
  size_t slots = 16;
  while (slots < leaked * 2) slots *= 2;
  MappedArray table;
  if (!table.allocate(slots * sizeof(Group))) return 0;
  Group* groups = table.as<Group>();
  for (size_t i = 0; i < n; ++i) {
    Tag tag = blocks[i].tag();
    if (tag == kReachable) continue;
    TraceRef trace = block_allocation_trace(blocks[i].begin);
    size_t j = size_t(group_hash(trace.stack) >> 20) & (slots - 1);
    while (groups[j].used && groups[j].trace.stack != trace.stack) j = (j + 1) & (slots - 1);
    Group& g = groups[j];
    if (!g.used) g = {trace, true, 0, 0, blocks[i].begin, true};
    ++g.blocks;
    g.bytes += blocks[i].size();
    // A group with one directly leaked block is a direct leak.
    if (tag == kUnreached) g.indirect = false;
  }
  // Compact, drop the suppressed ones (the totals must not count them),
  // then direct before indirect, largest first.
  size_t k = 0;
  uint64_t shown_blocks = 0, shown_bytes = 0;
  for (size_t j = 0; j < slots; ++j) {
    if (!groups[j].used || is_leak_suppressed(groups[j].trace)) continue;
    shown_blocks += groups[j].blocks;
    shown_bytes += groups[j].bytes;
    groups[k++] = groups[j];
  }
  if (k == 0) return 0;
  std::sort(groups, groups + k, [](const Group& a, const Group& b) {
    if (a.indirect != b.indirect) return !a.indirect;
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.example < b.example;
  });
  LeakReportWriter writer;
  writer.begin(shown_blocks, shown_bytes);
  for (size_t j = 0; j < k; ++j) writer.group(groups[j].bytes, groups[j].blocks, groups[j].trace);
  return writer.end();
}

void warn_not_scanned(unsigned threads) {
  MessageBuilder msg;
  msg.str("leak check: ").dec(threads).str(" thread(s) did not stop and their stacks were not scanned; "
                                              "blocks reachable only from them may be reported");
  print_line(msg);
}

LeakTotals check_for_leaks_from(uintptr_t own_sp, const uintptr_t* regs, unsigned nregs) {
  LeakTotals totals;
  pal::StoppedWorld world;
  if (!pal::stop_the_world(own_sp, regs, nregs, &world)) {
    MessageBuilder msg;
    msg.str("leak check skipped: the other threads could not be stopped");
    print_line(msg);
    return totals;
  }
  BlockSink counter;
  collect_blocks(&counter);
  MappedArray block_memory, work_memory;
  size_t n = 0;
  if (counter.n != 0 && (!block_memory.allocate(counter.n * sizeof(LiveBlock)) ||
                         !work_memory.allocate(counter.n * sizeof(uint32_t)))) {
    pal::resume_the_world();
    MessageBuilder msg;
    msg.str("leak check skipped: out of memory for ").dec(counter.n).str(" blocks");
    print_line(msg);
    return totals;
  }
  LiveBlock* blocks = block_memory.as<LiveBlock>();
  if (counter.n != 0) {
    BlockSink fill{blocks, 0, counter.n};
    collect_blocks(&fill);
    n = fill.n < counter.n ? fill.n : counter.n;
    std::sort(blocks, blocks + n, [](const LiveBlock& a, const LiveBlock& b) { return a.begin < b.begin; });
    // A large-table record caught mid-move shows twice.
    size_t k = 0;
    for (size_t i = 0; i < n; ++i)
      if (k == 0 || blocks[k - 1].begin != blocks[i].begin) blocks[k++] = blocks[i];
    n = k;
  }
  totals.live_blocks = n;
  LeakScanner scanner(blocks, n, work_memory.as<uint32_t>());
  if (n != 0) {
    scan_module_data(&scanner);
    totals.threads_not_scanned = scan_threads(&scanner, world);
    scanner.drain(kReachable);
    keep_loader_blocks(&scanner, blocks, n);
    scanner.flood_unreached();
  } else {
    totals.threads_not_scanned = world.not_stopped + world.overflow;
  }
  // The block contents are read; the report itself needs no frozen heap
  // (and symbolizing may take locks the parked threads hold).
  pal::resume_the_world();
  for (size_t i = 0; i < n; ++i) {
    Tag tag = blocks[i].tag();
    if (tag == kUnreached) {
      ++totals.direct_blocks;
      totals.direct_bytes += blocks[i].size();
    } else if (tag == kIndirect) {
      ++totals.indirect_blocks;
      totals.indirect_bytes += blocks[i].size();
    }
  }
  if (totals.threads_not_scanned != 0) warn_not_scanned(totals.threads_not_scanned);
  if (totals.direct_blocks + totals.indirect_blocks != 0) totals.groups_reported = report_groups(blocks, n, totals);
  return totals;
}

}  // namespace

void set_leak_guarded_enumerator(LiveBlockEnumerator enumerate) {
  g_guarded_enumerator.store(enumerate, std::memory_order_release);
}

// Not inlined: the caller's frame starts the scan of this thread's stack,
// and the registers are captured before this function changes them.
__attribute__((noinline)) LeakTotals check_for_leaks() {
  uintptr_t regs[pal::kMaxSavedRegisters];
  unsigned nregs = pal::capture_registers(regs, pal::kMaxSavedRegisters);
  uintptr_t own_sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  return check_for_leaks_from(own_sp, regs, nregs);
}

void run_leak_check() {
  const Options& opts = options();
  if (opts.detect_leaks == 0 || opts.mode != Mode::Debug) return;
  LeakTotals totals = check_for_leaks();
  if (totals.groups_reported == 0) return;
  // _exit would drop the program's buffered output.
  fflush(nullptr);
  pal::Pal::exit_process(int(opts.exitcode));
}

}  // namespace heapguard
