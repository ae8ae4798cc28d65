// Multiple-choice knapsack with three choices per item (nothing, summary, full), the selection step
// of the context packer. Weights are token counts, values are scores; both solvers leave every
// choice within `capacity` and return the weight used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace recallcore::context {

enum class Choice : std::uint8_t { none = 0, summary = 1, full = 2 };

struct KnapsackItem {
  std::uint64_t w_full = 0;
  std::uint64_t w_summary = 0;  // meaningful only when has_summary
  double v_full = 0;            // >= v_summary >= 0
  double v_summary = 0;
  bool has_summary = false;     // callers set it only when w_summary < w_full
};

// Greedy by value per token. Each item contributes its LP-efficient increments: none -> summary and
// summary -> full (marginal value per marginal token), or none -> full directly when the summary is
// LP-dominated (less value per token than the full text). Increments are taken in decreasing
// efficiency while they fit, then fill() tops up; the result is then compared with the single most
// valuable option that fits (topped up the same way), which bounds the loss to half the optimum.
// O(n log n).
std::uint64_t solve_greedy(std::span<const KnapsackItem> items, std::uint64_t capacity, std::span<Choice> out);

// Exact dynamic programme over capacity, O(n * capacity) time and bytes. Maximises the total value;
// ties keep fewer/cheaper choices, and fill() then tops up with zero-value items that still fit.
std::uint64_t solve_exact(std::span<const KnapsackItem> items, std::uint64_t capacity, std::span<Choice> out);

// Adds (full, else summary) or upgrades (summary -> full) items in index order while they fit;
// with v_full >= v_summary >= 0 this never lowers the total value. Returns the new weight used.
std::uint64_t fill(std::span<const KnapsackItem> items, std::uint64_t capacity, std::uint64_t used,
                   std::span<Choice> out);

std::uint64_t weight_of(const KnapsackItem& item, Choice c);

}  // namespace recallcore::context
