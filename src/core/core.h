// SPDX-License-Identifier: Apache-2.0
// core: compiler attributes, bit operations, checked arithmetic and the CHECK
// macros. The bottom layer: it depends on nothing, so every layer can use it.
#pragma once

#include "core/attributes.h"
#include "core/bits.h"
#include "core/check.h"
#include "core/hash.h"
