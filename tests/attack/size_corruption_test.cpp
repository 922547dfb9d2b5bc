// SPDX-License-Identifier: Apache-2.0
// Attack 4, overlapping chunks by size corruption: rewrite a block's size in
// its header (glibc: the size field in the 8 bytes before the pointer) so
// that free or realloc treats it as bigger, then allocate the bigger size
// and own the neighbour too. heapguard's header is keyed to the process and
// to its address: any change to the class or size bits fails the check on
// free, realloc and malloc_usable_size (heap-metadata-corruption). In
// debug and fuzz modes the 8 bytes before a small block are its left
// redzone, so the literal glibc write is a heap-buffer-overflow there.
#include <malloc.h>
#include <unistd.h>

#include <cstring>

#include "death_test_util.h"

namespace heapguard::test {

// Header bit fields (docs/architecture.md 2.3): class id at 16, unused
// bytes after the requested size at 27.
constexpr unsigned kClassShift = 16;
constexpr unsigned kUnusedShift = 27;

char* header_of(char* user, size_t n) { return is_large(n) ? user - 8 : small_header(user); }

void add_to_header(char* header, uint64_t delta) {
  uint64_t word;
  memcpy(&word, header, 8);
  word += delta;
  memcpy(opaque(header), &word, 8);
}

// Reached only if the corruption went unreported: looks for a block that
// overlaps the neighbour the attacker wanted to reach.
[[noreturn]] void fail_if_overlapping(const char* neighbour, size_t n, size_t grown) {
  drain_quarantine();
  for (int i = 0; i < (is_large(grown) ? 8 : 200); ++i) {
    char* q = opaque_chars(malloc(grown));
    if (q <= neighbour + n && neighbour < q + grown) {
      const char msg[] = "a new block overlaps a live neighbour\n";
      (void)!write(2, msg, sizeof msg - 1);
      _exit(3);
    }
  }
  _exit(0);
}

std::string corrupted() { return report_head("heap-metadata-corruption"); }

class SizeCorruptionTest : public DeathTestBase {};

TEST_P(SizeCorruptionTest, BiggerClassThenFree) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        char* neighbour = opaque_chars(malloc(n));
        add_to_header(header_of(p, n), uint64_t{1} << kClassShift);
        free(p);
        fail_if_overlapping(neighbour, n, 2 * n);
      },
      corrupted());
}

TEST_P(SizeCorruptionTest, FewerUnusedBytesThenRealloc) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        char* neighbour = opaque_chars(malloc(n));
        // Claims more of the slot as requested: realloc would copy, and a
        // slack check would skip, bytes that belong to no one.
        add_to_header(header_of(p, n), ~uint64_t{0} << kUnusedShift);
        char* q = opaque_chars(realloc(p, 2 * n));
        free(q);
        fail_if_overlapping(neighbour, n, 2 * n);
      },
      corrupted());
}

TEST_P(SizeCorruptionTest, UsableSizeChecksTheHeaderToo) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        add_to_header(header_of(p, n), uint64_t{3} << kClassShift);
        size_t usable = malloc_usable_size(p);
        // A program trusting the answer would write this far.
        exit(usable > n + 4096 ? 3 : 0);
      },
      corrupted());
}

// The glibc write as is: a chunk size (0x1001 with PREV_INUSE) stored in the
// 8 bytes in front of the pointer.
TEST_P(SizeCorruptionTest, GlibcSizeFieldWrite) {
  size_t n = GetParam();
  EXPECT_DEATH(
      {
        char* p = opaque_chars(malloc(n));
        char* neighbour = opaque_chars(malloc(n));
        uint64_t size_field = 0x1001;
        memcpy(opaque(p - 8), &size_field, 8);
        free(p);
        fail_if_overlapping(neighbour, n, 0xff0);
      },
      redzone_mode() && !is_large(n) ? report_head("heap-buffer-overflow") + "0x[0-9a-f]+ is located [0-9]+ bytes? to the left of " + region(n)
                                     : corrupted());
}

INSTANTIATE_TEST_SUITE_P(Sizes, SizeCorruptionTest, ::testing::ValuesIn(kDeathSizes));

}  // namespace heapguard::test
