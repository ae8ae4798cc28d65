// Near-duplicate suppression for the context packer: of two candidates whose vectors have cosine
// similarity >= threshold, the lower-scored one is dropped (two near-identical memories waste the
// budget and tell the model nothing new).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace recallcore::context {

struct DedupeInput {
  const float* vector;  // nullptr: never a duplicate, never suppresses another
  std::uint32_t dim;
  float score;
  std::uint64_t id;
  bool pinned;          // pinned items are never dropped and win against non-pinned ones
};

// Returns one flag per input: 1 = drop as a duplicate. Greedy in importance order (pinned first, then
// score descending, then id): an item is dropped when it is too similar to an item already kept, so
// the better-scored of any near-duplicate pair survives. A zero vector is similar to nothing.
// O(kept * n * dim); similarity is compared with threshold - 1e-6 (float32 rounding). Throws InvalidArgument when vectors differ in dimension or hold NaN/inf.
std::vector<std::uint8_t> find_duplicates(std::span<const DedupeInput> items, float threshold);

}  // namespace recallcore::context
