// SPDX-License-Identifier: Apache-2.0
// Shared wording of the reports the frontend writes about one block
// (layer frontend): where an address lies relative to a block, and the
// name of the API call that handed the pointer back.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ds/ds.h"

namespace heapguard {

enum class ApiCall : uint8_t;

// "0xA is located K bytes inside of / to the left of / to the right of
// N-byte region [0xS,0xE)": the PRODUCT.md region line.
MessageBuilder& describe_region(MessageBuilder& m, uintptr_t p, uintptr_t start, size_t size);
const char* api_call_name(ApiCall call);

}  // namespace heapguard
