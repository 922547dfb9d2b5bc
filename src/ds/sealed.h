// SPDX-License-Identifier: Apache-2.0
// Sealed<T>: a value that is written once at init and then made read-only,
// so that a heap overflow or a write-what-where primitive cannot change it
// (keys, the mode policy). The wrapper is page-aligned and a whole number of
// pages long, so sealing it protects nothing else and nothing else shares
// its pages.
#pragma once

#include <cstddef>

#include "platform/platform.h"

namespace heapguard {

inline constexpr size_t kSealedPageSize = 4096;

template <typename T>
struct alignas(kSealedPageSize) Sealed {
  T value;

  // Idempotent; after seal() any write to value faults.
  void seal() { pal::Pal::set_read_only(this, sizeof *this, true); }
  // Only for tests and for fork children that must re-key: reopens the page.
  void unseal() { pal::Pal::set_read_only(this, sizeof *this, false); }
};

}  // namespace heapguard
