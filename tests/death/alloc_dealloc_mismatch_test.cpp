// SPDX-License-Identifier: Apache-2.0
// alloc-dealloc-mismatch (hardened, debug, fuzz): a block released through
// another API family than the one that allocated it, told from the origin
// recorded in its header: malloc/delete, malloc/delete[], new/free,
// new/delete[], new[]/free, new[]/delete.
#include <new>

#include "death_test_util.h"

namespace heapguard::test {

enum class Family { Malloc, New, NewArray };

void* allocate(Family f, size_t n) {
  switch (f) {
    case Family::Malloc: return opaque(malloc(n));
    case Family::New: return opaque(::operator new(n));
    case Family::NewArray: return opaque(::operator new[](n));
  }
  return nullptr;
}

void release(Family f, void* p) {
  switch (f) {
    case Family::Malloc: free(p); break;
    case Family::New: ::operator delete(p); break;
    case Family::NewArray: ::operator delete[](p); break;
  }
}

const char* allocator_text(Family f) {
  switch (f) {
    case Family::Malloc: return "malloc\\(\\)";
    case Family::New: return "operator new";
    case Family::NewArray: return "operator new \\[\\]";
  }
  return "";
}

const char* releaser_text(Family f) {
  switch (f) {
    case Family::Malloc: return "free\\(\\)";
    case Family::New: return "operator delete";
    case Family::NewArray: return "operator delete \\[\\]";
  }
  return "";
}

std::string mismatch_report(Family from, Family to, size_t n) {
  return report_head("alloc-dealloc-mismatch") + "0x[0-9a-f]+ is located 0 bytes inside of " + region(n) +
         "\nallocated by " + allocator_text(from) + ", released by " + releaser_text(to) + "\n";
}

struct Case {
  Family from;
  Family to;
};
constexpr Case kMismatches[] = {
    {Family::Malloc, Family::New},   {Family::Malloc, Family::NewArray}, {Family::New, Family::Malloc},
    {Family::New, Family::NewArray}, {Family::NewArray, Family::Malloc}, {Family::NewArray, Family::New},
};

class AllocDeallocMismatchDeathTest : public DeathTestBase {};

TEST_P(AllocDeallocMismatchDeathTest, EveryWrongPairIsReported) {
  size_t n = GetParam();
  for (const Case& c : kMismatches) {
    EXPECT_DEATH(release(c.to, allocate(c.from, n)), mismatch_report(c.from, c.to, n))
        << "allocated by " << int(c.from) << ", released by " << int(c.to);
  }
}

TEST_P(AllocDeallocMismatchDeathTest, ReallocOfAnOperatorNewBlock) {
  size_t n = GetParam();
  EXPECT_DEATH((void)opaque(realloc(allocate(Family::New, n), n * 2)),
               report_head("alloc-dealloc-mismatch") + "0x[0-9a-f]+ is located 0 bytes inside of " + region(n) +
                   "\nallocated by operator new, released by realloc\\(\\)\n");
}

TEST_P(AllocDeallocMismatchDeathTest, TheMatchingPairsAreFine) {
  size_t n = GetParam();
  EXPECT_EXIT(
      {
        for (Family f : {Family::Malloc, Family::New, Family::NewArray}) release(f, allocate(f, n));
        // Aligned and sized forms belong to the same families.
        ::operator delete(opaque(::operator new(n, std::align_val_t{64})), std::align_val_t{64});
        ::operator delete[](opaque(::operator new[](n, std::align_val_t{64})), std::align_val_t{64});
        ::operator delete(opaque(::operator new(n)), n);
        ::operator delete[](opaque(::operator new[](n)), n);
        ::operator delete(opaque(::operator new(n, std::nothrow)), std::nothrow);
        free(opaque(aligned_alloc(64, n)));
        free(opaque(realloc(opaque(malloc(n)), n + 10)));
        drain_quarantine();
        exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

INSTANTIATE_TEST_SUITE_P(Sizes, AllocDeallocMismatchDeathTest, ::testing::ValuesIn(kDeathSizes));

}  // namespace heapguard::test
