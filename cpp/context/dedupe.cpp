#include "context/dedupe.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "common/errors.h"
#include "simd/dispatch.h"

namespace recallcore::context {

std::vector<std::uint8_t> find_duplicates(std::span<const DedupeInput> items, float threshold) {
  const std::size_t n = items.size();
  std::vector<std::uint8_t> drop(n, 0);
  const simd::F32Fn dot = simd::active().f32[int(simd::Metric::ip)];

  std::uint32_t dim = 0;
  bool any = false;
  std::vector<double> norm(n, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    const DedupeInput& it = items[i];
    if (!it.vector) continue;
    if (!any) {
      dim = it.dim;
      any = true;
    } else if (it.dim != dim) {
      throw InvalidArgument("all candidate vectors must have the same dimension for dedupe: id " +
                            std::to_string(it.id) + " has " + std::to_string(it.dim) + ", expected " +
                            std::to_string(dim));
    }
    for (std::uint32_t d = 0; d < it.dim; ++d)
      if (!std::isfinite(it.vector[d]))
        throw InvalidArgument("the vector of candidate id " + std::to_string(it.id) + " holds NaN or inf");
    norm[i] = std::sqrt(double(dot(it.vector, it.vector, it.dim)));
  }
  if (!any) return drop;

  std::vector<std::uint32_t> rank(n);
  std::iota(rank.begin(), rank.end(), 0u);
  std::sort(rank.begin(), rank.end(), [&](std::uint32_t a, std::uint32_t b) {
    const DedupeInput &x = items[a], &y = items[b];
    if (x.pinned != y.pinned) return x.pinned;
    if (x.score != y.score) return x.score > y.score;
    return x.id < y.id;
  });
  std::vector<std::uint32_t> kept;
  for (std::uint32_t i : rank) {
    const DedupeInput& it = items[i];
    if (!it.vector || norm[i] == 0.0) continue;
    bool dup = false;
    if (!it.pinned) {
      for (std::uint32_t k : kept) {
        const double sim = double(dot(it.vector, items[k].vector, dim)) / (norm[i] * norm[k]);
        // The slack absorbs double rounding of d / (sqrt(d) * sqrt(d)), so threshold 1 still catches
        // identical vectors; float32 accumulation error beyond that is the kernels' (see kernel_table.h).
        if (sim >= double(threshold) - 1e-9) {
          dup = true;
          break;
        }
      }
    }
    if (dup) drop[i] = 1;
    else kept.push_back(i);
  }
  return drop;
}

}  // namespace recallcore::context
