// Token-budgeted context packer: choose which candidates go into an LLM prompt, at which fidelity
// (full text or summary), and in which order, without ever exceeding a token budget.
//
// Token accounting (the invariant every caller relies on):
//   cost(item)   = options.framing_tokens + candidate.framing_tokens + tokens of the chosen text
//   total tokens = sum of cost(item) over the chosen items + separator_tokens * (items - 1)
//   total tokens <= budget, always (checked in pack(), not just intended).
// Packing is arithmetic on counts computed elsewhere (once, at write time); nothing here sees text.
//
// Selection, in this order:
//   1. Near-duplicates (cosine similarity >= dedupe) are dropped, keeping the better-scored one;
//      pinned candidates are never dropped as duplicates and win against non-pinned ones.
//   2. Pinned sections: every item at full text if all fit; otherwise items are downgraded to their
//      summary, least important first (section priority, then score, then id), until they fit; if
//      even all-summaries do not fit, PinnedOverflow decides: `error` throws InvalidArgument
//      ("pinned items need N tokens, budget is B"); `truncate` keeps pinned items in importance
//      order at their cheapest fidelity while they fit (first fit: a later, smaller one may still
//      fit), drops the rest as pinned_over_budget, then upgrades kept ones to full text in the same
//      order while the budget allows.
//   3. Other sections one at a time, by priority (lower first; ties by input order). Each sees the
//      budget the earlier ones left, capped by its quota, and solves a multiple-choice knapsack
//      (each item: full, summary or nothing; value of full = score, of summary = score *
//      summary_fidelity): greedy by value per token, where the summary -> full upgrade competes by
//      its marginal value per marginal token (then compared with the best single item, which bounds
//      greedy to at least half the optimum), or an exact dynamic programme. A final pass adds or
//      upgrades anything that still fits (scores are >= 0, so this never lowers the total value).
//
// Quotas bound a section's items as if rendered on their own: sum of cost + separators between them.
// Pinned sections take no quota (they are all-or-overflow by definition).
//
// Order of the output: the pinned block first (sections by priority, then input order; items in
// the order given), then the other items under one policy across sections:
//   edges         best first, second best last, third second, fourth second to last, ... so the least
//                 important sit in the middle, where long-context models attend least
//                 ("lost in the middle", Liu et al. 2023); rank = score descending, ties by id;
//   chronological time ascending, ties by id;
//   score         score descending, ties by id.
// Every tie is broken by id, and ids are unique, so the output is a function of the input set.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace recallcore::context {

enum class Order : std::uint8_t { edges = 0, chronological = 1, score = 2 };
enum class Mode : std::uint8_t { greedy = 0, exact = 1, automatic = 2 };
enum class PinnedOverflow : std::uint8_t { error = 0, truncate = 1 };
enum class Fidelity : std::uint8_t { full = 0, summary = 1 };
enum class DropReason : std::uint8_t { budget = 0, quota = 1, duplicate = 2, pinned_over_budget = 3 };

struct Candidate {
  std::uint64_t id = 0;               // unique across all sections
  float score = 0;                    // finite, >= 0; higher is better
  std::uint32_t tokens_full = 0;      // tokens of the full text
  std::uint32_t tokens_summary = 0;   // tokens of the summary; 0 = no summary
  std::uint32_t framing_tokens = 0;   // this item's wrapper ("(date) role: "), on top of the constant
  double time = 0;                    // Unix seconds, finite; used by Order::chronological
  const float* vector = nullptr;      // optional, for near-duplicate suppression; not owned
  std::uint32_t dim = 0;              // elements of `vector`
};

struct Section {
  std::string name;
  int priority = 0;                    // lower is selected earlier
  bool pinned = false;
  std::optional<std::uint32_t> quota;  // max tokens of this section's items (see header comment)
  std::vector<Candidate> candidates;
};

struct PackOptions {
  std::uint32_t budget = 0;            // > 0
  std::uint32_t framing_tokens = 0;    // per-item framing, the same for every item
  std::uint32_t separator_tokens = 0;  // between consecutive items
  Order order = Order::edges;
  Mode mode = Mode::automatic;
  std::optional<float> dedupe;         // cosine similarity threshold in (0, 1]; none = no dedupe
  float summary_fidelity = 0.5f;       // in [0, 1]: value of a summary relative to the full text
  PinnedOverflow pinned_overflow = PinnedOverflow::error;
  // Mode::automatic solves a section exactly when it has at most exact_max_items candidates and
  // its capacity is at most exact_max_budget tokens; greedily otherwise.
  std::uint32_t exact_max_items = 64;
  std::uint32_t exact_max_budget = 8192;

  void validate() const;  // throws InvalidArgument naming the bad field and its value
};

struct PackedItem {
  std::uint64_t id;
  std::uint32_t section;   // index into the sections passed to pack()
  std::uint32_t index;     // index of the candidate within its section
  Fidelity fidelity;
  std::uint32_t tokens;    // cost of the item: framing + chosen text (separators not included)
  float score;
  std::uint32_t position;  // 0-based place in the output; items are stored in this order
  bool pinned;
};

struct DroppedItem {
  std::uint64_t id;
  std::uint32_t section;
  std::uint32_t index;
  DropReason reason;
  float score;
};

struct PackResult {
  std::vector<PackedItem> items;      // in output order
  std::vector<DroppedItem> dropped;   // by section, then candidate index
  std::uint64_t total_tokens = 0;     // items + separators; <= budget
  std::uint32_t pinned_count = 0;     // items[0, pinned_count) are the pinned block
  bool used_exact = false;            // whether any section was solved by the exact programme
};

// Packs the candidates of `sections` into options.budget tokens.
// Throws InvalidArgument for invalid options or candidates (non-finite or negative score, duplicate
// id, vector dimension mismatch, quota on a pinned section, Mode::exact on a section too large for
// the programme) and, with PinnedOverflow::error, when the pinned items cannot fit.
PackResult pack(std::span<const Section> sections, const PackOptions& options);

std::string_view to_string(Order v);
std::string_view to_string(Mode v);
std::string_view to_string(PinnedOverflow v);
std::string_view to_string(Fidelity v);
std::string_view to_string(DropReason v);
// Parse the names above ("edges", "auto", "truncate", ...); throw InvalidArgument listing the choices.
Order parse_order(std::string_view name);
Mode parse_mode(std::string_view name);
PinnedOverflow parse_pinned_overflow(std::string_view name);

}  // namespace recallcore::context
