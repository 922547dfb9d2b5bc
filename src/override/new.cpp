// SPDX-License-Identifier: Apache-2.0
// Every replaceable global operator new and delete. The only file built
// with exceptions: operator new reports failure with std::bad_alloc after
// calling the installed new_handler, as the standard requires.
//
// libheapguard.so does not depend on libstdc++: loading it into every C
// program would cost ~0.6 ms and ~1.2 MiB per process. Only C++ code calls
// operator new, and C++ code brings libstdc++ with it, so every libstdc++
// symbol this file needs is referenced weakly and resolves whenever it can
// be reached: src/CMakeLists.txt weakens them in this file's object with
// objcopy (the list is override/libstdcxx_weak.txt). tests/api checks
// bad_alloc and new_handler behaviour.
#include <new>

#include "frontend/frontend.h"

using heapguard::g_allocator;
using heapguard::ApiCall;
using heapguard::Origin;

#define HEAPGUARD_CXX_EXPORT __attribute__((visibility("default")))

namespace {

// The libstdc++ entry points, read through an opaque register: the compiler
// must not assume a weak function's address is non-null. They are null when
// the process had no C++ runtime at start-up (a C program that dlopen()s a
// C++ module later): -z now resolved them then.
std::new_handler (*cxx_get_new_handler())() noexcept {
  std::new_handler (*fn)() noexcept = &std::get_new_handler;
  asm("" : "+r"(fn));
  return fn;
}

[[noreturn]] HEAPGUARD_COLD void no_cxx_runtime(size_t n) {
  heapguard::MessageBuilder m;
  m.str("operator new(").dec(n).str(") failed and no C++ runtime was loaded at start-up to throw std::bad_alloc");
  heapguard::report_fatal(heapguard::ErrorKind::OutOfMemory, 0, m);
}

HEAPGUARD_FAST_PATH void* allocate_for_new(size_t n, size_t align, Origin origin) {
  return align <= heapguard::kMinAlign ? g_allocator.allocate(n, origin) : g_allocator.allocate_aligned(align, n, origin);
}

// [new.delete.single]: loop calling the new_handler until allocation
// succeeds; no handler means std::bad_alloc.
HEAPGUARD_SLOW_PATH void* new_slow(size_t n, size_t align, Origin origin) {
  auto get_handler = cxx_get_new_handler();
  if (get_handler == nullptr) no_cxx_runtime(n);
  for (;;) {
    std::new_handler handler = get_handler();
    if (handler == nullptr) std::__throw_bad_alloc();
    handler();
    void* p = allocate_for_new(n, align, origin);
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
  void* p = allocate_for_new(n, align, origin);
  if (HEAPGUARD_LIKELY(p != nullptr) || cxx_get_new_handler() == nullptr) return p;
  try {
    return new_slow(n, align, origin);
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
HEAPGUARD_CXX_EXPORT void operator delete(void* p) noexcept { g_allocator.deallocate(p, ApiCall::Delete); }
HEAPGUARD_CXX_EXPORT void operator delete[](void* p) noexcept { g_allocator.deallocate(p, ApiCall::DeleteArray); }
HEAPGUARD_CXX_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { g_allocator.deallocate(p, ApiCall::Delete); }
HEAPGUARD_CXX_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { g_allocator.deallocate(p, ApiCall::DeleteArray); }
HEAPGUARD_CXX_EXPORT void operator delete(void* p, size_t n) noexcept { g_allocator.deallocate(p, ApiCall::Delete, n); }
HEAPGUARD_CXX_EXPORT void operator delete[](void* p, size_t n) noexcept { g_allocator.deallocate(p, ApiCall::DeleteArray, n); }
HEAPGUARD_CXX_EXPORT void operator delete(void* p, std::align_val_t) noexcept { g_allocator.deallocate(p, ApiCall::Delete); }
HEAPGUARD_CXX_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { g_allocator.deallocate(p, ApiCall::DeleteArray); }
HEAPGUARD_CXX_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  g_allocator.deallocate(p, ApiCall::Delete);
}
HEAPGUARD_CXX_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  g_allocator.deallocate(p, ApiCall::DeleteArray);
}
HEAPGUARD_CXX_EXPORT void operator delete(void* p, size_t n, std::align_val_t) noexcept { g_allocator.deallocate(p, ApiCall::Delete, n); }
HEAPGUARD_CXX_EXPORT void operator delete[](void* p, size_t n, std::align_val_t) noexcept { g_allocator.deallocate(p, ApiCall::DeleteArray, n); }
