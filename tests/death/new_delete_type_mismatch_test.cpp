// SPDX-License-Identifier: Apache-2.0
// new-delete-type-mismatch (hardened, debug, fuzz): sized operator delete
// (or free_sized) given a size other than the one allocated: the program
// deletes through a pointer to the wrong type.
#include <new>

#include "death_test_util.h"

// C23; glibc 2.36 does not declare it, heapguard exports it.
extern "C" void free_sized(void* p, size_t size) noexcept;

namespace heapguard::test {

std::string type_mismatch_report(size_t n, size_t m, const char* releaser) {
  return report_head("new-delete-type-mismatch") + "0x[0-9a-f]+ is located 0 bytes inside of " + region(n) +
         "\nallocated with size " + std::to_string(n) + ", released by " + releaser + " with size " +
         std::to_string(m) + "\n";
}

class NewDeleteTypeMismatchDeathTest : public DeathTestBase {};

TEST_P(NewDeleteTypeMismatchDeathTest, SizedDeleteWithALargerSize) {
  size_t n = GetParam();
  EXPECT_DEATH(::operator delete(opaque(::operator new(n)), n + 8), type_mismatch_report(n, n + 8, "operator delete"));
}

TEST_P(NewDeleteTypeMismatchDeathTest, SizedDeleteWithASmallerSize) {
  size_t n = GetParam();
  // One byte off still is another type's size.
  EXPECT_DEATH(::operator delete(opaque(::operator new(n)), n - 1), type_mismatch_report(n, n - 1, "operator delete"));
}

TEST_P(NewDeleteTypeMismatchDeathTest, SizedArrayDelete) {
  size_t n = GetParam();
  EXPECT_DEATH(::operator delete[](opaque(::operator new[](n)), n / 2),
               type_mismatch_report(n, n / 2, "operator delete \\[\\]"));
}

TEST_P(NewDeleteTypeMismatchDeathTest, FreeSizedWithTheWrongSize) {
  size_t n = GetParam();
  EXPECT_DEATH(free_sized(opaque(malloc(n)), n + 1), type_mismatch_report(n, n + 1, "free_sized\\(\\)"));
}

TEST_P(NewDeleteTypeMismatchDeathTest, AlignedSizedDelete) {
  size_t n = GetParam();
  EXPECT_DEATH(::operator delete(opaque(::operator new(n, std::align_val_t{64})), n + 16, std::align_val_t{64}),
               type_mismatch_report(n, n + 16, "operator delete"));
}

// A real type confusion: the object was made as a Derived and deleted as a
// Base without a virtual destructor, so the compiler passes sizeof(Base).
struct Base {
  char tag[16];
};
struct Derived : Base {
  char more[48];
};

TEST(NewDeleteTypeMismatchTypesDeathTest, DeleteThroughABaseWithoutVirtualDestructor) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Base* b = static_cast<Base*>(opaque(new Derived()));
        ::operator delete(b, sizeof(Base));
      },
      type_mismatch_report(sizeof(Derived), sizeof(Base), "operator delete"));
}

TEST_P(NewDeleteTypeMismatchDeathTest, TheRightSizesAreFine) {
  size_t n = GetParam();
  EXPECT_EXIT(
      {
        ::operator delete(opaque(::operator new(n)), n);
        ::operator delete[](opaque(::operator new[](n)), n);
        ::operator delete(opaque(::operator new(n, std::align_val_t{64})), n, std::align_val_t{64});
        free_sized(opaque(malloc(n)), n);
        free_sized(opaque(calloc(n, 1)), n);
        free_sized(nullptr, 0);
        // A block grown by realloc is released with its new size.
        free_sized(opaque(realloc(opaque(malloc(n)), n + 3)), n + 3);
        drain_quarantine();
        exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

INSTANTIATE_TEST_SUITE_P(Sizes, NewDeleteTypeMismatchDeathTest, ::testing::ValuesIn(kDeathSizes));

}  // namespace heapguard::test
