// SPDX-License-Identifier: Apache-2.0
// Text forms of the heap figures: the malloc_stats() report (glibc's layout,
// then heapguard's own lines) and the malloc_info() XML. Output goes line by
// line to a sink so that no formatting buffer is ever allocated.
#pragma once

#include <cstddef>

#include "frontend/allocator.h"

namespace heapguard {

using TextSink = void (*)(void* context, const char* text, size_t len);

void format_malloc_stats(const HeapFigures& f, TextSink sink, void* context);
void format_malloc_info(const HeapFigures& f, TextSink sink, void* context);

}  // namespace heapguard
