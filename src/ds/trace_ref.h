// SPDX-License-Identifier: Apache-2.0
// Where a block was allocated or freed: a stack in the depot and the
// number of the thread that did it. Every layer that keeps block history
// (block traces, the guarded pool) and the reporter share this one type.
#pragma once

#include <cstdint>

namespace heapguard {

// Thread numbers as reports print them: T0 is the process's main thread,
// the others count up in the order their thread caches were created.
inline constexpr uint32_t kUnknownThread = 0xffffffffu;

struct TraceRef {
  uint32_t stack = 0;                // stack depot id; 0 = not recorded
  uint32_t thread = kUnknownThread;  // thread number
};

}  // namespace heapguard
