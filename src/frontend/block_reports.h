// SPDX-License-Identifier: Apache-2.0
// How the frontend reports an error about one block (layer frontend): the
// block's region and history (allocation and free stacks) go to the
// reporter with the detail lines; the reporter adds the current stack.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ds/ds.h"
#include "frontend/block_traces.h"
#include "slab/slab.h"

namespace heapguard {

enum class ApiCall : uint8_t;

// The block an error is about: [start, start + size) as the program sees
// it, and its history (empty when not recorded). size 0 with start 0: no
// block (a wild pointer).
struct BlockFacts {
  uintptr_t start = 0;
  size_t size = 0;
  BlockHistory history;
};

// Whether the process may go on after the report (halt_on_error=0): the
// heap is still consistent, because the caller abandons the operation
// (a bad free is ignored) or completes it normally (a mismatch).
enum class Recovery : uint8_t { Fatal, Recoverable };

// Reports and, unless the error is recoverable and the options say go on,
// ends the process.
void report_block_error(ErrorKind kind, uintptr_t address, const BlockFacts& block, const MessageBuilder& detail,
                        Recovery recovery);
[[noreturn]] void report_block_fatal(ErrorKind kind, uintptr_t address, const BlockFacts& block,
                                     const MessageBuilder& detail);

// What a pointer that is no heapguard block's points at, from the process's
// mappings: "0xP is on the stack of thread T0", "... is a global of
// /path/module", "... nothing is mapped there (a wild pointer)". Reads
// /proc/self/maps with raw system calls: no allocation.
void describe_foreign_pointer(MessageBuilder& m, uintptr_t p);

// The API family a release call expects, and the names alloc-dealloc and
// new-delete mismatch reports give the two sides ("malloc()",
// "operator delete []").
Origin expected_origin(ApiCall call);
const char* origin_name(Origin o);
const char* release_name(ApiCall call);

// "the pointer was passed to free()": names the entry point.
const char* api_call_name(ApiCall call);

// The process-wide block histories (debug and fuzz record every block).
extern constinit BlockTraces g_block_traces;

}  // namespace heapguard
