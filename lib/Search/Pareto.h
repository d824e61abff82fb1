//===- Pareto.h - Three-key Pareto pruning with coverage tags ---*- C++ -*-===//
//
// The search keeps, per stage and layer count, only plans no other plan
// beats on every key: a plan is dropped when another is no worse on all
// three keys (smaller is better, within a relative 1e-12 so sums added in
// another order count as equal) and covers at least its tag bits (the tp
// window ends the plan already uses). Sorting by the first key and sweeping
// a staircase over the other two per tag makes this O(n log n).
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_LIB_SEARCH_PARETO_H
#define GALVATRON_LIB_SEARCH_PARETO_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <vector>

namespace galvatron {
namespace search {

inline double slack(double x) { return x + 1e-12 * std::fabs(x); }

/// Keeps the undominated elements of `items` (order changes). `Key` maps an
/// element to {k0, k1, k2}; `Tag` to its coverage bits (0..3).
template <typename T, typename Key, typename Tag>
void paretoPrune(std::vector<T> &items, Key key, Tag tag) {
  std::sort(items.begin(), items.end(), [&](const T &a, const T &b) {
    auto ka = key(a), kb = key(b);
    if (ka[0] != kb[0])
      return ka[0] < kb[0];
    if (tag(a) != tag(b))
      return tag(a) > tag(b); // wider coverage first, so it can prune
    if (ka[1] != kb[1])
      return ka[1] < kb[1];
    return ka[2] < kb[2];
  });
  std::map<double, double> stair[4]; // k1 -> min k2, k2 falling with k1
  size_t kept = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    auto k = key(items[i]);
    unsigned t = tag(items[i]);
    bool dominated = false;
    for (unsigned s = 0; s < 4 && !dominated; ++s) {
      if ((s & t) != t || stair[s].empty())
        continue;
      auto it = stair[s].upper_bound(slack(k[1]));
      if (it == stair[s].begin())
        continue;
      --it;
      dominated = it->second <= slack(k[2]);
    }
    if (dominated)
      continue;
    auto &st = stair[t];
    for (auto it = st.lower_bound(k[1]); it != st.end() && it->second >= k[2];)
      it = st.erase(it);
    st[k[1]] = k[2];
    items[kept++] = items[i];
  }
  items.resize(kept);
}

} // namespace search
} // namespace galvatron

#endif // GALVATRON_LIB_SEARCH_PARETO_H
