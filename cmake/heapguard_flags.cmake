# SPDX-License-Identifier: Apache-2.0
# Compiler flags for the allocator's own sources (not for tests).
# Why each one: the allocator must not call itself through builtins that the
# compiler turns into malloc/calloc (gcc folds malloc+memset into calloc), must
# not need __tls_get_addr (initial-exec TLS), and exports nothing by accident.
set(HEAPGUARD_LIB_FLAGS
  -fvisibility=hidden
  -fvisibility-inlines-hidden
  -ftls-model=initial-exec
  -fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc -fno-builtin-free
  -fno-builtin-memalign -fno-builtin-posix_memalign -fno-builtin-aligned_alloc
  -fno-builtin-valloc -fno-builtin-pvalloc
  -fno-plt
  -fno-semantic-interposition
  # Allocation and free stacks are walked by frame pointers where the walk
  # has been checked against libunwind (pal::capture_stack); heapguard's own
  # frames head every such stack, so they must keep the chain.
  -fno-omit-frame-pointer
  -Wall -Wextra -Wshadow -Wno-unused-parameter
)
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  list(APPEND HEAPGUARD_LIB_FLAGS -Werror=global-constructors -Werror=exit-time-destructors)
endif()
