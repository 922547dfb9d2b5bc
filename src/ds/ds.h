// SPDX-License-Identifier: Apache-2.0
// ds: data structures with no policy: the fatal path and message builder,
// the metadata arena, intrusive lists, pointer encoding, the layout PRNG,
// sealed (read-only after init) values. Depends on core and platform only.
#pragma once

#include "ds/encoded_ptr.h"
#include "ds/fatal.h"
#include "ds/intrusive_list.h"
#include "ds/metadata_arena.h"
#include "ds/prng.h"
#include "ds/sealed.h"
#include "ds/stack_depot.h"
#include "ds/trace_ref.h"
