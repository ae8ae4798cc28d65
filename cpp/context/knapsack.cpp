#include "context/knapsack.h"

#include <algorithm>
#include <cassert>
#include <limits>

namespace recallcore::context {

std::uint64_t weight_of(const KnapsackItem& item, Choice c) {
  switch (c) {
    case Choice::none: return 0;
    case Choice::summary: return item.w_summary;
    case Choice::full: return item.w_full;
  }
  return 0;
}

namespace {

double value_of(std::span<const KnapsackItem> items, std::span<const Choice> choice) {
  double v = 0;
  for (std::size_t i = 0; i < items.size(); ++i)
    v += choice[i] == Choice::full ? items[i].v_full : choice[i] == Choice::summary ? items[i].v_summary : 0.0;
  return v;
}

enum class Step : std::uint8_t { summary, upgrade, full };

struct Increment {
  double efficiency;
  std::uint32_t item;
  Step step;
};

// Value per token; a zero-weight increment is free, so it goes first.
double efficiency(double value, std::uint64_t weight) {
  return weight == 0 ? std::numeric_limits<double>::infinity() : value / double(weight);
}

}  // namespace

std::uint64_t fill(std::span<const KnapsackItem> items, std::uint64_t capacity, std::uint64_t used,
                   std::span<Choice> out) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    const KnapsackItem& it = items[i];
    const std::uint64_t room = capacity - used;
    if (out[i] == Choice::full) continue;
    const std::uint64_t now = weight_of(it, out[i]);
    if (it.w_full - now <= room) {
      used += it.w_full - now;
      out[i] = Choice::full;
    } else if (out[i] == Choice::none && it.has_summary && it.w_summary <= room) {
      used += it.w_summary;
      out[i] = Choice::summary;
    }
  }
  return used;
}

std::uint64_t solve_greedy(std::span<const KnapsackItem> items, std::uint64_t capacity, std::span<Choice> out) {
  std::vector<Increment> inc;
  inc.reserve(items.size() * 2);
  for (std::uint32_t i = 0; i < items.size(); ++i) {
    const KnapsackItem& it = items[i];
    out[i] = Choice::none;
    // Options that cannot fit even alone leave the LP hull; without this, the 1/2 bound below fails.
    if (it.w_full > capacity) {
      if (it.has_summary && it.w_summary <= capacity)
        inc.push_back({efficiency(it.v_summary, it.w_summary), i, Step::summary});
      continue;
    }
    const double e_full = efficiency(it.v_full, it.w_full);
    if (it.has_summary) {
      const double e_sum = efficiency(it.v_summary, it.w_summary);
      const double e_up = efficiency(it.v_full - it.v_summary, it.w_full - it.w_summary);
      // On the convex hull the upgrade is never more efficient than the summary itself, so sorting
      // by efficiency takes the summary first. Otherwise the summary is LP-dominated and the item
      // competes as one full-text step (fill() may still use its summary as a fallback).
      if (e_sum >= e_up) {
        inc.push_back({e_sum, i, Step::summary});
        inc.push_back({e_up, i, Step::upgrade});
        continue;
      }
    }
    inc.push_back({e_full, i, Step::full});
  }
  // Ties by item index: the caller orders items by importance (score desc, id asc).
  std::sort(inc.begin(), inc.end(), [](const Increment& a, const Increment& b) {
    if (a.efficiency != b.efficiency) return a.efficiency > b.efficiency;
    if (a.item != b.item) return a.item < b.item;
    return a.step < b.step;
  });
  std::uint64_t used = 0;
  for (const Increment& s : inc) {
    const KnapsackItem& it = items[s.item];
    Choice& c = out[s.item];
    const std::uint64_t room = capacity - used;
    switch (s.step) {
      case Step::summary:
        if (c == Choice::none && it.w_summary <= room) {
          c = Choice::summary;
          used += it.w_summary;
        }
        break;
      case Step::upgrade:
        // If the summary did not fit, the full text (heavier) cannot fit now either: room only shrinks.
        if (c == Choice::summary && it.w_full - it.w_summary <= room) {
          c = Choice::full;
          used += it.w_full - it.w_summary;
        }
        break;
      case Step::full:
        if (c == Choice::none && it.w_full <= room) {
          c = Choice::full;
          used += it.w_full;
        }
        break;
    }
  }
  used = fill(items, capacity, used, out);

  // Density greedy alone can be arbitrarily bad (a tiny efficient item blocks a large valuable one);
  // also trying the single most valuable option that fits, then filling, bounds the loss to half the
  // optimum (the classic knapsack 1/2-approximation) for O(n) more work.
  std::size_t best = items.size();
  Choice best_choice = Choice::none;
  double best_value = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const KnapsackItem& it = items[i];
    if (it.w_full <= capacity && it.v_full > best_value) {
      best = i, best_choice = Choice::full, best_value = it.v_full;
    } else if (it.has_summary && it.w_summary <= capacity && it.v_summary > best_value) {
      best = i, best_choice = Choice::summary, best_value = it.v_summary;
    }
  }
  if (best == items.size() || best_value <= value_of(items, out)) return used;
  std::vector<Choice> alt(items.size(), Choice::none);
  alt[best] = best_choice;
  const std::uint64_t alt_used = fill(items, capacity, weight_of(items[best], best_choice), alt);
  if (value_of(items, alt) <= value_of(items, out)) return used;
  std::copy(alt.begin(), alt.end(), out.begin());
  return alt_used;
}

std::uint64_t solve_exact(std::span<const KnapsackItem> items, std::uint64_t capacity, std::span<Choice> out) {
  const std::size_t n = items.size();
  const std::size_t cols = std::size_t(capacity) + 1;
  // best[c]: the best value using at most c tokens over the items seen so far. Updated in place from
  // high c to low so each item is used at most once; all three options read best[] before it is
  // written (a zero-weight option reads the cell itself, still holding the previous item's value).
  std::vector<double> best(cols, 0.0);
  std::vector<Choice> table(n * cols, Choice::none);
  for (std::size_t i = 0; i < n; ++i) {
    const KnapsackItem& it = items[i];
    Choice* row = table.data() + i * cols;
    for (std::size_t c = cols; c-- > 0;) {
      double b = best[c];
      Choice pick = Choice::none;
      if (it.w_full <= c) {
        const double v = best[c - it.w_full] + it.v_full;
        if (v > b) {
          b = v;
          pick = Choice::full;
        }
      }
      if (it.has_summary && it.w_summary <= c) {
        const double v = best[c - it.w_summary] + it.v_summary;
        if (v > b) {
          b = v;
          pick = Choice::summary;
        }
      }
      best[c] = b;
      row[c] = pick;
    }
  }
  std::uint64_t c = capacity, used = 0;
  for (std::size_t i = n; i-- > 0;) {
    const Choice pick = table[i * cols + c];
    out[i] = pick;
    const std::uint64_t w = weight_of(items[i], pick);
    assert(w <= c);
    c -= w;
    used += w;
  }
  return fill(items, capacity, used, out);
}

}  // namespace recallcore::context
