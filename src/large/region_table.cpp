// SPDX-License-Identifier: Apache-2.0
#include "large/region_table.h"

#include "core/core.h"

namespace heapguard {

size_t RegionTable::find_index(const Shard& s, uintptr_t user) {
  if (s.capacity == 0) return SIZE_MAX;
  size_t mask = s.capacity - 1;
  for (size_t i = size_t(hash(user)) & mask;; i = (i + 1) & mask) {
    if (s.slots[i].user == user) return i;
    if (s.slots[i].user == 0) return SIZE_MAX;
  }
}

bool RegionTable::grow(Shard& s) {
  size_t capacity = s.capacity == 0 ? 256 : s.capacity * 2;
  size_t bytes = align_up(capacity * sizeof(LargeBlock), pal::Pal::page_size());
  auto* slots = static_cast<LargeBlock*>(pal::Pal::map(bytes));
  if (slots == nullptr) return false;
  pal::Pal::name_region(slots, bytes, "heapguard-large-table");
  size_t mask = capacity - 1;
  for (size_t i = 0; i < s.capacity; ++i) {
    const LargeBlock& b = s.slots[i];
    if (b.user == 0) continue;
    size_t j = size_t(hash(b.user)) & mask;
    while (slots[j].user != 0) j = (j + 1) & mask;
    slots[j] = b;
  }
  // New array first, capacity second: the leak check and the fault handler
  // read shards without the lock (for_each_unlocked), the fault handler on
  // any thread at any moment. So the old array is never unmapped: a reader
  // may still be walking it. Arrays double, so the retired ones together
  // are smaller than the live one.
  __atomic_store_n(&s.slots, slots, __ATOMIC_RELEASE);
  __atomic_store_n(&s.capacity, capacity, __ATOMIC_RELEASE);
  return true;
}

bool RegionTable::insert(const LargeBlock& block) {
  Shard& s = shard_for(block.user);
  pal::LockGuard guard(s.lock);
  if ((s.used + 1) * 2 > s.capacity && !grow(s)) return false;
  size_t mask = s.capacity - 1;
  size_t i = size_t(hash(block.user)) & mask;
  while (s.slots[i].user != 0) i = (i + 1) & mask;
  s.slots[i] = block;
  ++s.used;
  return true;
}

bool RegionTable::find(uintptr_t user, LargeBlock* out) {
  Shard& s = shard_for(user);
  pal::LockGuard guard(s.lock);
  size_t i = find_index(s, user);
  if (i == SIZE_MAX) return false;
  *out = s.slots[i];
  return true;
}

bool RegionTable::replace(const LargeBlock& block) {
  Shard& s = shard_for(block.user);
  pal::LockGuard guard(s.lock);
  size_t i = find_index(s, block.user);
  if (i == SIZE_MAX) return false;
  s.slots[i] = block;
  return true;
}

bool RegionTable::mark_quarantined(uintptr_t user, LargeBlock* out) {
  Shard& s = shard_for(user);
  pal::LockGuard guard(s.lock);
  size_t i = find_index(s, user);
  if (i == SIZE_MAX || s.slots[i].quarantined) return false;
  s.slots[i].quarantined = true;
  *out = s.slots[i];
  return true;
}

bool RegionTable::erase(uintptr_t user, LargeBlock* out) {
  Shard& s = shard_for(user);
  pal::LockGuard guard(s.lock);
  size_t i = find_index(s, user);
  if (i == SIZE_MAX) return false;
  *out = s.slots[i];
  // Backward-shift deletion keeps probe chains intact without tombstones.
  size_t mask = s.capacity - 1;
  size_t hole = i;
  for (size_t j = (i + 1) & mask; s.slots[j].user != 0; j = (j + 1) & mask) {
    size_t home = size_t(hash(s.slots[j].user)) & mask;
    bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
    if (movable) {
      s.slots[hole] = s.slots[j];
      hole = j;
    }
  }
  s.slots[hole] = LargeBlock{};
  --s.used;
  return true;
}

size_t RegionTable::count() {
  size_t total = 0;
  for (Shard& s : shards_) {
    pal::LockGuard guard(s.lock);
    total += s.used;
  }
  return total;
}

void RegionTable::unmap_for_testing() {
  for (Shard& s : shards_) {
    if (s.slots != nullptr) pal::Pal::unmap(s.slots, align_up(s.capacity * sizeof(LargeBlock), pal::Pal::page_size()));
    s.slots = nullptr;
    s.capacity = 0;
    s.used = 0;
  }
}

void RegionTable::lock_all() {
  for (Shard& s : shards_) s.lock.lock();
}

void RegionTable::unlock_all() {
  for (Shard& s : shards_) s.lock.unlock();
}

void RegionTable::reset_locks_after_fork() {
  for (Shard& s : shards_) s.lock.reset_after_fork();
}

}  // namespace heapguard
