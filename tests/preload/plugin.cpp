// SPDX-License-Identifier: Apache-2.0
//
// A plugin that is loaded and unloaded many times. Its ELF constructor and a
// C++ dynamic initialiser allocate on every load; its destructor and
// __cxa_finalize free on every unload, including blocks the program gave it.
// The first load also brings libstdc++ (and its own start-up allocations)
// into a C program that did not link it.

#include <cstdlib>
#include <map>
#include <string>

#include "plugin.h"

namespace {

constexpr int kPluginBlocks = 6;
constexpr int kMaxAdopted = 16;

void* plugin_blocks[kPluginBlocks];
std::size_t plugin_sizes[kPluginBlocks];
bool handed_over = false;

void* adopted[kMaxAdopted];
std::size_t adopted_sizes[kMaxAdopted];
int adopted_count = 0;
int* adopted_freed = nullptr;

// Built on every load and destroyed on every unload through the
// __cxa_atexit entry registered against this module's __dso_handle.
std::map<int, std::string> table = [] {
  std::map<int, std::string> m;
  for (int i = 0; i < 100; ++i) m.emplace(i, std::string(static_cast<std::size_t>(i) + 20, 'p'));
  return m;
}();

__attribute__((constructor)) void plugin_init() {
  for (int b = 0; b < kPluginBlocks; ++b) {
    std::size_t n = (b == kPluginBlocks - 1) ? 150000 : static_cast<std::size_t>(16) << (2 * b);
    auto* p = static_cast<char*>(std::malloc(n));
    if (p == nullptr) std::abort();
    for (std::size_t i = 0; i < n; ++i) p[i] = PLUGIN_BLOCK_BYTE(b, i);
    plugin_blocks[b] = p;
    plugin_sizes[b] = n;
  }
}

__attribute__((destructor)) void plugin_fini() {
  if (!handed_over) {
    for (auto* p : plugin_blocks) std::free(p);
  }
  bool intact = true;
  for (int k = 0; k < adopted_count; ++k) {
    const auto* p = static_cast<const char*>(adopted[k]);
    for (std::size_t i = 0; i < adopted_sizes[k]; ++i) intact = intact && p[i] == PROGRAM_BLOCK_BYTE(i);
    std::free(adopted[k]);
  }
  if (adopted_freed != nullptr) *adopted_freed = intact ? *adopted_freed + adopted_count : -1;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int plugin_take(void** out, std::size_t* sizes,
                                                                  int max) {
  if (handed_over || max < kPluginBlocks) return 0;
  for (int b = 0; b < kPluginBlocks; ++b) {
    out[b] = plugin_blocks[b];
    sizes[b] = plugin_sizes[b];
  }
  handed_over = true;
  return kPluginBlocks;
}

extern "C" __attribute__((visibility("default"))) void plugin_adopt(void** blocks,
                                                                    const std::size_t* sizes, int n,
                                                                    int* freed) {
  for (int k = 0; k < n && adopted_count < kMaxAdopted; ++k) {
    adopted[adopted_count] = blocks[k];
    adopted_sizes[adopted_count] = sizes[k];
    ++adopted_count;
  }
  adopted_freed = freed;
}

extern "C" __attribute__((visibility("default"))) int plugin_table_size() {
  return static_cast<int>(table.size());
}
