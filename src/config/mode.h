// SPDX-License-Identifier: Apache-2.0
// The four modes of PRODUCT.md section 3. Chosen once at start-up from
// HEAPGUARD_MODE; the default is the production mode, hardened.
#pragma once

#include <cstdint>

namespace heapguard {

enum class Mode : uint8_t { Fast, Hardened, Debug, Fuzz };

inline constexpr Mode kDefaultMode = Mode::Hardened;

constexpr const char* mode_name(Mode m) {
  switch (m) {
    case Mode::Fast: return "fast";
    case Mode::Hardened: return "hardened";
    case Mode::Debug: return "debug";
    case Mode::Fuzz: return "fuzz";
  }
  return "hardened";
}

}  // namespace heapguard
