#include "engine/context_assembly.h"

#include <algorithm>
#include <cmath>
#include <span>
#include <unordered_map>
#include <unordered_set>

#include "common/errors.h"

namespace recallcore::engine {

namespace {

// "YYYY-MM-DD" of a UTC day number (days since 1970-01-01), by the civil-from-days algorithm
// (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
void append_date(std::string& out, double ts) {
  const long long z0 = static_cast<long long>(std::floor(ts / 86400.0));
  const long long z = z0 + 719468;
  const long long era = (z >= 0 ? z : z - 146096) / 146097;
  const long long doe = z - era * 146097;
  const long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const long long mp = (5 * doy + 2) / 153;
  const long long d = doy - (153 * mp + 2) / 5 + 1;
  const long long m = mp < 10 ? mp + 3 : mp - 9;
  const long long y = yoe + era * 400 + (m <= 2);
  if (y < 0 || y > 9999) {  // outside what a 4-digit year holds: plain numbers
    out += std::to_string(y) + "-" + std::to_string(m) + "-" + std::to_string(d);
    return;
  }
  const char buf[10] = {char('0' + y / 1000), char('0' + y / 100 % 10), char('0' + y / 10 % 10), char('0' + y % 10), '-',
                        char('0' + m / 10), char('0' + m % 10), '-', char('0' + d / 10), char('0' + d % 10)};
  out.append(buf, sizeof buf);
}

// One candidate of a section, rendered at both fidelities.
struct Entry {
  std::string key;
  std::optional<RecordOut> record;
  std::string full, summary;  // summary "" = none
  std::uint32_t full_tokens = 0, summary_tokens = 0;
  float score = 0;
  double time = 0;
};

struct SectionSpec {
  const char* name;
  bool pinned;
  int priority;
  std::vector<Entry> entries;
};

}  // namespace

ContextResult assemble_context(Memory& memory, const ContextRequest& req) {
  if (!req.count) throw InvalidArgument("context needs a token counter");
  const std::string& ns = req.recall.ns;
  const std::size_t sep_tokens = req.count(req.separator);

  // Prefix counts are cached: a context has few distinct "date role: " prefixes.
  std::unordered_map<std::string, std::uint32_t> prefix_tokens;
  auto count_prefix = [&](const std::string& p) {
    auto it = prefix_tokens.find(p);
    if (it == prefix_tokens.end()) it = prefix_tokens.emplace(p, std::uint32_t(req.count(p))).first;
    return it->second;
  };
  auto record_entry = [&](RecordOut&& ro, const char* section, float score) {
    Entry e;
    const Record& r = ro.r;
    std::uint32_t framing;
    std::string date;
    append_date(date, r.h.ts);
    if (!req.render) {
      std::string prefix = date;
      if (std::string_view(section) == "recent" || ro.kind == "turn") {
        // No role is invented for a turn stored without one (its text often names the speaker).
        if (!ro.role.empty()) prefix += " " + ro.role + ":";
        prefix += ' ';
      } else {
        prefix += " (" + ro.kind + ") ";
      }
      framing = count_prefix(prefix);
      e.full = prefix + r.text;
      if (!r.summary.empty()) e.summary = prefix + r.summary;
    } else {
      e.full = req.render(ro, section, r.text, date);
      if (!r.summary.empty()) e.summary = req.render(ro, section, r.summary, date);
      const std::size_t n = req.count(e.full);
      framing = n > r.h.tokens_text ? std::uint32_t(n - r.h.tokens_text) : 0;
    }
    e.full_tokens = r.h.tokens_text + framing;
    e.summary_tokens = e.summary.empty() ? 0 : r.h.tokens_summary + framing;
    e.score = score;
    e.time = r.h.ts;
    e.record = std::move(ro);
    return e;
  };

  std::vector<SectionSpec> specs;
  std::unordered_set<std::uint64_t> taken;
  const double now = req.recall.now;
  // 1. state (pinned)
  if (req.include_state) {
    SectionSpec s{"state", true, -2, {}};
    for (auto& [key, json] : memory.state_items(ns)) {
      Entry e;
      e.full = key + ": " + json;
      e.full_tokens = std::uint32_t(req.count(e.full));
      e.key = key;
      e.score = 1.0f;
      s.entries.push_back(std::move(e));
    }
    specs.push_back(std::move(s));
  }
  // 2. pinned kinds
  if (!req.pinned_kinds.empty()) {
    SectionSpec s{"pinned", true, -1, {}};
    const double valid_at = req.recall.as_of.value_or(now);
    std::vector<RecordOut> records = memory.select_kinds(ns, req.pinned_kinds, valid_at, now, req.recall.include_history, 1000);
    s.entries.reserve(records.size());  // an Entry is large: no moves while the section grows
    for (auto& ro : records) {
      taken.insert(ro.r.id);
      const float importance = ro.r.h.importance;
      s.entries.push_back(record_entry(std::move(ro), "pinned", importance));
    }
    specs.push_back(std::move(s));
  }
  // 3. the session's recent turns, oldest first
  if (req.recent_turns > 0) {
    std::vector<RecordOut> recent = memory.recent_of_kind(ns, req.session, "turn", req.recent_turns, taken);
    SectionSpec s{"recent", false, 0, {}};
    s.entries.reserve(recent.size());
    const float n = float(std::max<std::size_t>(1, recent.size()));
    for (std::size_t i = 0; i < recent.size(); ++i) {
      taken.insert(recent[i].r.id);
      s.entries.push_back(record_entry(std::move(recent[i]), "recent", 1.0f + float(i) / n));
    }
    specs.push_back(std::move(s));
  }
  // 4. recalled memories
  if (!req.recall.text.empty() || req.recall.vector != nullptr) {
    SectionSpec s{"memories", false, 1, {}};
    std::size_t rank = 0;
    // Packing uses the fused ranks, never the similarities: the vector list keeps its int8 estimates'
    // order (each exact re-score is a cold 1.5 KB row at 384-d; REALTALK evidence in context
    // unchanged, benchmarks/RESULTS.md).
    RecallQuery rq = req.recall;
    rq.exact = 0;
    // Twice the memories asked for per list, not recall's 5x: the packer takes ranks 1..k of the fused
    // list, which come from near the top of one list or the other (REALTALK evidence in context within
    // +-0.002 of 5x at every budget; benchmarks/RESULTS.md), and each candidate costs a scan slot.
    if (rq.candidates == 0) rq.candidates = std::max(kDefaultCandidates, 2 * rq.k);
    std::vector<RecallResult> recalled = memory.recall(rq);
    s.entries.reserve(recalled.size());
    for (auto& res : recalled) {
      ++rank;
      if (taken.count(res.hit.id)) continue;
      s.entries.push_back(record_entry(std::move(res.record), "memories", float(std::exp2(-double(rank - 1) / 5.0))));
    }
    specs.push_back(std::move(s));
  }
  specs.erase(std::remove_if(specs.begin(), specs.end(), [](const SectionSpec& s) { return s.entries.empty(); }),
              specs.end());
  ContextResult out;
  if (specs.empty()) return out;

  std::vector<context::Section> sections;
  for (std::size_t si = 0; si < specs.size(); ++si) {
    context::Section sec;
    sec.name = specs[si].name;
    sec.priority = specs[si].priority;
    sec.pinned = specs[si].pinned;
    for (std::size_t i = 0; i < specs[si].entries.size(); ++i) {
      const Entry& e = specs[si].entries[i];
      context::Candidate c;
      c.id = (std::uint64_t(si) << 32) | i;
      c.score = std::max(0.0f, e.score);
      c.tokens_full = e.full_tokens;
      c.tokens_summary = e.summary_tokens;
      c.time = e.time;
      sec.candidates.push_back(c);
    }
    sections.push_back(std::move(sec));
  }
  context::PackOptions opt;
  opt.budget = req.budget;
  opt.separator_tokens = std::uint32_t(sep_tokens);
  opt.order = context::Order::score;  // the layout below orders each section itself
  opt.pinned_overflow = context::PinnedOverflow::error;
  // The exact programme costs O(items x budget): ~40 us at 512 tokens, ~160 us at 2,048 for 64
  // items. On REALTALK it raised the evidence packed at 512 tokens (0.565 vs 0.557 greedy) and
  // changed nothing from 1,024 up (0.642/0.705/0.786 either way), so it runs only for small budgets.
  opt.exact_max_budget = 1024;
  const context::PackResult packed = context::pack(std::span<const context::Section>(sections), opt);

  // Layout: state and pinned in their own order, then memories by the requested policy, then the
  // recent turns in time order, closest to the question.
  struct Pick {
    std::uint32_t sec, idx;
    bool summary;
    std::uint32_t tokens;
    float score;
  };
  std::vector<std::vector<Pick>> chosen(specs.size());
  for (const auto& it : packed.items)
    chosen[it.section].push_back({it.section, it.index, it.fidelity == context::Fidelity::summary, it.tokens, it.score});
  auto section_of = [&](std::string_view name) -> std::vector<Pick>* {
    for (std::size_t si = 0; si < specs.size(); ++si)
      if (name == specs[si].name) return &chosen[si];
    return nullptr;
  };
  std::vector<Pick> layout;
  auto by_index = [](const Pick& a, const Pick& b) { return a.idx < b.idx; };
  auto by_time = [&](const Pick& a, const Pick& b) {
    const double ta = specs[a.sec].entries[a.idx].time, tb = specs[b.sec].entries[b.idx].time;
    return ta < tb || (ta == tb && a.idx < b.idx);
  };
  auto by_score = [](const Pick& a, const Pick& b) { return a.score > b.score || (a.score == b.score && a.idx < b.idx); };
  for (const char* name : {"state", "pinned"}) {
    if (auto* p = section_of(name)) {
      std::sort(p->begin(), p->end(), by_index);
      layout.insert(layout.end(), p->begin(), p->end());
    }
  }
  if (auto* p = section_of("memories")) {
    if (req.order == context::Order::chronological) {
      std::sort(p->begin(), p->end(), by_time);
      layout.insert(layout.end(), p->begin(), p->end());
    } else {
      std::sort(p->begin(), p->end(), by_score);
      if (req.order == context::Order::score) {
        layout.insert(layout.end(), p->begin(), p->end());
      } else {  // edges: 1st first, 2nd last, 3rd second, 4th second to last, ...
        for (std::size_t i = 0; i < p->size(); i += 2) layout.push_back((*p)[i]);
        const std::size_t back = p->size() / 2;
        for (std::size_t j = back; j-- > 0;) layout.push_back((*p)[2 * j + 1]);
      }
    }
  }
  if (auto* p = section_of("recent")) {
    std::sort(p->begin(), p->end(), by_time);
    layout.insert(layout.end(), p->begin(), p->end());
  }

  for (const auto& d : packed.dropped) {
    const Entry& e = specs[d.section].entries[d.index];
    out.dropped.push_back({specs[d.section].name, e.key, std::string(context::to_string(d.reason)),
                           e.record ? e.record->r.id : 0, d.score});
  }
  out.items.reserve(layout.size());  // a ContextEntry holds a whole record: no moves while the list grows
  for (const Pick& p : layout) {
    Entry& e = specs[p.sec].entries[p.idx];
    ContextEntry ce;
    ce.section = specs[p.sec].name;
    ce.key = e.key;
    ce.summary = p.summary;
    ce.tokens = p.tokens;
    ce.score = p.score;
    ce.text = p.summary ? std::move(e.summary) : std::move(e.full);
    ce.record = std::move(e.record);
    out.items.push_back(std::move(ce));
  }

  auto render = [&] {
    out.text.clear();
    for (std::size_t i = 0; i < out.items.size(); ++i) {
      if (i) out.text += req.separator;
      out.text += out.items[i].text;
    }
  };
  render();
  out.tokens = packed.total_tokens;
  // The guarantee is on the rendered text as the store's counter counts it.
  for (std::size_t n = req.count(out.text); !out.items.empty() && n > req.budget; n = req.count(out.text)) {
    std::size_t victim = out.items.size();
    for (std::size_t i = 0; i < out.items.size(); ++i) {
      const auto& it = out.items[i];
      if (it.section == "state" || it.section == "pinned") continue;
      // The least valuable memory first; recent turns only when no memory is left.
      auto rank = [](const ContextEntry& c) { return std::make_pair(c.section == "recent", c.score); };
      if (victim == out.items.size() || rank(it) < rank(out.items[victim])) victim = i;
    }
    if (victim == out.items.size())
      throw InvalidArgument("pinned items need " + std::to_string(n) + " tokens, budget is " + std::to_string(req.budget));
    const auto& v = out.items[victim];
    out.dropped.push_back({v.section, v.key, "budget", v.record ? v.record->r.id : 0, v.score});
    out.items.erase(out.items.begin() + long(victim));
    out.tokens = 0;
    for (const auto& it : out.items) out.tokens += it.tokens;
    out.tokens += sep_tokens * (out.items.empty() ? 0 : out.items.size() - 1);
    render();
  }
  return out;
}

}  // namespace recallcore::engine
