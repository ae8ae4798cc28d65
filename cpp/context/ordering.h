// Output order of the packed (non-pinned) items: edges, chronological or score. See packer.h for
// the policies; every comparison ends with the id, so the order is total and deterministic.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "context/packer.h"

namespace recallcore::context {

struct OrderKey {
  float score;
  double time;
  std::uint64_t id;
};

// Returns perm such that keys[perm[0]], keys[perm[1]], ... is the output order.
std::vector<std::uint32_t> order_items(std::span<const OrderKey> keys, Order order);

}  // namespace recallcore::context
