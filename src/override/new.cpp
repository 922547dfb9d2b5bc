// SPDX-License-Identifier: Apache-2.0
// Every replaceable global operator new and delete. The only file built
// with exceptions: operator new reports failure with std::bad_alloc after
// calling the installed new_handler, as the standard requires.
#include <new>

#include "frontend/frontend.h"

using heapguard::g_allocator;
using heapguard::Origin;

#define HEAPGUARD_CXX_EXPORT __attribute__((visibility("default")))

namespace {

// [new.delete.single]: loop calling the new_handler until allocation
// succeeds; no handler means std::bad_alloc.
HEAPGUARD_SLOW_PATH void* new_slow(size_t n, size_t align, Origin origin) {
  for (;;) {
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
    void* p = align <= heapguard::kMinAlign ? g_allocator.allocate(n, origin) : g_allocator.allocate_aligned(align, n, origin);
    if (p != nullptr) return p;
  }
}

HEAPGUARD_FAST_PATH void* new_impl(size_t n, Origin origin) {
  void* p = g_allocator.allocate(n, origin);
  if (HEAPGUARD_LIKELY(p != nullptr)) return p;
  return new_slow(n, heapguard::kMinAlign, origin);
}

void* new_aligned_impl(size_t n, std::align_val_t align, Origin origin) {
  void* p = g_allocator.allocate_aligned(size_t(align), n, origin);
  if (HEAPGUARD_LIKELY(p != nullptr)) return p;
  return new_slow(n, size_t(align), origin);
}

// The nothrow forms behave as if they called the throwing form and caught
// std::bad_alloc (a new_handler may throw it to give up).
void* new_nothrow(size_t n, size_t align, Origin origin) noexcept {
  try {
    if (align <= heapguard::kMinAlign) return new_impl(n, origin);
    return new_aligned_impl(n, std::align_val_t(align), origin);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

}  // namespace

HEAPGUARD_CXX_EXPORT void* operator new(size_t n) { return new_impl(n, Origin::New); }
HEAPGUARD_CXX_EXPORT void* operator new[](size_t n) { return new_impl(n, Origin::NewArray); }
HEAPGUARD_CXX_EXPORT void* operator new(size_t n, const std::nothrow_t&) noexcept { return new_nothrow(n, 0, Origin::New); }
HEAPGUARD_CXX_EXPORT void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  return new_nothrow(n, 0, Origin::NewArray);
}
HEAPGUARD_CXX_EXPORT void* operator new(size_t n, std::align_val_t a) { return new_aligned_impl(n, a, Origin::New); }
HEAPGUARD_CXX_EXPORT void* operator new[](size_t n, std::align_val_t a) { return new_aligned_impl(n, a, Origin::NewArray); }
HEAPGUARD_CXX_EXPORT void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return new_nothrow(n, size_t(a), Origin::New);
}
HEAPGUARD_CXX_EXPORT void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return new_nothrow(n, size_t(a), Origin::NewArray);
}

// The size and alignment arguments are the program's promise about the
// block; the hardening layer checks them (new-delete-type-mismatch).
HEAPGUARD_CXX_EXPORT void operator delete(void* p) noexcept { g_allocator.deallocate(p); }
HEAPGUARD_CXX_EXPORT void operator delete[](void* p) noexcept { g_allocator.deallocate(p); }
HEAPGUARD_CXX_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { g_allocator.deallocate(p); }
HEAPGUARD_CXX_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { g_allocator.deallocate(p); }
HEAPGUARD_CXX_EXPORT void operator delete(void* p, size_t) noexcept { g_allocator.deallocate(p); }
HEAPGUARD_CXX_EXPORT void operator delete[](void* p, size_t) noexcept { g_allocator.deallocate(p); }
HEAPGUARD_CXX_EXPORT void operator delete(void* p, std::align_val_t) noexcept { g_allocator.deallocate(p); }
HEAPGUARD_CXX_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { g_allocator.deallocate(p); }
HEAPGUARD_CXX_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  g_allocator.deallocate(p);
}
HEAPGUARD_CXX_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  g_allocator.deallocate(p);
}
HEAPGUARD_CXX_EXPORT void operator delete(void* p, size_t, std::align_val_t) noexcept { g_allocator.deallocate(p); }
HEAPGUARD_CXX_EXPORT void operator delete[](void* p, size_t, std::align_val_t) noexcept { g_allocator.deallocate(p); }
