// SPDX-License-Identifier: Apache-2.0
// large: blocks beyond the size classes, each in its own mapping.
#pragma once

#include "large/large_heap.h"
#include "large/region_table.h"
