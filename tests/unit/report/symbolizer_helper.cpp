// SPDX-License-Identifier: Apache-2.0
// Helper program for symbolizer_test: built -O1 -g without -rdynamic, once
// as PIE and once not, so that its static function is only in .symtab. It
// symbolizes that function in process and with the external tool and prints
// what it found, one `key=value` per line, for the test to check.
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "report/symbolizer.h"

namespace {

volatile int g_sink;

constexpr int kStaticLine = __LINE__ + 2;
__attribute__((noinline)) void helper_static_function(int x) {
  g_sink = x * 3 + 1;
}

void on_frame(void* ctx, unsigned index, const char* function, const char* file, unsigned line) {
  std::printf("external_index=%u\nexternal_function=%s\nexternal_file=%s\nexternal_line=%u\n", index,
              function != nullptr ? function : "(null)", file != nullptr ? file : "(null)", line);
  ++*static_cast<int*>(ctx);
}

}  // namespace

int main() {
  helper_static_function(1);
  auto pc = reinterpret_cast<uintptr_t>(&helper_static_function);
  heapguard::FrameInfo info;
  bool ok = heapguard::symbolize_frame(pc + 1, &info);
  std::printf("ok=%d\nfunction=%s\nmodule=%s\nfunction_offset=%lu\nmodule_offset=0x%lx\npc=0x%lx\n", ok ? 1 : 0,
              info.function != nullptr ? info.function : "(null)", info.module != nullptr ? info.module : "(null)",
              static_cast<unsigned long>(info.function_offset), static_cast<unsigned long>(info.module_offset),
              static_cast<unsigned long>(pc));
  std::printf("expect_line=%d\n", kStaticLine);
  int calls = 0;
  bool ext = heapguard::symbolize_external(&pc, 1, on_frame, &calls);
  std::printf("external_ok=%d\nexternal_calls=%d\n", ext ? 1 : 0, calls);
  return 0;
}
