// SPDX-License-Identifier: Apache-2.0
//
// Template-heavy translation unit for the g++ integration test. Compiling it
// makes cc1plus allocate hard (hundreds of instantiations, constexpr
// evaluation, overload sets); running it prints deterministic results, so the
// binary built under heapguard must behave exactly like the one built
// without it.

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <ranges>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace integ {

// A compile-time type list with map, filter and fold.
template <typename... Ts>
struct TypeList {
  static constexpr std::size_t size = sizeof...(Ts);
};

template <template <typename> class F, typename List>
struct Map;
template <template <typename> class F, typename... Ts>
struct Map<F, TypeList<Ts...>> {
  using type = TypeList<typename F<Ts>::type...>;
};

template <typename A, typename B>
struct Concat;
template <typename... As, typename... Bs>
struct Concat<TypeList<As...>, TypeList<Bs...>> {
  using type = TypeList<As..., Bs...>;
};

template <template <typename> class Pred, typename List>
struct Filter;
template <template <typename> class Pred>
struct Filter<Pred, TypeList<>> {
  using type = TypeList<>;
};
template <template <typename> class Pred, typename T, typename... Ts>
struct Filter<Pred, TypeList<T, Ts...>> {
  using rest = typename Filter<Pred, TypeList<Ts...>>::type;
  using type = std::conditional_t<Pred<T>::value, typename Concat<TypeList<T>, rest>::type, rest>;
};

template <typename T>
struct AddPointer {
  using type = T*;
};
template <typename T>
struct IsBig : std::bool_constant<(sizeof(T) > 4)> {};

template <std::size_t N>
struct Tag {
  static constexpr std::size_t value = N;
  char pad[N % 16 + 1];
};

template <std::size_t... Is>
auto make_tags(std::index_sequence<Is...>) -> TypeList<Tag<Is>...>;

using Tags = decltype(make_tags(std::make_index_sequence<96>{}));
using BigTags = Filter<IsBig, Tags>::type;
using TagPointers = Map<AddPointer, Tags>::type;

template <typename List>
struct SumValues;
template <typename... Ts>
struct SumValues<TypeList<Ts...>> {
  static constexpr std::size_t value = (Ts::value + ... + 0);
};

// constexpr work the compiler must evaluate.
constexpr std::uint64_t collatz_steps(std::uint64_t n) {
  std::uint64_t steps = 0;
  while (n != 1) {
    n = (n % 2 == 0) ? n / 2 : 3 * n + 1;
    ++steps;
  }
  return steps;
}

template <std::size_t N>
constexpr std::array<std::uint64_t, N> collatz_table() {
  std::array<std::uint64_t, N> table{};
  for (std::size_t i = 0; i < N; ++i) table[i] = collatz_steps(i + 1);
  return table;
}

constexpr auto kCollatz = collatz_table<3000>();

constexpr std::array<int, 400> sieve_primes() {
  std::array<bool, 3000> composite{};
  std::array<int, 400> primes{};
  std::size_t count = 0;
  for (int i = 2; i < 3000 && count < primes.size(); ++i) {
    if (composite[static_cast<std::size_t>(i)]) continue;
    primes[count++] = i;
    for (int j = i * 2; j < 3000; j += i) composite[static_cast<std::size_t>(j)] = true;
  }
  return primes;
}
constexpr auto kPrimes = sieve_primes();

// Expression templates.
template <typename E>
struct Expr {
  const E& self() const { return static_cast<const E&>(*this); }
};
struct Vec : Expr<Vec> {
  std::vector<double> data;
  explicit Vec(std::size_t n, double v) : data(n, v) {}
  template <typename E>
  Vec& operator=(const Expr<E>& e) {
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = e.self()[i];
    return *this;
  }
  double operator[](std::size_t i) const { return data[i]; }
};
template <typename L, typename R, typename Op>
struct Binary : Expr<Binary<L, R, Op>> {
  const L& l;
  const R& r;
  Binary(const L& a, const R& b) : l(a), r(b) {}
  double operator[](std::size_t i) const { return Op{}(l[i], r[i]); }
};
template <typename L, typename R>
Binary<L, R, std::plus<>> operator+(const Expr<L>& l, const Expr<R>& r) {
  return {l.self(), r.self()};
}
template <typename L, typename R>
Binary<L, R, std::multiplies<>> operator*(const Expr<L>& l, const Expr<R>& r) {
  return {l.self(), r.self()};
}

// A variant-based interpreter, instantiating visitors over many alternatives.
template <int K>
struct Op {
  static constexpr int kind = K;
  std::int64_t apply(std::int64_t x) const { return (x * (K + 3) + K) % 1000003; }
};

template <int... Ks>
using OpVariantT = std::variant<Op<Ks>...>;

template <std::size_t... Is>
auto make_op_variant(std::index_sequence<Is...>) -> OpVariantT<static_cast<int>(Is)...>;
using AnyOp = decltype(make_op_variant(std::make_index_sequence<40>{}));

template <std::size_t... Is>
std::vector<AnyOp> make_program(std::index_sequence<Is...>) {
  std::vector<AnyOp> program;
  (program.emplace_back(std::in_place_index<(Is * 7) % 40>), ...);
  return program;
}

// Generic containers instantiated for several key/value types.
template <typename K, typename V>
std::string summarize(const std::map<K, V>& m) {
  std::string out;
  for (const auto& [k, v] : m) {
    if constexpr (std::is_arithmetic_v<V>) {
      out += std::to_string(v % 10);
    } else {
      out += std::to_string(v.size() % 10);
    }
    if (out.size() > 40) break;
  }
  return out;
}

template <typename T>
std::uint64_t checksum(const T& range) {
  std::uint64_t h = 1469598103934665603ull;
  for (const auto& x : range) h = (h ^ static_cast<std::uint64_t>(x)) * 1099511628211ull;
  return h;
}

template <typename Tuple, std::size_t... Is>
auto tuple_sum(const Tuple& t, std::index_sequence<Is...>) {
  return (static_cast<long long>(std::get<Is>(t)) + ...);
}

}  // namespace integ

int main() {
  using namespace integ;
  static_assert(Tags::size == 96);
  std::printf("typelist: %zu tags, %zu big, %zu pointers, sum %zu\n", Tags::size, BigTags::size,
              TagPointers::size, SumValues<Tags>::value);
  std::printf("constexpr: collatz(2999) = %llu steps, max %llu, prime #400 = %d\n",
              static_cast<unsigned long long>(kCollatz[2998]),
              static_cast<unsigned long long>(*std::max_element(kCollatz.begin(), kCollatz.end())),
              kPrimes[399]);

  Vec a(1000, 1.5), b(1000, 2.0), c(1000, 0.0);
  c = a * b + a + b * b;
  std::printf("expression templates: c[999] = %.3f\n", c[999]);

  auto program = make_program(std::make_index_sequence<200>{});
  std::int64_t acc = 1;
  for (int round = 0; round < 50; ++round) {
    for (const auto& op : program) acc = std::visit([acc](const auto& o) { return o.apply(acc); }, op);
  }
  std::printf("variant interpreter: %zu ops x 50 rounds -> %lld\n", program.size(),
              static_cast<long long>(acc));

  std::map<int, int> ints;
  std::map<std::string, std::string> strings;
  std::map<long, std::vector<int>> vectors;
  std::unordered_map<std::string, std::set<int>> sets;
  for (int i = 0; i < 20000; ++i) {
    ints[i * 37 % 10007] += i;
    strings["key" + std::to_string(i % 5000)] += static_cast<char>('a' + i % 26);
    vectors[i % 777].push_back(i);
    sets["s" + std::to_string(i % 300)].insert(i % 1000);
  }
  std::size_t set_total = 0;
  for (const auto& [k, s] : sets) set_total += s.size();
  std::printf("containers: %s | %s | %s | %zu\n", summarize(ints).c_str(), summarize(strings).c_str(),
              summarize(vectors).c_str(), set_total);

  auto evens = std::views::iota(0, 100000) | std::views::filter([](int x) { return x % 3 == 0; }) |
               std::views::transform([](int x) { return x * x % 65521; });
  std::vector<int> materialized(evens.begin(), evens.end());
  std::ranges::sort(materialized);
  std::printf("ranges: %zu values, checksum %llu\n", materialized.size(),
              static_cast<unsigned long long>(checksum(materialized)));

  auto t = std::make_tuple(1, 2L, 3LL, 4u, static_cast<short>(5), '\6', 7, 8, 9, 10);
  std::printf("tuple: sum %lld\n",
              tuple_sum(t, std::make_index_sequence<std::tuple_size_v<decltype(t)>>{}));

  std::vector<std::unique_ptr<std::optional<std::string>>> owned;
  for (int i = 0; i < 5000; ++i) {
    owned.push_back(std::make_unique<std::optional<std::string>>(
        i % 3 ? std::optional<std::string>(std::string(static_cast<std::size_t>(i % 50), 'q'))
              : std::nullopt));
  }
  std::size_t present = std::count_if(owned.begin(), owned.end(), [](const auto& p) { return p->has_value(); });
  std::printf("heap objects: %zu of %zu present\n", present, owned.size());
  return 0;
}
