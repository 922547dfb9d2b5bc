// SPDX-License-Identifier: Apache-2.0
//
// Fault injection for the alloc_ops harness self-test: linked with
// -Wl,--wrap=realloc, it stands between the harness and the real realloc and
// flips one bit of the data realloc moved. A harness that does not report
// this would also miss an allocator that loses data on realloc.

#include <cstddef>

extern "C" void* __real_realloc(void* ptr, size_t size);

extern "C" void* __wrap_realloc(void* ptr, size_t size) {
  void* moved = __real_realloc(ptr, size);
  if (ptr != nullptr && moved != nullptr && size > 0) static_cast<unsigned char*>(moved)[0] ^= 0x40;
  return moved;
}
