// SPDX-License-Identifier: Apache-2.0
//
// Many threads exiting at once (pthread_exit, return, detached), each running
// C++ thread_local destructors and a pthread-key destructor that frees and
// allocates in every destructor round. The allocator tears its thread cache
// down from its own key destructor, so the later rounds here allocate after
// that teardown; such memory must still work and the caches must not leak.

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "heapguard/heapguard.h"
#include "preload_check.h"

extern "C" int heapguard_get_stats(struct heapguard_stats* out) __attribute__((weak));

namespace heapguard::test {
namespace {

constexpr int kWaves = 8;
constexpr int kThreadsPerWave = 32;
constexpr int kThreads = kWaves * kThreadsPerWave;
constexpr int kRounds = PTHREAD_DESTRUCTOR_ITERATIONS;

pthread_key_t late_key;
std::atomic<int> key_calls{0};
std::atomic<int> final_rounds{0};
std::atomic<int> local_dtors{0};
std::atomic<int> detached_done{0};
std::atomic<int> corrupted{0};

// Blocks passed between threads: each thread leaves one and its late
// destructor frees one left by another (possibly already dead) thread.
std::mutex pool_mutex;
std::vector<std::pair<char*, std::size_t>>* pool;

char byte_for(std::size_t i) { return static_cast<char>(i * 11 + 3); }

char* make_block(std::size_t n) {
  auto* p = static_cast<char*>(std::malloc(n));
  if (p == nullptr) std::abort();
  for (std::size_t i = 0; i < n; ++i) p[i] = byte_for(i);
  return p;
}

void check_and_free(char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] != byte_for(i)) {
      corrupted.fetch_add(1);
      break;
    }
  }
  std::free(p);
}

struct LateValue {
  int round;
  char* held;
  std::size_t held_size;
};

// Runs once per destructor round while the key has a value. Rounds before
// the last re-arm the key with freshly allocated memory; the last one only
// allocates and frees, so the thread ends with nothing set.
void late_destructor(void* raw) {
  auto* value = static_cast<LateValue*>(raw);
  key_calls.fetch_add(1);
  check_and_free(value->held, value->held_size);
  for (std::size_t n : {16ul, 700ul, 9000ul, 200000ul}) check_and_free(make_block(n), n);
  std::pair<char*, std::size_t> foreign{nullptr, 0};
  {
    std::lock_guard<std::mutex> lock(pool_mutex);
    if (!pool->empty()) {
      foreign = pool->back();
      pool->pop_back();
    }
  }
  if (foreign.first != nullptr) check_and_free(foreign.first, foreign.second);

  if (value->round + 1 < kRounds) {
    auto* next = static_cast<LateValue*>(std::malloc(sizeof(LateValue)));
    if (next == nullptr) std::abort();
    std::size_t n = 100 + static_cast<std::size_t>(value->round) * 5000;
    *next = LateValue{value->round + 1, make_block(n), n};
    if (pthread_setspecific(late_key, next) != 0) std::abort();
  } else {
    std::string s(300, 'z');
    s += std::to_string(value->round);
    final_rounds.fetch_add(1);
  }
  std::free(value);
}

// A C++ thread_local whose destructor allocates: these run before the key
// destructors, from __call_tls_dtors.
struct LocalState {
  std::vector<std::string> names;
  bool used = false;
  ~LocalState() {
    if (!used) return;
    std::vector<std::string> copy(names.rbegin(), names.rend());
    copy.emplace_back(5000, 'd');
    local_dtors.fetch_add(1);
  }
};
thread_local LocalState local_state;

struct StartArg {
  int index;
  bool detached;
};

void* thread_main(void* raw) {
  StartArg arg = *static_cast<StartArg*>(raw);
  std::free(raw);
  local_state.used = true;
  for (int i = 0; i < 20; ++i) local_state.names.emplace_back(static_cast<std::size_t>(arg.index % 40 + i), 'n');

  std::size_t n = 64 + static_cast<std::size_t>(arg.index);
  auto* value = static_cast<LateValue*>(std::malloc(sizeof(LateValue)));
  if (value == nullptr) std::abort();
  *value = LateValue{0, make_block(n), n};
  if (pthread_setspecific(late_key, value) != 0) std::abort();

  std::size_t shared = 32 + static_cast<std::size_t>(arg.index) * 97 % 20000;
  char* block = make_block(shared);
  {
    std::lock_guard<std::mutex> lock(pool_mutex);
    pool->emplace_back(block, shared);
  }
  if (arg.detached) detached_done.fetch_add(1);
  if (arg.index % 2 == 0) pthread_exit(nullptr);
  return nullptr;
}

int run() {
  heapguard_test_require_loaded();
  HEAPGUARD_TEST_REQUIRE(heapguard_get_stats != nullptr);
  // Created after heapguard is initialised, so the allocator's own key (if
  // it uses one) runs first within each destructor round.
  HEAPGUARD_TEST_REQUIRE(pthread_key_create(&late_key, late_destructor) == 0);
  pool = new std::vector<std::pair<char*, std::size_t>>();
  pool->reserve(kThreads);

  int detached_started = 0;
  for (int wave = 0; wave < kWaves; ++wave) {
    pthread_t threads[kThreadsPerWave];
    bool joinable[kThreadsPerWave];
    for (int t = 0; t < kThreadsPerWave; ++t) {
      int index = wave * kThreadsPerWave + t;
      auto* arg = static_cast<StartArg*>(std::malloc(sizeof(StartArg)));
      HEAPGUARD_TEST_REQUIRE(arg != nullptr);
      *arg = StartArg{index, index % 3 == 0};
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      if (arg->detached) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
      joinable[t] = !arg->detached;
      detached_started += arg->detached ? 1 : 0;
      HEAPGUARD_TEST_REQUIRE(pthread_create(&threads[t], &attr, thread_main, arg) == 0);
      pthread_attr_destroy(&attr);
    }
    for (int t = 0; t < kThreadsPerWave; ++t) {
      if (joinable[t]) HEAPGUARD_TEST_REQUIRE(pthread_join(threads[t], nullptr) == 0);
    }
  }
  // Detached threads cannot be joined; wait until every one has run its key
  // destructors to the last round (counted there) before checking totals.
  while (detached_done.load() < detached_started || final_rounds.load() < kThreads) sched_yield();

  std::lock_guard<std::mutex> lock(pool_mutex);
  for (auto& [p, n] : *pool) check_and_free(p, n);
  delete pool;
  pool = nullptr;

  HEAPGUARD_TEST_REQUIRE(corrupted.load() == 0);
  HEAPGUARD_TEST_REQUIRE(key_calls.load() == kThreads * kRounds);
  HEAPGUARD_TEST_REQUIRE(local_dtors.load() == kThreads);

  // Caches of exited threads (including any revived by the late rounds) must
  // be released: at most the threads that may still be finishing remain.
  struct heapguard_stats stats;
  HEAPGUARD_TEST_REQUIRE(heapguard_get_stats(&stats) == 0);
  if (stats.thread_caches > 1 + static_cast<std::size_t>(kThreadsPerWave)) {
    std::fprintf(stderr, "FAIL: %zu thread caches in use after %d threads exited\n", stats.thread_caches,
                 kThreads);
    return 1;
  }
  std::printf("thread_exit_storm: %d threads, %d key destructor calls, %d final-round allocations, %d "
              "thread_local destructors\n",
              kThreads, key_calls.load(), final_rounds.load(), local_dtors.load());
  return 0;
}

}  // namespace
}  // namespace heapguard::test

int main() { return heapguard::test::run(); }
