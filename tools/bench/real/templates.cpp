// SPDX-License-Identifier: Apache-2.0
//
// Template-heavy translation unit for the tools/bench g++ workload. The
// compiler's own heap (trees, hash tables, obstacks, GC pages) is what gets
// measured: BENCH_N distinct instantiations of a generic pipeline over
// standard containers, variants, tuples and ranges, compiled with -O1 -c.
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <ranges>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#ifndef BENCH_N
#define BENCH_N 40
#endif

namespace bench {

template <int I>
struct Tag {
  static constexpr int value = I;
};

template <int I>
struct Item {
  int key;
  std::string name;
  std::vector<double> values;
  std::optional<std::tuple<int, long, Tag<I>>> extra;
  auto operator<=>(const Item&) const = default;
};

template <int I>
using Value = std::variant<int, double, std::string, Item<I>, std::vector<Item<I>>>;

template <int I>
struct Visitor {
  long operator()(int v) const { return v + I; }
  long operator()(double v) const { return static_cast<long>(v * I); }
  long operator()(const std::string& s) const { return static_cast<long>(s.size()) * I; }
  long operator()(const Item<I>& it) const { return it.key + static_cast<long>(it.values.size()); }
  long operator()(const std::vector<Item<I>>& v) const {
    return std::accumulate(v.begin(), v.end(), 0L, [](long acc, const Item<I>& it) { return acc + it.key; });
  }
};

template <int I>
long pipeline(int n) {
  std::map<int, std::vector<Value<I>>> table;
  std::unordered_map<std::string, std::set<int>> names;
  for (int k = 0; k < n; ++k) {
    Item<I> item{k, std::to_string(k * I), std::vector<double>(k % 7, 1.5), std::nullopt};
    if (k % 3 == 0) item.extra = std::make_tuple(k, static_cast<long>(k) * I, Tag<I>{});
    names[item.name].insert(k);
    table[k % 17].push_back(Value<I>{item});
    table[k % 5].push_back(Value<I>{std::string(static_cast<size_t>(k % 11), 'a')});
    table[k % 3].push_back(Value<I>{k * 0.5});
  }
  long total = 0;
  for (auto& [key, values] : table) {
    auto long_ones = values | std::views::filter([](const Value<I>& v) { return v.index() != 1; }) |
                     std::views::transform([](const Value<I>& v) { return std::visit(Visitor<I>{}, v); });
    for (long x : long_ones) total += x + key;
    std::ranges::sort(values, [](const Value<I>& a, const Value<I>& b) { return a.index() < b.index(); });
  }
  std::vector<std::pair<std::string, std::size_t>> sizes;
  for (const auto& [name, keys] : names) sizes.emplace_back(name, keys.size());
  std::ranges::sort(sizes);
  auto shared = std::make_shared<std::vector<std::pair<std::string, std::size_t>>>(std::move(sizes));
  std::function<long()> f = [shared] { return static_cast<long>(shared->size()); };
  return total + f();
}

template <int... Is>
long run_all(std::integer_sequence<int, Is...>, int n) {
  return (pipeline<Is + 1>(n) + ...);
}

}  // namespace bench

long bench_entry(int n) { return bench::run_all(std::make_integer_sequence<int, BENCH_N>{}, n); }
