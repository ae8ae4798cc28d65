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
    // A finite sum of squares means every element is finite (NaN and inf propagate), so one kernel
    // call both validates the vector and gives its norm.
    const float sq = dot(it.vector, it.vector, it.dim);
    if (!std::isfinite(sq))
      throw InvalidArgument("the vector of candidate id " + std::to_string(it.id) +
                            " holds NaN or inf (or values too large to square in float32)");
    norm[i] = std::sqrt(double(sq));
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
  // Kept vectors are copied into one contiguous block so each candidate is compared with all of them
  // by one block kernel call (hnswlib-style locality; ~4x faster than a call per pair at dim 384).
  const simd::F32BlockFn block = simd::active().f32_block[int(simd::Metric::ip)];
  std::vector<float> kept_vectors;
  std::vector<double> kept_norm;
  std::vector<float> dots(n);
  for (std::uint32_t i : rank) {
    const DedupeInput& it = items[i];
    if (!it.vector || norm[i] == 0.0) continue;
    bool dup = false;
    if (!it.pinned && !kept_norm.empty()) {
      block(it.vector, kept_vectors.data(), kept_norm.size(), dim, dots.data());
      // The slack absorbs float32 rounding (block and single-vector kernels accumulate in different
      // orders), so threshold 1 still catches identical vectors.
      const double t = double(threshold) - 1e-6;
      for (std::size_t k = 0; k < kept_norm.size() && !dup; ++k)
        dup = double(dots[k]) >= t * norm[i] * kept_norm[k];
    }
    if (dup) {
      drop[i] = 1;
    } else {
      kept_vectors.insert(kept_vectors.end(), it.vector, it.vector + dim);
      kept_norm.push_back(norm[i]);
    }
  }
  return drop;
}

}  // namespace recallcore::context
