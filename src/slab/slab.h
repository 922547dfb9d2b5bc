// SPDX-License-Identifier: Apache-2.0
// slab: size classes, chunk headers and the central slab heap.
#pragma once

#include "slab/chunk_header.h"
#include "slab/size_class_map.h"
#include "slab/slab_heap.h"
