// The recall planner and scorer (see recall.h). One call: one shared lock on the derived state, one
// LMDB read transaction for entity lookups and the records returned.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "common/errors.h"
#include "engine/memory.h"
#include "simd/dispatch.h"
#include "storage/keys.h"

namespace recallcore::engine {

namespace {

// The filter of a query, evaluated against the in-memory header table; usable by both the vector
// index (during the graph walk) and the lexical index (during scoring).
class Predicate final : public hnsw::Filter, public text::DocFilter {
 public:
  const Memory::RowTable* rows = nullptr;
  std::uint32_t ns = 0, session = 0;
  bool any_session = true;
  std::vector<std::uint32_t> kinds;
  double since = -INFINITY, until = INFINITY;
  Visibility vis;
  const std::unordered_set<std::uint64_t>* entity_ids = nullptr;
  const std::uint64_t* list = nullptr;
  std::size_t list_n = 0;

  bool allows(std::uint64_t id) const override {
    if (id >= rows->size()) return false;
    const Memory::Row& r = (*rows)[id];
    if (!r.live || r.h.ns != ns) return false;
    if (!any_session && r.h.session != session) return false;
    if (!kinds.empty() && std::find(kinds.begin(), kinds.end(), r.h.kind) == kinds.end()) return false;
    if (!(r.h.ts >= since && r.h.ts < until)) return false;
    if (!vis.admits(r.h)) return false;
    if (entity_ids != nullptr && entity_ids->count(id) == 0) return false;
    return true;
  }
  void prefetch(std::uint64_t id) const override {
    if (id < rows->size()) __builtin_prefetch(&(*rows)[id]);
  }
  const std::uint64_t* allow_list(std::size_t* n) const override {
    if (list == nullptr) return nullptr;
    *n = list_n;
    return list;
  }
};

float factor_recency(const RecallQuery& q, double ts) {
  if (q.recency_half_life <= 0) return 1.0f;
  const double age = std::max(0.0, q.now - ts);
  return float(1.0 - q.recency_weight + q.recency_weight * std::exp2(-age / q.recency_half_life));
}

// Min-max normalisation of one candidate list's raw scores (relative-score fusion).
struct Range {
  float lo = 0, hi = 0;
  float norm(float s) const { return hi > lo ? (s - lo) / (hi - lo) : 1.0f; }
};

// Per-thread scratch reused across queries, so a recall allocates only what it returns.
struct Scratch {
  std::vector<std::uint64_t> allowed;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> by_id;  // vector hit id -> index in hits
  std::vector<float> mmr_vecs;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

std::vector<RecallResult> Memory::recall(const RecallQuery& q) {
  ensure_open();
  if (q.k == 0) throw InvalidArgument("k must be > 0");
  const bool want_vec = q.mode != RecallMode::lexical && q.vector != nullptr && dim_ > 0;
  const bool want_lex = q.mode != RecallMode::vector && !q.text.empty();
  if (q.mode == RecallMode::vector && q.vector == nullptr)
    throw InvalidArgument("mode='vector' needs a query vector (pass vector= or give the store an embedder)");
  if (q.mode == RecallMode::lexical && q.text.empty()) throw InvalidArgument("mode='lexical' needs query text");
  if (!want_vec && !want_lex) throw InvalidArgument("an empty query needs a vector");
  if (q.vector != nullptr) {
    if (dim_ == 0) throw InvalidArgument("this store is text-only: no vector search");
    for (std::size_t i = 0; i < dim_; ++i)
      if (!std::isfinite(q.vector[i])) throw InvalidArgument("query vector contains NaN or infinity");
  }
  if (!(q.diversity >= 0 && q.diversity <= 1)) throw InvalidArgument("diversity must be within [0, 1]");
  if (!(q.recency_half_life >= 0)) throw InvalidArgument("recency_half_life must be >= 0");
  if (!(std::isfinite(q.vector_weight) && q.vector_weight >= 0 && std::isfinite(q.lexical_weight) &&
        q.lexical_weight >= 0))
    throw InvalidArgument("vector_weight and lexical_weight must be finite and >= 0");
  if (!(std::isfinite(q.importance_weight) && std::isfinite(q.recency_weight)))
    throw InvalidArgument("importance_weight and recency_weight must be finite");
  sync();

  std::shared_lock lock(state_mu_);
  storage::Env::Reader reader(*env_);
  storage::Txn& txn = reader.txn();
  std::vector<RecallResult> out;
  Scratch& sc = scratch();

  Predicate pred;
  pred.rows = &rows_;
  pred.ns = names_->find(txn, NameKind::ns, q.ns);
  if (pred.ns == 0) return out;
  if (q.session) {
    pred.any_session = false;
    pred.session = names_->find(txn, NameKind::session, *q.session);
    if (pred.session == 0) return out;
  }
  for (const auto& k : q.kinds)
    if (std::uint32_t id = names_->find(txn, NameKind::kind, k)) pred.kinds.push_back(id);
  if (!q.kinds.empty() && pred.kinds.empty()) return out;
  pred.since = q.since, pred.until = q.until;
  pred.vis = {q.as_of.value_or(q.now), q.now, q.include_history, q.include_archived};
  std::unordered_set<std::uint64_t> entity_ids;
  if (!q.entities.empty()) {
    for (const auto& e : q.entities) {
      for (auto id : entity_record_ids(txn, pred.ns, e)) entity_ids.insert(id);
    }
    if (entity_ids.empty()) return out;  // no record of the namespace mentions any of them
    pred.entity_ids = &entity_ids;
  }

  const std::size_t ncand = q.candidates ? q.candidates : std::max<std::size_t>(kDefaultCandidates, 5 * q.k);
  std::vector<hnsw::Hit> vhits;
  std::vector<text::LexHit> lhits;
  if (want_vec) {
    // Plan by the namespace's size: a small or mid-sized one is scanned exactly (a tiny one through
    // an allow-list into the index, the rest through its dense copies); a large one is filtered
    // during the graph walk.
    std::vector<std::uint64_t>& allowed = sc.allowed;
    allowed.clear();
    auto it = ns_ids_.find(pred.ns);
    const std::size_t ns_size = it == ns_ids_.end() ? 0 : it->second.size();
    if (ns_size <= 4 * vec_->exact_scan_threshold() + 1024) {
      bool done = false;
      if (ns_size > ncand + 32 && ns_vecs_) {
        // The namespace's dense copies (engine/namespace_vectors.h), which hold the pending tail's
        // vectors too: int8 estimates rank the rows; the head of the ranking, enough for the k
        // results, is re-scored from f32. Built from the vectors the derived state holds (the
        // namespace's first search, by the path below, has just paged them in).
        auto source = [&](std::vector<std::uint64_t>& ids, std::vector<float>& vecs, std::vector<RecordHeader>& hs) {
          ids.reserve(it->second.size());
          vecs.reserve(it->second.size() * dim_);
          hs.reserve(it->second.size());
          for (auto id : it->second) {
            if (!rows_[id].live || !(rows_[id].h.flags & kHasVector)) continue;
            vecs.resize((ids.size() + 1) * dim_);
            if (!vector_of(id, vecs.data() + ids.size() * dim_)) continue;
            ids.push_back(id);
            hs.push_back(rows_[id].h);
          }
          vecs.resize(ids.size() * dim_);
        };
        PlainQuery plain;
        plain.use = pred.any_session && pred.kinds.empty() && pred.since == -INFINITY && pred.until == INFINITY &&
                    pred.entity_ids == nullptr;
        plain.vis = pred.vis;
        done = ns_vecs_->search(pred.ns, q.vector, ncand, std::min(q.exact, q.k), pred, plain, source, vhits);
      }
      if (!done) {
        if (it != ns_ids_.end())
          for (auto id : it->second)
            if ((rows_[id].h.flags & kHasVector) && pred.allows(id)) allowed.push_back(id);
        vhits = vector_candidates(q.vector, ncand, 0, &allowed, pred);  // ns lists are in id order
      }
    } else {
      vhits = vector_candidates(q.vector, ncand, std::max(q.ef, ncand), nullptr, pred);
    }
  }
  if (want_lex) lhits = lexical().search(pred.ns, q.text, ncand, &pred);

  // Merge the two lists by id. They hold at most `ncand` entries each, so a sorted array of the
  // vector ids and a binary search per lexical hit beat a hash map (no per-node allocation).
  std::vector<RecallHit> hits;
  hits.reserve(vhits.size() + lhits.size());
  auto& by_id = sc.by_id;
  by_id.clear();
  for (std::size_t i = 0; i < vhits.size(); ++i) {
    RecallHit h;
    h.id = vhits[i].id;
    h.vector_rank = std::uint32_t(i + 1);
    h.vector_similarity = metric_id_ == simd::Metric::l2 ? -vhits[i].distance : 1.0f - vhits[i].distance;
    hits.push_back(h);
    by_id.emplace_back(h.id, std::uint32_t(i));
  }
  std::sort(by_id.begin(), by_id.end());
  for (std::size_t i = 0; i < lhits.size(); ++i) {
    auto at = std::lower_bound(by_id.begin(), by_id.end(), std::make_pair(lhits[i].id, std::uint32_t(0)));
    RecallHit* h;
    if (at != by_id.end() && at->first == lhits[i].id) {
      h = &hits[at->second];
    } else {
      hits.emplace_back();
      h = &hits.back();
      h->id = lhits[i].id;
    }
    h->lexical_rank = std::uint32_t(i + 1);
    h->bm25 = lhits[i].score;
  }

  // Each list's score range, for relative-score fusion (vector similarities fall as rank grows,
  // and so do BM25 scores: the first and last entries bound them).
  Range vr, lr;
  if (!vhits.empty()) vr = {hits[vhits.size() - 1].vector_similarity, hits[0].vector_similarity};
  if (!lhits.empty()) lr = {lhits.back().score, lhits.front().score};
  const bool fuse = want_vec && want_lex;
  const double wsum = double(q.vector_weight) + double(q.lexical_weight) > 0
                          ? double(q.vector_weight) + double(q.lexical_weight)
                          : 1.0;
  // Each hit's header is a cold row of the table (a DRAM miss): requested all at once, not one
  // after another in the loop below.
  for (const RecallHit& h : hits) {
    __builtin_prefetch(&rows_[h.id].h.ts);  // the two fields read below, 48 bytes apart
    __builtin_prefetch(&rows_[h.id].h.importance);
  }
  for (RecallHit& h : hits) {
    const RecordHeader& hd = rows_[h.id].h;
    double base = 0;
    if (fuse && q.fusion == Fusion::rrf) {
      if (h.vector_rank) base += q.vector_weight / double(q.rrf_k + h.vector_rank);
      if (h.lexical_rank) base += q.lexical_weight / double(q.rrf_k + h.lexical_rank);
    } else if (fuse) {
      // A convex combination (weights normalised to sum 1), so fused scores stay within [0, 1]
      // whatever the weights' scale.
      if (h.vector_rank) base += double(q.vector_weight) * vr.norm(h.vector_similarity);
      if (h.lexical_rank) base += double(q.lexical_weight) * lr.norm(h.bm25);
      base /= wsum;
    } else if (want_vec) {
      base = h.vector_similarity;
    } else {
      base = h.bm25;
    }
    h.recency = factor_recency(q, hd.ts);
    h.importance = hd.importance;
    h.score = float(base * h.recency * (1.0 + q.importance_weight * (double(hd.importance) - 0.5)));
  }
  auto better = [](const RecallHit& a, const RecallHit& b) { return a.score > b.score || (a.score == b.score && a.id < b.id); };
  const bool mmr = q.diversity > 0 && dim_ > 0 && hits.size() > 1;
  // Only the head is needed: k hits, or MMR's pool of candidates.
  const std::size_t pool = mmr ? std::min(hits.size(), std::max<std::size_t>(3 * q.k, 20)) : std::min(hits.size(), q.k);
  std::partial_sort(hits.begin(), hits.begin() + std::ptrdiff_t(pool), hits.end(), better);
  hits.resize(pool);

  if (mmr) {
    // MMR over the best candidates: trade relevance against similarity to what is already chosen,
    // and drop near-duplicates of a better hit outright.
    std::vector<float>& vecs = sc.mmr_vecs;
    vecs.assign(pool * dim_, 0.0f);
    std::vector<char> has(pool, 0);
    for (std::size_t i = 0; i < pool; ++i) has[i] = vector_of(hits[i].id, vecs.data() + i * dim_);
    const auto& kt = simd::active();
    auto row = [&](std::size_t i) { return vecs.data() + i * dim_; };
    auto sim = [&](std::size_t a, std::size_t b) {
      const float d = kt.f32[1](row(a), row(b), dim_);
      if (metric_id_ != simd::Metric::cosine) {
        const float na = kt.f32[1](row(a), row(a), dim_);
        const float nb = kt.f32[1](row(b), row(b), dim_);
        return na > 0 && nb > 0 ? d / std::sqrt(na * nb) : 0.0f;
      }
      return d;
    };
    const float top = hits[0].score > 0 ? hits[0].score : 1.0f;
    std::vector<std::size_t> chosen;
    std::vector<char> used(pool, 0);
    std::vector<float> max_sim(pool, 0.0f);
    while (chosen.size() < std::min(pool, q.k)) {
      std::size_t best = pool;
      double best_val = -std::numeric_limits<double>::infinity();
      for (std::size_t i = 0; i < pool; ++i) {
        if (used[i]) continue;
        const double val = (1.0 - q.diversity) * hits[i].score / top - q.diversity * max_sim[i];
        if (val > best_val) best_val = val, best = i;
      }
      if (best == pool) break;
      used[best] = 1;
      chosen.push_back(best);
      for (std::size_t i = 0; i < pool; ++i) {
        if (used[i] || !has[i] || !has[best]) continue;
        max_sim[i] = std::max(max_sim[i], sim(i, best));
        if (max_sim[i] >= q.dedupe_similarity) used[i] = 1;  // a near-duplicate of a better hit
      }
    }
    std::vector<RecallHit> diverse;
    diverse.reserve(chosen.size());
    for (auto i : chosen) diverse.push_back(hits[i]);
    hits = std::move(diverse);
  }
  if (hits.size() > q.k) hits.resize(q.k);

  out.reserve(hits.size());
  hints_.visit(hits, [](const RecallHit& h) { return h.id; }, [&](const RecallHit& h) {
    std::string_view bytes;
    if (!txn.get(records_, storage::id_key(h.id), &bytes)) return;  // deleted by another process just now
    hints_.remember(h.id, bytes);
    out.push_back(RecallResult{h, resolve(txn, decode_record(h.id, bytes))});
    Row& row = rows_[h.id];
    std::atomic_ref<std::uint32_t>(row.accesses).fetch_add(1, std::memory_order_relaxed);
    std::atomic_ref<double>(row.last_access).store(q.now, std::memory_order_relaxed);
  });
  return out;
}

}  // namespace recallcore::engine
