// SPDX-License-Identifier: Apache-2.0
// RegionTable against a std::map model: random inserts and erases across
// growth, with backward-shift deletion keeping every remaining key findable;
// in-place replacement and the once-only quarantine mark.
#include "large/region_table.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace heapguard::test {

TEST(RegionTable, MatchesAModelThroughGrowthAndDeletion) {
  auto* table = new RegionTable();
  std::map<uintptr_t, LargeBlock> model;
  std::mt19937_64 rng(42);
  for (int i = 0; i < 60000; ++i) {
    uintptr_t key = 0x7f0000000000 + (rng() % 20000) * 4096 + 16;
    if (model.count(key) != 0 && rng() % 2 == 0) {
      LargeBlock out;
      ASSERT_TRUE(table->erase(key, &out));
      EXPECT_EQ(out.requested, model[key].requested);
      model.erase(key);
    } else if (model.count(key) == 0) {
      LargeBlock b{key, key - 16, 8192, size_t(rng() % 100000)};
      ASSERT_TRUE(table->insert(b));
      model[key] = b;
    }
  }
  EXPECT_EQ(table->count(), model.size());
  for (auto& [key, b] : model) {
    LargeBlock out;
    ASSERT_TRUE(table->find(key, &out)) << std::hex << key;
    EXPECT_EQ(out.map_base, b.map_base);
  }
  LargeBlock out;
  EXPECT_FALSE(table->find(0x7f0000000000 + 17, &out));
  LargeBlock resized = model.begin()->second;
  resized.map_size = 4096;
  resized.requested = 7;
  EXPECT_TRUE(table->replace(resized));
  ASSERT_TRUE(table->find(model.begin()->first, &out));
  EXPECT_EQ(out.requested, 7u);
  EXPECT_EQ(out.map_size, 4096u);
  // Quarantine marks once: a second mark (a racing double free) fails.
  EXPECT_TRUE(table->mark_quarantined(resized.user, &out));
  EXPECT_TRUE(out.quarantined);
  EXPECT_FALSE(table->mark_quarantined(resized.user, &out));
  ASSERT_TRUE(table->find(resized.user, &out));
  EXPECT_TRUE(out.quarantined);
  EXPECT_FALSE(table->mark_quarantined(0x7f0000000000 + 17, &out));
  table->unmap_for_testing();
  delete table;
}

}  // namespace heapguard::test
