// SPDX-License-Identifier: Apache-2.0
// Shared helpers for death and attack tests: sizes covering each allocator
// range, a barrier against the compiler eliding malloc/free pairs, what the
// running mode claims to catch (PRODUCT.md section 3), and regexes for the
// report lines of the hardening spec.
#pragma once

#include <gtest/gtest.h>
#include <heapguard/heapguard.h>
#include <malloc.h>
#include <stdlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace heapguard::test {

// Small (slab), a few KiB (slab, multi-page slots), and beyond the largest
// size class (its own mapping).
inline constexpr size_t kDeathSizes[] = {24, 5000, 300000};
// The sizes that live in slabs, for tests about slab slots and neighbours.
inline constexpr size_t kSlabDeathSizes[] = {24, 5000};
// One per range again, none a class size nor a multiple of 16, so every
// block has slack after its requested bytes for the canary to guard.
inline constexpr size_t kSlackSizes[] = {20, 4999, 300001};
// Requests above this are large blocks in every mode (the largest class
// holds 131080 bytes, less the redzones in debug and fuzz).
inline constexpr size_t kLargestSmallRequest = 131080 - 32;

inline void* opaque(void* p) {
  asm volatile("" : "+r"(p));
  return p;
}

inline char* opaque_chars(void* p) { return static_cast<char*>(opaque(p)); }

// A write the compiler must perform even into memory it believes dead.
inline void poke(void* p, unsigned char value) { *static_cast<volatile unsigned char*>(opaque(p)) = value; }
inline unsigned char peek(const void* p) {
  return *static_cast<const volatile unsigned char*>(opaque(const_cast<void*>(p)));
}
// Flips bits of a byte: the result always differs from whatever was there,
// whatever keyed canary or header byte that was.
inline void flip(void* p, unsigned char bits = 0x41) { poke(p, peek(p) ^ bits); }

// The classic off-by-one: fill all n bytes, change the byte after them,
// free. The slack check (or the right redzone) must name offset 0.
inline void overflow_one_byte_then_free(size_t n) {
  char* p = static_cast<char*>(opaque(malloc(n)));
  memset(p, 0x41, n);
  flip(p + n);
  free(p);
}

inline bool mode_is(const char* name) { return std::strcmp(heapguard_mode(), name) == 0; }
// Modes with a quarantine, byte-exact slack canaries, use-after-free checks
// and API-mismatch checks: every mode but fast.
inline bool hardening_mode() { return !mode_is("fast"); }
// Modes with left and right redzones around every small block.
inline bool redzone_mode() { return mode_is("debug") || mode_is("fuzz"); }
// The redzone (both sides) of a small block in the running mode.
inline size_t small_redzone() { return redzone_mode() ? 16 : 0; }
// The chunk header of a small block sits in front of its left redzone.
inline char* small_header(void* user) { return static_cast<char*>(user) - small_redzone() - 8; }
inline bool is_large(size_t n) { return n > kLargestSmallRequest; }

// The report's first line, for `cls` (the word after "HeapGuard:") and the
// faulting `address` (a regex), followed by the failing call's stack.
inline std::string report_head(const std::string& cls, const std::string& address = "0x[0-9a-f]+") {
  return "==[0-9]+==ERROR: HeapGuard: " + cls + " on address " + address +
         " at pc 0x[0-9a-f]+ thread T[0-9]+\n(    #[^\n]*\n)*";
}
// A fault heapguard diagnosed (a guard page, a quarantined or freed
// block): the report's head, the access line, the faulting stack, then
// `where` (the region line). The process then dies by SIGABRT.
inline std::string fault_report(const std::string& cls, const char* access, const std::string& where) {
  return report_head(cls) + access + " of size \\? at 0x[0-9a-f]+ thread T[0-9]+\n(    #[^\n]*\n)*" + where;
}

// "N-byte region [0xS,0xE)" with the exact requested size.
inline std::string region(size_t n) { return std::to_string(n) + "-byte region \\[0x[0-9a-f]+,0x[0-9a-f]+\\)"; }
inline std::string any_region() { return "[0-9]+-byte region \\[0x[0-9a-f]+,0x[0-9a-f]+\\)"; }

// A heap-buffer-overflow report naming the byte `k` past (right) or before
// (left) an n-byte block, found when the block was passed to `where`
// ("free\\(\\)", "realloc\\(\\)" or "the block left quarantine").
inline std::string overflow_report(size_t n, size_t k, bool right, const std::string& found) {
  std::string bytes = std::to_string(k) + " bytes? ";
  return report_head("heap-buffer-overflow") + "0x[0-9a-f]+ is located " + bytes + (right ? "to the right" : "to the left") +
         " of " + region(n) + "\nthe overwrite was found " + found + "\n";
}
inline std::string when_passed_to(const char* api) { return std::string("when the block was passed to ") + api; }

// When a write after free is found: for every block malloc_trim(0) drains,
// or, for a block that left the quarantine any other way (or never entered
// one), when its slot is handed out again.
inline constexpr char kFoundLeavingQuarantine[] = "when the block left quarantine";
inline constexpr char kFoundHandedOutAgain[] = "when the block's memory was handed out again";

inline std::string use_after_free_report(size_t n, size_t k, const std::string& found = kFoundLeavingQuarantine) {
  return report_head("heap-use-after-free") + "0x[0-9a-f]+ is located " + std::to_string(k) + " bytes inside of " +
         region(n) + "\nthe block was written after it was freed\nthe write was found " + found + "\n";
}

inline std::string double_free_report(const char* api = "free\\(\\)") {
  return report_head("double-free") + "0x[0-9a-f]+ is located 0 bytes inside of " + any_region() +
         "\nthe block is already free \\(or waiting in quarantine\\)\nthe pointer was passed to " + api + "\n([^\n]*\n)*SUMMARY: HeapGuard: double-free";
}

// Drains the quarantine: every block in it is verified and recycled.
inline void drain_quarantine() { malloc_trim(0); }

// Pushes every block freed before it out of a quarantine of at most 1 MiB
// (quarantine_size_mb=1) without checking it: sixteen times that budget in
// frees of 4000-byte blocks, a class none of the tests' sizes share. The
// blocks pushed out go back to the freeing thread's cache unchecked.
inline void push_out_of_quarantine() {
  for (int i = 0; i < 4096; ++i) free(opaque(malloc(4000)));
}

// Allocates `count` blocks of n bytes and keeps them, so that a freed slot
// of n's class that is back in this thread's cache (it left the quarantine
// unchecked, or there is none) is handed out again, and checked, among
// them. The cache hands slots out last in, first out, so it is usually the
// first one.
inline void hand_out_again(size_t n, int count = 256) {
  for (int i = 0; i < count; ++i) (void)opaque(malloc(n));
}

// Finds two blocks of `n` bytes in adjacent slots, lo below hi, among `count`
// fresh allocations (randomized modes hand slots out in no order, but slots
// in one slab still sit next to each other). The slot pitch is the smallest
// gap between any two of them. Both stay allocated; the rest are freed.
struct AdjacentPair {
  char* lo = nullptr;
  char* hi = nullptr;
};
inline AdjacentPair adjacent_pair(size_t n, size_t count = 256) {
  std::vector<char*> blocks;
  blocks.reserve(count);
  for (size_t i = 0; i < count; ++i) blocks.push_back(opaque_chars(malloc(n)));
  std::vector<char*> sorted = blocks;
  std::sort(sorted.begin(), sorted.end());
  size_t pitch = SIZE_MAX;
  for (size_t i = 1; i < sorted.size(); ++i) pitch = std::min(pitch, size_t(sorted[i] - sorted[i - 1]));
  AdjacentPair pair;
  for (size_t i = 1; i < sorted.size() && pair.lo == nullptr; ++i) {
    if (size_t(sorted[i] - sorted[i - 1]) == pitch) pair = {sorted[i - 1], sorted[i]};
  }
  for (char* b : blocks) {
    if (b != pair.lo && b != pair.hi) free(b);
  }
  return pair;
}

// Adds to HEAPGUARD_OPTIONS for the death-test children started while it
// lives ("threadsafe" death tests re-execute the binary, whose allocator
// then initialises from the new environment). Appended, so what CTest set
// for the whole suite (sample_rate=0) stays; a later value wins.
class ScopedOptions {
 public:
  explicit ScopedOptions(const char* options) {
    const char* old = getenv("HEAPGUARD_OPTIONS");
    had_old_ = old != nullptr;
    if (had_old_) old_ = old;
    std::string combined = had_old_ ? old_ + ":" + options : std::string(options);
    setenv("HEAPGUARD_OPTIONS", combined.c_str(), 1);
  }
  ~ScopedOptions() {
    if (had_old_) {
      setenv("HEAPGUARD_OPTIONS", old_.c_str(), 1);
    } else {
      unsetenv("HEAPGUARD_OPTIONS");
    }
  }
  ScopedOptions(const ScopedOptions&) = delete;
  ScopedOptions& operator=(const ScopedOptions&) = delete;

 private:
  bool had_old_ = false;
  std::string old_;
};

class DeathTestBase : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

}  // namespace heapguard::test
