// SPDX-License-Identifier: Apache-2.0
// Policy: the per-block work the mode asks for, derived once at init from
// the sealed Options and sealed itself (layer frontend). Production and
// debug are one allocator: the inline fast paths test `checked` (one load,
// one branch predicted by the mode) and everything else happens on the
// checked paths in checked_paths.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "config/config.h"
#include "ds/ds.h"

namespace heapguard {

struct Policy {
  // Any per-block check or fill below: malloc and free leave the inline
  // fast path. False only in fast mode (unless options turn checks on).
  bool checked = false;
  bool check_slack = false;     // keyed canary after the requested size
  bool bounded_slack = false;   // hardened: only its first 9-16 bytes (CanaryCodec::fill_words)
  // The canary's first byte is 0 so a string read past the block stops
  // there (hardened). Debug and fuzz want the off-by-one NUL write (the
  // commonest overflow) reported instead, so their first byte is keyed too.
  bool canary_zero_first = false;
  uint32_t redzone = 0;         // left redzone and minimum right slack, bytes
  PoisonMode poison = PoisonMode::None;
  UafCheck uaf_check = UafCheck::None;
  bool mismatch = false;        // alloc-dealloc-mismatch
  bool type_mismatch = false;   // new-delete-type-mismatch
  bool scrub_large = false;     // freed large blocks never return old bytes
  size_t quarantine_bytes = 0;  // 0: no quarantine
  // Debug and fuzz: every block's allocation and free stacks, for reports.
  bool record_stacks = false;
  // Every small block from the guarded pool, against a guard page.
  bool guard_all = false;
  // Hardened: 1 in this many allocations from the guarded pool; 0 off.
  uint32_t sample_rate = 0;
  // With seed set, which allocations are sampled repeats from run to run
  // like the rest of the layout; 0: each thread draws from the OS.
  uint64_t sample_seed = 0;
};

Policy make_policy(const Options& o);

extern constinit Sealed<Policy> g_policy_page;
inline constexpr const Policy& g_policy = g_policy_page.value;

// Encodes the slot addresses held in thread-cache bins (freed blocks'
// addresses are the allocator's most sensitive data); sealed like the rest.
extern constinit Sealed<PointerCodec> g_bin_codec_page;
inline constexpr const PointerCodec& g_bin_codec = g_bin_codec_page.value;

}  // namespace heapguard
