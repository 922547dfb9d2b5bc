// SPDX-License-Identifier: Apache-2.0
// The 8-byte chunk header in front of every block (layer slab; large blocks
// use it too). One word, packed, with a 16-bit checksum keyed by a
// per-process secret and mixed with the header's own address: a header
// cannot be forged without the key, nor copied to another address, and a
// stray write into it is caught when the block is freed.
// Layout (bit ranges):
//   [0,16) checksum  [16,22) class id (0 = large)  [22,24) state
//   [24,26) origin   [26] reserved (must be 0)  [27,47) unused bytes after
//   the requested size  [47,63) user offset in 16-byte units
// The user offset is nonzero when the program's pointer is not the slot's
// block start: a left redzone (debug, fuzz) or an over-aligned block. The
// header stays at the slot's start, so any pointer into the slot leads to
// it through the slab's arithmetic, and the offset says which pointer is
// the block's one valid handle.
#pragma once

#include <cstdint>

#include "core/core.h"
#include "ds/ds.h"

namespace heapguard {

enum class ChunkState : uint8_t { Unused = 0, Allocated = 1, Quarantined = 2, Free = 3 };

// Which API family allocated the block; release through another family is
// an alloc-dealloc mismatch. The aligned C functions are the malloc family.
enum class Origin : uint8_t { Malloc = 0, New = 1, NewArray = 2 };

struct ChunkHeader {
  unsigned class_id = 0;
  ChunkState state = ChunkState::Unused;
  Origin origin = Origin::Malloc;
  bool aligned_alias = false;  // reserved bit; a header with it set is corrupt
  uint32_t unused_bytes = 0;   // bytes usable from the user pointer minus requested size (< 2^20)
  uint32_t alias_offset16 = 0; // user pointer - block start, in 16-byte units
};

inline constexpr uint32_t kMaxUnusedBytes = (1u << 20) - 1;
inline constexpr uint32_t kMaxAliasOffset16 = (1u << 16) - 1;

class HeaderCodec {
 public:
  constexpr explicit HeaderCodec(uint64_t key) : key_(key) {}
  // Called once at init with fresh entropy, before the first header exists.
  void set_key(uint64_t key) { key_ = key; }

  HEAPGUARD_FAST_PATH uint64_t pack(const ChunkHeader& h, uintptr_t header_address) const {
    uint64_t bits = (uint64_t(h.class_id) << 16) | (uint64_t(h.state) << 22) | (uint64_t(h.origin) << 24) |
                    (uint64_t(h.aligned_alias) << 26) | (uint64_t(h.unused_bytes) << 27) |
                    (uint64_t(h.alias_offset16) << 47);
    return bits | checksum(bits, header_address);
  }

  // False if the checksum does not match: the header was corrupted, forged,
  // or the pointer is not a block start.
  HEAPGUARD_FAST_PATH bool unpack(uint64_t word, uintptr_t header_address, ChunkHeader* out) const {
    uint64_t bits = word & ~uint64_t{0xffff};
    if (HEAPGUARD_UNLIKELY((word & 0xffff) != checksum(bits, header_address))) return false;
    out->class_id = unsigned(bits >> 16) & 63;
    out->state = ChunkState((bits >> 22) & 3);
    out->origin = Origin((bits >> 24) & 3);
    out->aligned_alias = ((bits >> 26) & 1) != 0;
    out->unused_bytes = uint32_t(bits >> 27) & kMaxUnusedBytes;
    out->alias_offset16 = uint32_t(bits >> 47) & kMaxAliasOffset16;
    return true;
  }

  HEAPGUARD_FAST_PATH static uint64_t load(uintptr_t user) { return *reinterpret_cast<const volatile uint64_t*>(user - 8); }
  HEAPGUARD_FAST_PATH static void store(uintptr_t user, uint64_t word) { *reinterpret_cast<volatile uint64_t*>(user - 8) = word; }

 private:
  HEAPGUARD_FAST_PATH uint64_t checksum(uint64_t bits, uintptr_t address) const {
    uint64_t x = (bits ^ key_) + (address * 0x9E3779B97F4A7C15ULL);
    x ^= x >> 31;
    x *= 0xD6E8FEB86659FD93ULL;
    return x >> 48;
  }

  uint64_t key_;
};

// The process's codec, keyed at init and then sealed read-only, so a write
// primitive cannot replace the key with one the attacker knows. A global
// rather than a member of the allocator so the inline fast paths reach it
// with one load; the reference is resolved at compile time.
extern constinit Sealed<HeaderCodec> g_header_codec_page;
inline constexpr const HeaderCodec& g_header_codec = g_header_codec_page.value;

}  // namespace heapguard
