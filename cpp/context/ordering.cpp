#include "context/ordering.h"

#include <algorithm>
#include <numeric>

namespace recallcore::context {

namespace {

bool by_score(const OrderKey& a, const OrderKey& b) {
  if (a.score != b.score) return a.score > b.score;
  return a.id < b.id;
}

bool by_time(const OrderKey& a, const OrderKey& b) {
  if (a.time != b.time) return a.time < b.time;
  return a.id < b.id;
}

}  // namespace

std::vector<std::uint32_t> order_items(std::span<const OrderKey> keys, Order order) {
  const std::size_t n = keys.size();
  std::vector<std::uint32_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0u);
  if (order == Order::chronological) {
    std::sort(perm.begin(), perm.end(), [&](std::uint32_t a, std::uint32_t b) { return by_time(keys[a], keys[b]); });
    return perm;
  }
  std::sort(perm.begin(), perm.end(), [&](std::uint32_t a, std::uint32_t b) { return by_score(keys[a], keys[b]); });
  if (order == Order::score) return perm;
  // Edges: rank r goes to the front when r is even (0, 2, 4 -> positions 0, 1, 2) and to the back
  // when odd (1, 3, 5 -> positions n-1, n-2, n-3): the attention-rich ends get the best items.
  std::vector<std::uint32_t> out(n);
  std::size_t front = 0, back = n;
  for (std::size_t r = 0; r < n; ++r) {
    if (r % 2 == 0) out[front++] = perm[r];
    else out[--back] = perm[r];
  }
  return out;
}

}  // namespace recallcore::context
