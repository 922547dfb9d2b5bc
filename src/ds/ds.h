// SPDX-License-Identifier: Apache-2.0
// ds: data structures with no policy: the fatal path and message builder,
// the metadata arena, intrusive lists. Depends on core and platform only.
#pragma once

#include "ds/fatal.h"
#include "ds/intrusive_list.h"
#include "ds/metadata_arena.h"
