// SPDX-License-Identifier: Apache-2.0
// Every replaceable operator new and delete of C++17/20: plain, array, nothrow, sized
// and std::align_val_t, paired the way the standard requires, plus the failure
// protocol (std::bad_alloc, nullptr for nothrow, and the new_handler retry loop).
#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>

#include "block_pattern.h"

namespace {

using heapguard::test::escape;
using heapguard::test::fill_pattern;
using heapguard::test::first_mismatch;
using heapguard::test::is_aligned;
using heapguard::test::opaque_size;

const size_t kSizes[] = {0, 1, 8, 16, 100, 4096, 70000, 131072, 131073, 1u << 20};
constexpr size_t kImpossible[] = {SIZE_MAX, SIZE_MAX - 4096, static_cast<size_t>(PTRDIFF_MAX) + 1};

// Writes and verifies a pattern over the block so an allocation that is too small or
// shared with another live block fails here.
void use_block(void* p, size_t n, size_t alignment, unsigned seed) {
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(is_aligned(p, alignment)) << p << " alignment " << alignment;
  EXPECT_GE(malloc_usable_size(p), n);
  fill_pattern(p, n, seed);
  EXPECT_EQ(first_mismatch(p, n, seed), n);
  escape(p);
}

TEST(OperatorNew, PlainAndArrayWithMatchingDeletes) {
  unsigned seed = 0;
  for (size_t n : kSizes) {
    void* a = ::operator new(n);
    use_block(a, n, 16, ++seed);
    ::operator delete(a);

    void* b = ::operator new(n);
    use_block(b, n, 16, ++seed);
    ::operator delete(b, n);

    void* c = ::operator new[](n);
    use_block(c, n, 16, ++seed);
    ::operator delete[](c);

    void* d = ::operator new[](n);
    use_block(d, n, 16, ++seed);
    ::operator delete[](d, n);
  }
}

TEST(OperatorNew, NothrowWithMatchingDeletes) {
  unsigned seed = 100;
  for (size_t n : kSizes) {
    void* a = ::operator new(n, std::nothrow);
    use_block(a, n, 16, ++seed);
    ::operator delete(a, std::nothrow);

    void* b = ::operator new(n, std::nothrow);
    use_block(b, n, 16, ++seed);
    ::operator delete(b);

    void* c = ::operator new[](n, std::nothrow);
    use_block(c, n, 16, ++seed);
    ::operator delete[](c, std::nothrow);

    void* d = ::operator new[](n, std::nothrow);
    use_block(d, n, 16, ++seed);
    ::operator delete[](d, n);
  }
}

TEST(OperatorNew, ZeroSizeGivesDistinctBlocks) {
  void* a = ::operator new(0);
  void* b = ::operator new(0);
  void* c = ::operator new[](0);
  void* d = ::operator new[](0);
  EXPECT_NE(a, nullptr);
  EXPECT_NE(a, b);
  EXPECT_NE(c, d);
  EXPECT_NE(a, c);
  ::operator delete(a);
  ::operator delete(b, size_t{0});
  ::operator delete[](c);
  ::operator delete[](d, size_t{0});
}

TEST(OperatorNew, AlignedVariantsForEveryAlignment) {
  unsigned seed = 200;
  for (size_t alignment = 16; alignment <= 4096; alignment <<= 1) {
    const std::align_val_t al{alignment};
    for (size_t n : {size_t{0}, size_t{1}, alignment - 1, alignment, alignment + 1, 3 * alignment,
                     size_t{200000}}) {
      SCOPED_TRACE(testing::Message() << "alignment " << alignment << " size " << n);
      void* a = ::operator new(n, al);
      use_block(a, n, alignment, ++seed);
      ::operator delete(a, al);

      void* b = ::operator new(n, al);
      use_block(b, n, alignment, ++seed);
      ::operator delete(b, n, al);

      void* c = ::operator new[](n, al);
      use_block(c, n, alignment, ++seed);
      ::operator delete[](c, al);

      void* d = ::operator new[](n, al);
      use_block(d, n, alignment, ++seed);
      ::operator delete[](d, n, al);

      void* e = ::operator new(n, al, std::nothrow);
      use_block(e, n, alignment, ++seed);
      ::operator delete(e, al, std::nothrow);

      void* f = ::operator new[](n, al, std::nothrow);
      use_block(f, n, alignment, ++seed);
      ::operator delete[](f, al, std::nothrow);
    }
  }
}

struct alignas(256) OverAligned {
  unsigned char bytes[300];
};

TEST(OperatorNew, NewExpressionsUseTheAlignedOperators) {
  auto* one = new OverAligned;
  EXPECT_TRUE(is_aligned(one, 256));
  std::memset(one->bytes, 1, sizeof one->bytes);
  delete one;
  auto* many = new OverAligned[5];
  EXPECT_TRUE(is_aligned(many, 256));
  std::memset(many, 2, 5 * sizeof(OverAligned));
  delete[] many;
  auto* nothrow_one = new (std::nothrow) OverAligned;
  ASSERT_NE(nothrow_one, nullptr);
  EXPECT_TRUE(is_aligned(nothrow_one, 256));
  delete nothrow_one;
  auto* scalars = new std::uint64_t[1000]();
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(scalars[i], 0u);
  delete[] scalars;
}

TEST(OperatorNew, ImpossibleSizeThrowsBadAlloc) {
  for (size_t n : kImpossible) {
    EXPECT_THROW(escape(::operator new(opaque_size(n))), std::bad_alloc) << n;
    EXPECT_THROW(escape(::operator new[](opaque_size(n))), std::bad_alloc) << n;
    for (size_t alignment : {size_t{16}, size_t{64}, size_t{4096}}) {
      const std::align_val_t al{alignment};
      EXPECT_THROW(escape(::operator new(opaque_size(n), al)), std::bad_alloc) << n;
      EXPECT_THROW(escape(::operator new[](opaque_size(n), al)), std::bad_alloc) << n;
    }
  }
}

TEST(OperatorNew, NothrowImpossibleSizeReturnsNull) {
  for (size_t n : kImpossible) {
    EXPECT_EQ(::operator new(opaque_size(n), std::nothrow), nullptr) << n;
    EXPECT_EQ(::operator new[](opaque_size(n), std::nothrow), nullptr) << n;
    const std::align_val_t al{64};
    EXPECT_EQ(::operator new(opaque_size(n), al, std::nothrow), nullptr) << n;
    EXPECT_EQ(::operator new[](opaque_size(n), al, std::nothrow), nullptr) << n;
  }
}

// The handler state lives in globals because std::new_handler is a plain function
// pointer. Each test installs its handler and removes it whatever the outcome.
int g_handler_calls = 0;

struct HandlerGaveUp : std::runtime_error {
  HandlerGaveUp() : std::runtime_error("new_handler gave up") {}
};

// First call: returns, asking operator new to retry. Second call: uninstalls itself,
// so the retry finds no handler and must throw std::bad_alloc.
void uninstalling_handler() {
  if (++g_handler_calls >= 2) std::set_new_handler(nullptr);
}

// First call: returns. Second call: throws its own exception, which must propagate
// out of operator new unchanged.
void throwing_handler() {
  if (++g_handler_calls >= 2) throw HandlerGaveUp();
}

// Throws std::bad_alloc on its first call, which the nothrow forms turn into nullptr.
void bad_alloc_handler() {
  ++g_handler_calls;
  throw std::bad_alloc();
}

class NewHandler : public testing::Test {
 protected:
  void SetUp() override { g_handler_calls = 0; }
  void TearDown() override { std::set_new_handler(nullptr); }
};

TEST_F(NewHandler, IsRetriedUntilItUninstallsItself) {
  std::set_new_handler(uninstalling_handler);
  EXPECT_THROW(escape(::operator new(opaque_size(SIZE_MAX))), std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 2);
  EXPECT_EQ(std::get_new_handler(), nullptr);

  g_handler_calls = 0;
  std::set_new_handler(uninstalling_handler);
  EXPECT_THROW(escape(::operator new[](opaque_size(SIZE_MAX))), std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 2);

  g_handler_calls = 0;
  std::set_new_handler(uninstalling_handler);
  EXPECT_THROW(escape(::operator new(opaque_size(SIZE_MAX), std::align_val_t{128})), std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 2);
}

TEST_F(NewHandler, ExceptionFromHandlerPropagates) {
  std::set_new_handler(throwing_handler);
  EXPECT_THROW(escape(::operator new(opaque_size(SIZE_MAX))), HandlerGaveUp);
  EXPECT_EQ(g_handler_calls, 2);

  g_handler_calls = 0;
  EXPECT_THROW(escape(::operator new[](opaque_size(SIZE_MAX), std::align_val_t{64})), HandlerGaveUp);
  EXPECT_EQ(g_handler_calls, 2);
}

TEST_F(NewHandler, NothrowFormsCallItAndReturnNull) {
  std::set_new_handler(uninstalling_handler);
  EXPECT_EQ(::operator new(opaque_size(SIZE_MAX), std::nothrow), nullptr);
  EXPECT_EQ(g_handler_calls, 2);

  g_handler_calls = 0;
  std::set_new_handler(bad_alloc_handler);
  EXPECT_EQ(::operator new[](opaque_size(SIZE_MAX), std::nothrow), nullptr);
  EXPECT_EQ(g_handler_calls, 1);

  g_handler_calls = 0;
  std::set_new_handler(bad_alloc_handler);
  EXPECT_EQ(::operator new(opaque_size(SIZE_MAX), std::align_val_t{256}, std::nothrow), nullptr);
  EXPECT_EQ(g_handler_calls, 1);
}

TEST_F(NewHandler, IsNotCalledWhenAllocationSucceeds) {
  std::set_new_handler(throwing_handler);
  void* p = ::operator new(1000);
  void* q = ::operator new(1000, std::align_val_t{512});
  EXPECT_EQ(g_handler_calls, 0);
  ::operator delete(p, size_t{1000});
  ::operator delete(q, size_t{1000}, std::align_val_t{512});
}

}  // namespace
