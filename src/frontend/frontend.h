// SPDX-License-Identifier: Apache-2.0
// frontend: the Allocator, thread caches, init/fork/thread-exit and the
// text forms of heap statistics. The override layer forwards to it.
#pragma once

#include "frontend/allocator.h"
#include "frontend/stats_format.h"
#include "frontend/thread_cache.h"
