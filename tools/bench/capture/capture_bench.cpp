// SPDX-License-Identifier: Apache-2.0
// The cost of one 16-frame capture, in ns: libunwind (capture_stack_slow),
// the raw frame-pointer walk, the verified walk with its verdict cached
// (frames by rbp and by .eh_frame rules, see platform/cfi_walk.h), the same
// through a function without a frame pointer (its CFI is followed), the
// verified walk on a chain it cannot prove (a function without any CFI:
// libunwind plus the walk), and a depot put of a stack already stored.
// Each capture runs 24 frames deep.
//   build/tools/bench/capture/bench_capture --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <cstdint>

#include "ds/ds.h"
#include "platform/platform.h"
#include "unwind_trampolines.h"  // tests/unit/platform

namespace {

using heapguard::pal::kMaxStackFrames;
constexpr unsigned kFrames = 16;
constexpr int kDepth = 24;

struct Job {
  unsigned (*capture)(uintptr_t*, unsigned);
  uintptr_t pcs[kMaxStackFrames];
  unsigned n;
  void (*trampoline)(void (*)(void*), void*);  // halfway down, or none
};

__attribute__((noinline)) void descend(Job* job, int depth);

void descend_thunk(void* job) { descend(static_cast<Job*>(job), kDepth / 2 - 1); }

// __builtin_frame_address keeps a frame pointer in every level.
__attribute__((noinline)) void descend(Job* job, int depth) {
  asm volatile("" : : "r"(__builtin_frame_address(0)) : "memory");
  if (depth == 0) {
    job->n = job->capture(job->pcs, kFrames);
  } else if (job->trampoline != nullptr && depth == kDepth / 2) {
    job->trampoline(&descend_thunk, job);
  } else {
    descend(job, depth - 1);
  }
  asm volatile("" ::: "memory");
}

using Trampoline = void (*)(void (*)(void*), void*);

void run(benchmark::State& state, unsigned (*capture)(uintptr_t*, unsigned), int mode, Trampoline trampoline) {
  heapguard::pal::warm_up_unwinder();
  heapguard::pal::set_unwinder(mode);
  Job job{capture, {}, 0, trampoline};
  descend(&job, kDepth);  // warm libunwind's caches and the verdict
  for (auto _ : state) {
    descend(&job, kDepth);
    benchmark::DoNotOptimize(job.n);
  }
  if (job.n != kFrames) state.SkipWithError("short capture");
  const auto stats = heapguard::pal::unwind_stats();
  state.counters["fast_hits"] = static_cast<double>(stats.fast_hits);
}

void BM_Libunwind(benchmark::State& state) { run(state, &heapguard::pal::capture_stack_slow, 0, nullptr); }
void BM_FramePointerRaw(benchmark::State& state) {
  run(state, &heapguard::pal::capture_stack_fp_unverified_for_testing, 1, nullptr);
}
void BM_VerifiedFastPath(benchmark::State& state) { run(state, &heapguard::pal::capture_stack, 1, nullptr); }
void BM_VerifiedFastPathWithoutFramePointer(benchmark::State& state) {
  run(state, &heapguard::pal::capture_stack, 1, &hg_test_nofp_call);
}
void BM_VerifiedUnprovenChain(benchmark::State& state) {
  run(state, &heapguard::pal::capture_stack, 1, &hg_test_nocfi_call);
}

// The cost of the descent alone, to subtract from the figures above.
__attribute__((noinline)) unsigned no_capture(uintptr_t* pcs, unsigned) {
  pcs[0] = 1;
  return kFrames;
}
void BM_DescentOnly(benchmark::State& state) { run(state, &no_capture, 1, nullptr); }

void BM_DepotPutRepeated(benchmark::State& state) {
  heapguard::pal::warm_up_unwinder();
  uintptr_t pcs[kFrames];
  for (unsigned i = 0; i < kFrames; ++i) pcs[i] = 0x401000 + i * 0x40;
  uint32_t id = heapguard::g_stack_depot.put(pcs, kFrames);
  for (auto _ : state) {
    id = heapguard::g_stack_depot.put(pcs, kFrames);
    benchmark::DoNotOptimize(id);
  }
  if (id == 0) state.SkipWithError("depot refused");
}

BENCHMARK(BM_DescentOnly);
BENCHMARK(BM_FramePointerRaw);
BENCHMARK(BM_VerifiedFastPath);
BENCHMARK(BM_VerifiedFastPathWithoutFramePointer);
BENCHMARK(BM_Libunwind);
BENCHMARK(BM_VerifiedUnprovenChain);
BENCHMARK(BM_DepotPutRepeated);

}  // namespace
