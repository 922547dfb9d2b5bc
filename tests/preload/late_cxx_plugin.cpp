// SPDX-License-Identifier: Apache-2.0
// A C++ module that a C program dlopen()s: it brings libstdc++ into a
// process that had none when heapguard was loaded (see late_cxx_runtime.c).
#include <cstddef>
#include <new>
#include <string>
#include <vector>

extern "C" int late_cxx_alloc_ok() {
  std::vector<std::string> words;
  for (int i = 0; i < 2000; ++i) words.push_back(std::string(size_t(i % 300), 'x'));
  size_t total = 0;
  for (const std::string& w : words) total += w.size();
  int* block = new int[100000];
  block[99999] = 7;
  bool ok = total == 2000u / 300u * (299u * 300u / 2u) + (2000u % 300u) * ((2000u % 300u) - 1u) / 2u && block[99999] == 7;
  delete[] block;
  return ok ? 1 : 0;
}

extern "C" int late_cxx_nothrow_huge() {
  volatile size_t n = size_t(PTRDIFF_MAX);
  char* p = new (std::nothrow) char[n];
  asm volatile("" : : "r"(p) : "memory");  // the compiler may elide an unused new
  return p == nullptr ? 1 : 0;
}

extern "C" void late_cxx_throwing_huge() {
  volatile size_t n = size_t(PTRDIFF_MAX);
  char* p = new char[n];
  asm volatile("" : : "r"(p) : "memory");
  p[0] = 1;
}
