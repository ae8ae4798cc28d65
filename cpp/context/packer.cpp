#include "context/packer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "common/errors.h"
#include "context/dedupe.h"
#include "context/knapsack.h"
#include "context/ordering.h"

namespace recallcore::context {

namespace {

// Mode::exact refuses tables larger than this (one byte per cell: 32 MiB), instead of exhausting memory.
constexpr std::uint64_t kMaxExactCells = std::uint64_t(1) << 25;

// One candidate as the packer sees it. Costs exclude the separator; the knapsack weights add it.
struct Work {
  const Candidate* c;
  std::uint32_t section;
  std::uint32_t index;
  std::uint64_t cost_full;
  std::uint64_t cost_summary;
  bool has_summary;
  bool dropped = false;
  DropReason reason = DropReason::budget;
  Choice choice = Choice::none;

  std::uint64_t cost() const { return choice == Choice::summary ? cost_summary : choice == Choice::full ? cost_full : 0; }
  std::uint64_t min_cost() const { return has_summary ? cost_summary : cost_full; }
};

// Importance within a section and across pinned sections: score descending, then id. The knapsack
// breaks efficiency ties by this order, the greedy fill walks it, and it makes the result independent
// of the order candidates were given in.
bool more_important(const Work& a, const Work& b) {
  if (a.c->score != b.c->score) return a.c->score > b.c->score;
  return a.c->id < b.c->id;
}

void validate_candidates(std::span<const Section> sections, std::vector<std::uint64_t>& ids) {
  if (sections.size() > std::numeric_limits<std::uint32_t>::max())
    throw InvalidArgument("too many sections: " + std::to_string(sections.size()));
  for (const Section& s : sections) {
    if (s.pinned && s.quota)
      throw InvalidArgument("section '" + s.name + "' is pinned; pinned sections take no quota");
    if (s.candidates.size() > std::numeric_limits<std::uint32_t>::max())
      throw InvalidArgument("section '" + s.name + "' has too many candidates");
    for (const Candidate& c : s.candidates) {
      // Built only on the error path: a string per candidate would cost more than the packing.
      auto where = [&] { return "candidate id " + std::to_string(c.id) + " in section '" + s.name + "'"; };
      if (!std::isfinite(c.score) || c.score < 0)
        throw InvalidArgument(where() + ": score must be finite and >= 0, got " + std::to_string(c.score) +
                              " (rank-transform or shift logits before packing)");
      if (!std::isfinite(c.time)) throw InvalidArgument(where() + ": time must be finite");
      if (c.vector && c.dim == 0) throw InvalidArgument(where() + ": a vector needs dim > 0");
      ids.push_back(c.id);
    }
  }
  std::sort(ids.begin(), ids.end());
  auto dup = std::adjacent_find(ids.begin(), ids.end());
  if (dup != ids.end()) throw InvalidArgument("candidate ids must be unique; id " + std::to_string(*dup) + " repeats");
}

// Pinned items: all full if they fit, else downgrade the least important to summaries; if even that
// overflows, apply the policy. Returns the knapsack weight used (costs + one separator per item).
std::uint64_t select_pinned(std::vector<Work>& work, std::vector<std::uint32_t>& pinned, std::uint64_t capacity,
                            const PackOptions& o) {
  const std::uint64_t sep = o.separator_tokens;
  std::uint64_t used = 0;
  for (std::uint32_t i : pinned) {
    work[i].choice = Choice::full;
    used += work[i].cost_full + sep;
  }
  for (auto it = pinned.rbegin(); it != pinned.rend() && used > capacity; ++it) {
    Work& w = work[*it];
    if (!w.has_summary) continue;
    used -= w.cost_full - w.cost_summary;
    w.choice = Choice::summary;
  }
  if (used <= capacity) return used;

  if (o.pinned_overflow == PinnedOverflow::error)
    throw InvalidArgument("pinned items need " + std::to_string(used - sep) + " tokens, budget is " +
                          std::to_string(o.budget) + " (use pinned_overflow='truncate' to keep what fits)");
  used = 0;
  for (std::uint32_t i : pinned) {
    Work& w = work[i];
    const std::uint64_t need = w.min_cost() + sep;
    if (used + need <= capacity) {
      w.choice = w.has_summary ? Choice::summary : Choice::full;
      used += need;
    } else {
      w.choice = Choice::none;
      w.dropped = true;
      w.reason = DropReason::pinned_over_budget;
    }
  }
  for (std::uint32_t i : pinned) {
    Work& w = work[i];
    if (w.choice == Choice::summary && used + (w.cost_full - w.cost_summary) <= capacity) {
      used += w.cost_full - w.cost_summary;
      w.choice = Choice::full;
    }
  }
  return used;
}

}  // namespace

void PackOptions::validate() const {
  if (budget == 0) throw InvalidArgument("budget must be > 0 tokens, got 0");
  if (std::uint8_t(order) > 2) throw InvalidArgument("order must be edges, chronological or score");
  if (std::uint8_t(mode) > 2) throw InvalidArgument("mode must be greedy, exact or auto");
  if (std::uint8_t(pinned_overflow) > 1) throw InvalidArgument("pinned_overflow must be error or truncate");
  if (!(summary_fidelity >= 0.0f && summary_fidelity <= 1.0f))
    throw InvalidArgument("summary_fidelity must be in [0, 1], got " + std::to_string(summary_fidelity));
  if (dedupe && !(*dedupe > 0.0f && *dedupe <= 1.0f))
    throw InvalidArgument("dedupe threshold must be a cosine similarity in (0, 1], got " + std::to_string(*dedupe));
}

PackResult pack(std::span<const Section> sections, const PackOptions& o) {
  o.validate();
  std::vector<std::uint64_t> ids;
  validate_candidates(sections, ids);
  const std::uint64_t sep = o.separator_tokens;
  // k items carry k - 1 separators. Charging every item one separator and granting one extra to the
  // capacity keeps the arithmetic exact: sum(cost + sep) <= budget + sep  <=>  total <= budget.
  const std::uint64_t capacity = std::uint64_t(o.budget) + sep;

  std::vector<Work> work;
  work.reserve(ids.size());
  for (std::uint32_t s = 0; s < sections.size(); ++s) {
    const auto& cands = sections[s].candidates;
    for (std::uint32_t i = 0; i < cands.size(); ++i) {
      const Candidate& c = cands[i];
      const std::uint64_t frame = std::uint64_t(o.framing_tokens) + c.framing_tokens;
      const std::uint64_t full = frame + c.tokens_full, summary = frame + c.tokens_summary;
      // A summary no cheaper than the full text is never worth choosing (it is worth less).
      work.push_back({&c, s, i, full, summary, c.tokens_summary > 0 && summary < full, false, DropReason::budget,
                      Choice::none});
    }
  }

  if (o.dedupe) {
    std::vector<DedupeInput> in;
    in.reserve(work.size());
    for (const Work& w : work)
      in.push_back({w.c->vector, w.c->dim, w.c->score, w.c->id, sections[w.section].pinned});
    const std::vector<std::uint8_t> dup = find_duplicates(in, *o.dedupe);
    for (std::size_t i = 0; i < work.size(); ++i)
      if (dup[i]) {
        work[i].dropped = true;
        work[i].reason = DropReason::duplicate;
      }
  }

  // Sections by (pinned first, priority, input order); `first` indexes each section's slice of work.
  std::vector<std::uint32_t> sec_order(sections.size());
  std::iota(sec_order.begin(), sec_order.end(), 0u);
  std::stable_sort(sec_order.begin(), sec_order.end(), [&](std::uint32_t a, std::uint32_t b) {
    if (sections[a].pinned != sections[b].pinned) return sections[a].pinned;
    return sections[a].priority < sections[b].priority;
  });
  std::vector<std::uint32_t> first(sections.size() + 1, 0);
  for (std::uint32_t s = 0; s < sections.size(); ++s)
    first[s + 1] = first[s] + std::uint32_t(sections[s].candidates.size());

  PackResult result;
  std::uint64_t used = 0;

  std::vector<std::uint32_t> pinned;
  for (std::uint32_t s : sec_order) {
    if (!sections[s].pinned) continue;
    const auto from = pinned.size();
    for (std::uint32_t i = first[s]; i < first[s + 1]; ++i)
      if (!work[i].dropped) pinned.push_back(i);
    std::sort(pinned.begin() + std::ptrdiff_t(from), pinned.end(),
              [&](std::uint32_t a, std::uint32_t b) { return more_important(work[a], work[b]); });
  }
  if (!pinned.empty()) used = select_pinned(work, pinned, capacity, o);

  std::vector<std::uint32_t> members;
  std::vector<KnapsackItem> ks;
  std::vector<Choice> choice;
  for (std::uint32_t s : sec_order) {
    const Section& sec = sections[s];
    if (sec.pinned) continue;
    members.clear();
    for (std::uint32_t i = first[s]; i < first[s + 1]; ++i)
      if (!work[i].dropped) members.push_back(i);
    if (members.empty()) continue;
    std::sort(members.begin(), members.end(),
              [&](std::uint32_t a, std::uint32_t b) { return more_important(work[a], work[b]); });

    std::uint64_t cap = capacity - used;
    if (sec.quota) cap = std::min<std::uint64_t>(cap, std::uint64_t(*sec.quota) + sep);
    ks.clear();
    std::uint64_t all_full = 0;
    for (std::uint32_t i : members) {
      const Work& w = work[i];
      const double v = double(w.c->score);
      ks.push_back({w.cost_full + sep, w.cost_summary + sep, v, v * double(o.summary_fidelity), w.has_summary});
      all_full += w.cost_full + sep;
    }
    choice.assign(members.size(), Choice::none);
    std::uint64_t got = 0;
    if (all_full <= cap) {
      // Everything fits at full text: that is optimal (full is worth at least the summary), skip the solvers.
      std::fill(choice.begin(), choice.end(), Choice::full);
      got = all_full;
    } else {
      const bool small = members.size() <= o.exact_max_items && cap <= std::uint64_t(o.exact_max_budget) + sep;
      const bool exact = o.mode == Mode::exact || (o.mode == Mode::automatic && small);
      if (exact) {
        const std::uint64_t cells = std::uint64_t(members.size()) * (cap + 1);
        if (cells > kMaxExactCells)
          throw InvalidArgument("mode 'exact' is too large for section '" + sec.name + "': " +
                                std::to_string(members.size()) + " candidates x " + std::to_string(cap) +
                                " tokens exceeds " + std::to_string(kMaxExactCells) +
                                " table cells; use mode 'greedy' or 'auto'");
        got = solve_exact(ks, cap, choice);
        result.used_exact = true;
      } else {
        got = solve_greedy(ks, cap, choice);
      }
    }
    used += got;
    for (std::size_t k = 0; k < members.size(); ++k) work[members[k]].choice = choice[k];
    // Unchosen: blame the quota when the global budget alone would still have taken the item.
    for (std::uint32_t i : members) {
      Work& w = work[i];
      if (w.choice != Choice::none) continue;
      w.dropped = true;
      w.reason = (sec.quota && w.min_cost() + sep <= capacity - used) ? DropReason::quota : DropReason::budget;
    }
  }

  // Pinned block: sections by priority, items in the order given.
  std::uint64_t total = 0;
  auto emit = [&](const Work& w, bool is_pinned) {
    const std::uint64_t cost = w.cost();
    total += cost;
    result.items.push_back({w.c->id, w.section, w.index,
                            w.choice == Choice::summary ? Fidelity::summary : Fidelity::full, std::uint32_t(cost),
                            w.c->score, std::uint32_t(result.items.size()), is_pinned});
  };
  for (std::uint32_t s : sec_order) {
    if (!sections[s].pinned) continue;
    for (std::uint32_t i = first[s]; i < first[s + 1]; ++i)
      if (work[i].choice != Choice::none) emit(work[i], true);
  }
  result.pinned_count = std::uint32_t(result.items.size());

  std::vector<std::uint32_t> rest;
  std::vector<OrderKey> keys;
  for (std::uint32_t i = 0; i < work.size(); ++i) {
    if (work[i].choice == Choice::none || sections[work[i].section].pinned) continue;
    rest.push_back(i);
    keys.push_back({work[i].c->score, work[i].c->time, work[i].c->id});
  }
  for (std::uint32_t k : order_items(keys, o.order)) emit(work[rest[k]], false);

  for (const Work& w : work)
    if (w.dropped) result.dropped.push_back({w.c->id, w.section, w.index, w.reason, w.c->score});

  if (!result.items.empty()) total += sep * (result.items.size() - 1);
  // The invariant callers rely on; a failure here is a bug in this file, never a user error.
  if (total > o.budget)
    throw std::logic_error("context packer exceeded its budget: " + std::to_string(total) + " > " +
                           std::to_string(o.budget));
  result.total_tokens = total;
  return result;
}

std::string_view to_string(Order v) {
  switch (v) {
    case Order::edges: return "edges";
    case Order::chronological: return "chronological";
    case Order::score: return "score";
  }
  return "?";
}

std::string_view to_string(Mode v) {
  switch (v) {
    case Mode::greedy: return "greedy";
    case Mode::exact: return "exact";
    case Mode::automatic: return "auto";
  }
  return "?";
}

std::string_view to_string(PinnedOverflow v) {
  switch (v) {
    case PinnedOverflow::error: return "error";
    case PinnedOverflow::truncate: return "truncate";
  }
  return "?";
}

std::string_view to_string(Fidelity v) { return v == Fidelity::summary ? "summary" : "full"; }

std::string_view to_string(DropReason v) {
  switch (v) {
    case DropReason::budget: return "budget";
    case DropReason::quota: return "quota";
    case DropReason::duplicate: return "duplicate";
    case DropReason::pinned_over_budget: return "pinned_over_budget";
  }
  return "?";
}

Order parse_order(std::string_view name) {
  for (Order v : {Order::edges, Order::chronological, Order::score})
    if (name == to_string(v)) return v;
  throw InvalidArgument("order must be 'edges', 'chronological' or 'score', got '" + std::string(name) + "'");
}

Mode parse_mode(std::string_view name) {
  for (Mode v : {Mode::greedy, Mode::exact, Mode::automatic})
    if (name == to_string(v)) return v;
  throw InvalidArgument("mode must be 'greedy', 'exact' or 'auto', got '" + std::string(name) + "'");
}

PinnedOverflow parse_pinned_overflow(std::string_view name) {
  for (PinnedOverflow v : {PinnedOverflow::error, PinnedOverflow::truncate})
    if (name == to_string(v)) return v;
  throw InvalidArgument("pinned_overflow must be 'error' or 'truncate', got '" + std::string(name) + "'");
}

}  // namespace recallcore::context
