// SPDX-License-Identifier: Apache-2.0
// The frontend's way into the reporter; see block_reports.h.
#include "frontend/block_reports.h"

#include <cstring>

#include "frontend/allocator.h"
#include "frontend/leak_check.h"
#include "report/report.h"

namespace heapguard {

constinit BlockTraces g_block_traces;

void report_block_error(ErrorKind kind, uintptr_t address, const BlockFacts& block, const MessageBuilder& detail,
                        Recovery recovery) {
  ReportInfo info;
  info.kind = kind;
  info.address = address;
  if (block.start != 0) {
    info.region_start = block.start;
    info.region_size = block.size;
    // An empty block still has a place: "0 bytes inside of 0-byte region".
    if (address < block.start) info.relation = Relation::Left;
    else if (address >= block.start + block.size && !(address == block.start && block.size == 0))
      info.relation = Relation::Right;
    else info.relation = Relation::Inside;
  }
  info.detail = detail.size() != 0 ? &detail : nullptr;
  info.allocated = block.history.allocated;
  info.freed = block.history.freed;
  info.recoverable = recovery == Recovery::Recoverable;
  report_error(info);
}

void report_block_fatal(ErrorKind kind, uintptr_t address, const BlockFacts& block, const MessageBuilder& detail) {
  report_block_error(kind, address, block, detail, Recovery::Fatal);
  // report_error returns only for recoverable errors.
  pal::Pal::abort_process();
}

void describe_foreign_pointer(MessageBuilder& m, uintptr_t p) {
  m.hex(p).ch(' ');
  // Where this thread's stack is: the mapping that holds a local.
  volatile char here = 0;
  const uintptr_t sp = reinterpret_cast<uintptr_t>(&here);
  pal::MapsReader maps;
  if (!maps.open()) {
    m.str("was not allocated by heapguard (a stack, global, foreign or wild pointer; /proc/self/maps is unreadable)");
    return;
  }
  // The mapping before the current one: a module's zero-initialised data
  // (.bss) is anonymous memory right after its file-backed data.
  char prev_path[256] = {};
  uint64_t prev_inode = 0;
  uintptr_t prev_end = 0;
  pal::MemoryMapping map;
  while (maps.next(&map)) {
    if (p >= map.start && p < map.end) {
      if (sp >= map.start && sp < map.end) {
        m.str("is on the stack of thread T").dec(current_thread_number()).str(" (a local variable), not a heap block");
      } else if (std::strcmp(map.path, "[stack]") == 0) {
        m.str("is on the main thread's stack, not a heap block");
      } else if (map.inode != 0) {
        m.str(map.writable ? "is a global of " : "points into the code or read-only data of ").str(map.path)
            .str(", not a heap block");
      } else if (map.path[0] == '\0' && prev_inode != 0 && prev_end == map.start && map.writable) {
        m.str("is a global of ").str(prev_path).str(" (its zero-initialised data), not a heap block");
      } else {
        m.str("was not allocated by heapguard: it points into ");
        m.str(map.path[0] != '\0' ? map.path : "an anonymous mapping");
        m.str(" (another thread's stack, memory the program mapped itself, or a large block already freed)");
      }
      return;
    }
    prev_inode = map.inode;
    prev_end = map.end;
    size_t i = 0;
    for (; map.path[i] != '\0' && i + 1 < sizeof prev_path; ++i) prev_path[i] = map.path[i];
    prev_path[i] = '\0';
  }
  m.str("is not a heap address: nothing is mapped there (a wild pointer, or a large block already freed)");
}

Origin expected_origin(ApiCall call) {
  switch (call) {
    case ApiCall::Delete: return Origin::New;
    case ApiCall::DeleteArray: return Origin::NewArray;
    default: return Origin::Malloc;
  }
}

const char* origin_name(Origin o) {
  switch (o) {
    case Origin::Malloc: return "malloc()";
    case Origin::New: return "operator new";
    case Origin::NewArray: return "operator new []";
  }
  return "an unknown allocator";
}

const char* release_name(ApiCall call) {
  switch (call) {
    case ApiCall::Delete: return "operator delete";
    case ApiCall::DeleteArray: return "operator delete []";
    case ApiCall::FreeSized: return "free_sized()";
    case ApiCall::Realloc: return "realloc()";
    default: return "free()";
  }
}

const char* api_call_name(ApiCall call) {
  switch (call) {
    case ApiCall::Free: return "free";
    case ApiCall::Realloc: return "realloc";
    case ApiCall::UsableSize: return "malloc_usable_size";
    case ApiCall::Delete: return "operator delete";
    case ApiCall::DeleteArray: return "operator delete []";
    case ApiCall::FreeSized: return "free_sized";
  }
  return "free";
}

TraceRef block_allocation_trace(uintptr_t user) {
  const SlabHeap& slabs = g_allocator.slab_heap();
  if (slabs.contains(user)) {
    unsigned c = slabs.class_of(user);
    uintptr_t block = slabs.block_containing(user, c);
    return block != 0 ? g_block_traces.get(block, c).allocated : TraceRef{};
  }
  const GuardedPool& pool = g_allocator.guarded_pool();
  if (pool.contains(user)) {
    GuardedBlock b;
    return pool.find_live(user, &b) ? b.allocated : TraceRef{};
  }
  return g_block_traces.get(user, kLargeClass).allocated;
}

}  // namespace heapguard
