// SPDX-License-Identifier: Apache-2.0
//
// Server-like multi-threaded workload: four workers each build requests
// (a header, a 16 B..16 KiB body and a descriptor), hand them to a random other
// worker through a mutex-protected bounded queue, and consume what they are
// sent, so almost every free happens on a thread other than the allocating
// one. Each worker also keeps a long-lived cache of copied bodies, replaced at
// random, the way a server keeps sessions alongside short-lived requests.
#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace heapguard::bench {
namespace {

constexpr unsigned kWorkers = 4;
constexpr uint64_t kBaseRequests = 1'200'000;
constexpr size_t kQueueCapacity = 1024;
constexpr size_t kBatch = 64;
constexpr size_t kCacheSlots = 512;

struct Request {
  uint64_t id;
  uint32_t header_size;
  uint32_t body_size;
  unsigned char* header;
  unsigned char* body;
};

// Most bodies are small; one in ten is a 2..16 KiB upload.
uint32_t pick_body_size(Rng& rng) {
  const uint64_t r = rng.below(100);
  if (r < 60) return static_cast<uint32_t>(rng.between(16, 256));
  if (r < 90) return static_cast<uint32_t>(rng.between(257, 2048));
  return static_cast<uint32_t>(rng.between(2049, 16384));
}

class Queue {
 public:
  bool try_push(Request* r) {
    std::lock_guard<std::mutex> lock(mu_);
    if (count_ == kQueueCapacity) return false;
    ring_[(head_ + count_) % kQueueCapacity] = r;
    ++count_;
    return true;
  }

  size_t pop_batch(Request** out) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    while (n < kBatch && count_ > 0) {
      out[n++] = ring_[head_];
      head_ = (head_ + 1) % kQueueCapacity;
      --count_;
    }
    return n;
  }

 private:
  std::mutex mu_;
  Request* ring_[kQueueCapacity] = {};
  size_t head_ = 0;
  size_t count_ = 0;
};

struct CacheEntry {
  unsigned char* data;
  uint32_t size;
  uint64_t id;
};

struct Shared {
  Queue queues[kWorkers];
  std::atomic<uint64_t> consumed{0};
  uint64_t total = 0;
  uint64_t per_worker = 0;
};

class Worker {
 public:
  Worker(Shared& shared, unsigned index) : shared_(shared), index_(index), rng_(100 + index) {
    cache_ = static_cast<CacheEntry*>(std::calloc(kCacheSlots, sizeof(CacheEntry)));
  }

  void run() {
    for (uint64_t seq = 0; seq < shared_.per_worker; ++seq) {
      Request* r = build(seq);
      unsigned dest = (index_ + 1 + static_cast<unsigned>(rng_.below(kWorkers - 1))) % kWorkers;
      // A full queue means the consumer lags: serve our own inbox meanwhile,
      // which is what keeps four producers from deadlocking on each other.
      while (!shared_.queues[dest].try_push(r)) {
        if (drain() == 0) std::this_thread::yield();
      }
      if ((seq & 15) == 0) drain();
    }
    while (shared_.consumed.load(std::memory_order_acquire) < shared_.total) {
      if (drain() == 0) std::this_thread::yield();
    }
    for (size_t i = 0; i < kCacheSlots; ++i) drop_cache_entry(cache_[i]);
    std::free(cache_);
  }

  uint64_t checksum() const { return checksum_; }

 private:
  Request* build(uint64_t seq) {
    auto* r = static_cast<Request*>(std::malloc(sizeof(Request)));
    r->id = (static_cast<uint64_t>(index_) << 40) | seq;
    r->header_size = static_cast<uint32_t>(rng_.between(16, 256));
    r->body_size = pick_body_size(rng_);
    r->header = static_cast<unsigned char*>(std::malloc(r->header_size));
    r->body = static_cast<unsigned char*>(std::malloc(r->body_size));
    if (r->header == nullptr || r->body == nullptr) corrupted("server malloc returned NULL", r->id);
    std::memset(r->header, pattern_byte(r->id, 1), r->header_size);
    std::memset(r->body, pattern_byte(r->id, 2), r->body_size);
    return r;
  }

  size_t drain() {
    Request* batch[kBatch];
    const size_t n = shared_.queues[index_].pop_batch(batch);
    for (size_t i = 0; i < n; ++i) consume(batch[i]);
    if (n != 0) shared_.consumed.fetch_add(n, std::memory_order_release);
    return n;
  }

  void consume(Request* r) {
    const unsigned char hb = pattern_byte(r->id, 1);
    const unsigned char bb = pattern_byte(r->id, 2);
    if (r->header[0] != hb || r->header[r->header_size - 1] != hb || r->body[0] != bb ||
        r->body[r->body_size - 1] != bb || r->body[r->body_size / 2] != bb) {
      corrupted("server request", r->id);
    }
    // The response is built and dropped on the consuming thread: a
    // thread-local short-lived allocation between two remote frees.
    const size_t response_size = 64 + (r->body_size & 1023);
    auto* response = static_cast<unsigned char*>(std::malloc(response_size));
    std::memcpy(response, r->header, r->header_size < response_size ? r->header_size : response_size);
    checksum_ += mix(r->id, static_cast<uint64_t>(response[0]) * r->body_size + r->header_size);
    std::free(response);

    // Whether a request is cached depends only on its id, so the checksum is
    // the same whatever order the queues deliver in.
    if (mix(r->id, 7) % 8 == 0) {
      CacheEntry& e = cache_[mix(r->id, 11) % kCacheSlots];
      drop_cache_entry(e);
      e.data = static_cast<unsigned char*>(std::malloc(r->body_size));
      std::memcpy(e.data, r->body, r->body_size);
      e.size = r->body_size;
      e.id = r->id;
      checksum_ += mix(r->id, 13);
    }
    std::free(r->header);
    std::free(r->body);
    std::free(r);
  }

  void drop_cache_entry(CacheEntry& e) {
    if (e.data == nullptr) return;
    const unsigned char bb = pattern_byte(e.id, 2);
    if (e.data[0] != bb || e.data[e.size - 1] != bb) corrupted("server cache entry", e.id);
    std::free(e.data);
    e.data = nullptr;
  }

  Shared& shared_;
  unsigned index_;
  Rng rng_;
  CacheEntry* cache_;
  uint64_t checksum_ = 0;
};

}  // namespace
}  // namespace heapguard::bench

int main(int argc, char** argv) {
  using namespace heapguard::bench;
  auto* shared = new Shared;
  shared->per_worker = scaled(kBaseRequests, parse_scale(argc, argv)) / kWorkers + 1;
  shared->total = shared->per_worker * kWorkers;
  std::vector<Worker*> workers;
  for (unsigned i = 0; i < kWorkers; ++i) workers.push_back(new Worker(*shared, i));
  std::vector<std::thread> threads;
  for (Worker* w : workers) threads.emplace_back([w] { w->run(); });
  for (auto& t : threads) t.join();
  uint64_t checksum = 0;
  for (Worker* w : workers) {
    checksum += w->checksum();
    delete w;
  }
  std::printf("server requests=%llu checksum=%016llx\n",
              static_cast<unsigned long long>(shared->total), static_cast<unsigned long long>(checksum));
  delete shared;
  return 0;
}
