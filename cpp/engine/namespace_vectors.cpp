#include "engine/namespace_vectors.h"

#include <algorithm>
#include <cmath>

#include "simd/convert.h"
#include "simd/dispatch.h"

namespace recallcore::engine {

namespace {
constexpr std::size_t kChunk = 256;  // rows per block-kernel call (a stack buffer of estimates)
// Estimates re-scored beyond the `exact` asked for: the int8 estimate's error is ~1e-3 of a cosine
// (unit 384-d vectors), so a true top-`exact` row ranks this far down the estimates only when dozens
// of rows sit within that error of each other, and then swapping them changes nothing that matters.
constexpr std::size_t kMargin = 32;

NamespaceVectors::Mirror mirror_of(const RecordHeader& h) {
  return {h.valid_from, h.valid_to, h.expires_at, (h.flags & kArchived) != 0};
}

// States of live[]: a removed row; a live row that every plain query at a finite time admits (no
// validity window, no expiry, not archived: most records), so its mirror is not read (a cold line
// per row under the selection bound, ~5% of a 100k-store recall); a live row its mirror decides.
constexpr std::uint8_t kRemoved = 0, kTimeless = 1, kWindowed = 2;

std::uint8_t live_state(const NamespaceVectors::Mirror& m) {
  const bool timeless = m.valid_from == -kForever && m.valid_to == kForever && m.expires_at == kForever && !m.archived;
  return timeless ? kTimeless : kWindowed;
}

void normalise(const float* v, std::size_t dim, float* out) {
  float n2 = simd::active().f32[int(simd::Metric::ip)](v, v, dim);
  const float inv = n2 > 0 ? 1.0f / std::sqrt(n2) : 0.0f;
  for (std::size_t i = 0; i < dim; ++i) out[i] = v[i] * inv;
}
}  // namespace

void NamespaceVectors::encode(const float* v, std::int8_t* codes, float* scale, float* norm,
                              std::int32_t* sum) const {
  if (metric_ == simd::Metric::cosine) {
    // Unit vectors, so the inner-product kernel orders by cosine without a norm per row.
    thread_local std::vector<float> unit;
    unit.resize(dim_);
    normalise(v, dim_, unit.data());
    *scale = simd::encode_i8(unit.data(), dim_, codes);
  } else {
    *scale = simd::encode_i8(v, dim_, codes);
  }
  *norm = *scale * *scale * float(simd::active().dot_i8i8(codes, codes, dim_));
  std::int32_t total = 0;
  for (std::size_t i = 0; i < dim_; ++i) total += codes[i];
  *sum = total;
}

NamespaceVectors::Block* NamespaceVectors::find(std::uint32_t ns) const {
  auto it = blocks_.find(ns);
  return it == blocks_.end() ? nullptr : it->second.get();
}

std::size_t NamespaceVectors::bytes_of(const Block& b) {
  return b.ids.capacity() * sizeof(std::uint64_t) + b.codes.capacity() +
         (b.scales.capacity() + b.norms.capacity()) * sizeof(float) + b.sums.capacity() * sizeof(std::int32_t) +
         b.vecs.capacity() * sizeof(float) + b.mirror.capacity() * sizeof(Mirror) + b.live.capacity();
}

void NamespaceVectors::resized(Block& b) {
  bytes_ -= b.bytes;
  b.bytes = bytes_of(b);
  bytes_ += b.bytes;
}

void NamespaceVectors::evict_beyond_budget(std::uint32_t keep_ns) {
  // Least recently searched first; the namespace being searched stays even when it alone is over.
  while (bytes_ > budget_ && blocks_.size() > 1) {
    auto victim = blocks_.end();
    for (auto it = blocks_.begin(); it != blocks_.end(); ++it)
      if (it->first != keep_ns && (victim == blocks_.end() || it->second->last_used < victim->second->last_used))
        victim = it;
    bytes_ -= victim->second->bytes;
    blocks_.erase(victim);
    ++evictions_;
  }
}

bool NamespaceVectors::search(std::uint32_t ns, const float* query, std::size_t k, std::size_t exact,
                              const hnsw::Filter& filter, const PlainQuery& plain, const Source& source,
                              std::vector<hnsw::Hit>& out) {
  out.clear();
  if (k == 0) return true;
  exact = std::min(exact, k);
  const std::size_t keep = std::max(k, exact + kMargin);
  // Held for the whole search: a block evicted meanwhile (by another search building one) stays
  // valid until this search is done; writers wait for the shared state lock this caller holds.
  std::shared_ptr<Block> b;
  {
    std::lock_guard g(mu_);
    auto it = blocks_.find(ns);
    if (it != blocks_.end()) {
      b = it->second;
    } else if (requested_.insert(ns).second) {
      // First request: not built. Building reads and encodes every vector of the namespace (~2 ms
      // for 1,000 at 384-d), which would land on a cold open's first query and on namespaces
      // searched once; the caller scans the index's vectors this time.
      return false;
    } else {
      b = std::make_shared<Block>();
      std::vector<RecordHeader> headers;
      source(b->ids, b->vecs, headers);
      const std::size_t n = b->ids.size();
      b->mirror.resize(n);
      for (std::size_t i = 0; i < n; ++i) b->mirror[i] = mirror_of(headers[i]);
      b->codes.resize(n * dim_);
      b->scales.resize(n);
      b->norms.resize(n);
      b->sums.resize(n);
      b->live.resize(n);
      for (std::size_t i = 0; i < n; ++i) b->live[i] = live_state(b->mirror[i]);
      for (std::size_t i = 0; i < n; ++i)
        encode(b->vecs.data() + i * dim_, b->codes.data() + i * dim_, &b->scales[i], &b->norms[i], &b->sums[i]);
      b->bytes = bytes_of(*b);
      bytes_ += b->bytes;
      blocks_.emplace(ns, b);
      evict_beyond_budget(ns);
    }
    b->last_used = ++clock_;
  }
  const std::size_t n = b->ids.size();
  if (n == 0) return true;

  thread_local std::vector<float> q;
  thread_local std::vector<std::int8_t> qc;
  thread_local std::vector<Candidate> cand;
  q.resize(dim_);
  qc.resize(dim_);
  if (metric_ == simd::Metric::cosine)
    normalise(query, dim_, q.data());
  else
    std::copy(query, query + dim_, q.begin());
  const auto& kt = simd::active();
  const bool l2 = metric_ == simd::Metric::l2;
  // The query is quantised too, so an estimate is one exact integer dot (VNNI: 64 byte products per
  // instruction, 3x the float-by-code kernel); its rounding adds ~1e-4 of a cosine to the codes' own
  // error, and the head is re-scored from f32 anyway. l2: |q|^2 - 2 q.x + |x|^2 with |x|^2 stored.
  const float qscale = simd::encode_i8(q.data(), dim_, qc.data());
  const float qq = l2 ? kt.f32[int(simd::Metric::ip)](q.data(), q.data(), dim_) : 0.0f;

  // Step 1: estimates for every row, then the best `keep` the filter admits.
  thread_local std::vector<float> est;
  est.resize(n);
  for (std::size_t start = 0; start < n; start += kChunk) {
    const std::size_t m = std::min(kChunk, n - start);
    std::int32_t dots[kChunk];
    kt.dot_i8i8_block(qc.data(), b->codes.data() + start * dim_, b->sums.data() + start, m, dim_, dots);
    const float* scales = b->scales.data() + start;
    float* e = est.data() + start;
    if (l2) {
      const float* norms = b->norms.data() + start;
      for (std::size_t j = 0; j < m; ++j) e[j] = qq - 2.0f * qscale * scales[j] * float(dots[j]) + norms[j];
    } else {
      for (std::size_t j = 0; j < m; ++j) e[j] = -(qscale * scales[j] * float(dots[j]));
    }
  }
  const bool finite_time = std::isfinite(plain.vis.valid_at) && std::isfinite(plain.vis.now);
  auto admitted = [&](std::size_t row) {
    const std::uint8_t state = b->live[row];
    if (state == kRemoved) return false;
    if (!plain.use) return true;  // the filter decides, below
    if (state == kTimeless && finite_time) return true;
    const Mirror& h = b->mirror[row];
    return plain.vis.admits(h.valid_from, h.valid_to, h.expires_at, h.archived);
  };
  auto collect_all = [&] {
    cand.clear();
    for (std::size_t row = 0; row < n; ++row)
      if (admitted(row)) cand.push_back(Candidate::make(est[row], std::uint32_t(row)));
  };
  cand.clear();
  if (plain.use && n > 4 * keep) {
    // A plain query needs no filter calls, only the best `keep` admitted rows. A bound read off a
    // strided sample of the estimates (its rank scaled to ~1.5 keep rows) leaves ~1.5 keep rows to
    // check and select among, instead of every row. Exact: when at least `keep` admitted rows lie
    // at or under the bound, the best `keep` all do; otherwise every row is collected.
    constexpr std::size_t kStride = 8;
    thread_local std::vector<float> sample;
    sample.clear();
    for (std::size_t row = 0; row < n; row += kStride) sample.push_back(est[row]);
    const std::size_t rank = std::min(sample.size() - 1, (keep * 3 / 2) / kStride + 2);
    std::nth_element(sample.begin(), sample.begin() + long(rank), sample.end());
    const float bound = sample[rank];
    // Which rows fall under the bound is a coin toss to the branch predictor (~15% do, at random):
    // every row is written and the count advanced by the comparison, then the few are checked.
    thread_local std::vector<Candidate> under;
    if (under.size() < n) under.resize(n);
    std::size_t m = 0;
    for (std::size_t row = 0; row < n; ++row) {
      under[m] = Candidate::make(est[row], std::uint32_t(row));
      m += est[row] <= bound;
    }
    for (std::size_t i = 0; i < m; ++i)
      if (admitted(under[i].pos())) cand.push_back(under[i]);
    if (cand.size() < keep) collect_all();
  } else {
    // Otherwise the filter, whose table rows are scattered over the store, must be asked in estimate
    // order: every live row is kept and selected in rounds of nth_element (linear), so the filter is
    // asked about ~keep rows, not every row.
    collect_all();
  }
  std::size_t accepted = 0, lo = 0;
  if (plain.use) {  // every candidate is admitted: one selection, no filter calls
    if (cand.size() > keep) std::nth_element(cand.begin(), cand.begin() + long(keep), cand.end());
    accepted = std::min(keep, cand.size());
    lo = cand.size();
  }
  while (accepted < keep && lo < cand.size()) {
    const std::size_t want = keep - accepted;
    const std::size_t hi = std::min(cand.size(), lo + want + want / 4 + 8);
    if (hi < cand.size()) std::nth_element(cand.begin() + long(lo), cand.begin() + long(hi), cand.end());
    for (std::size_t i = lo; i < hi; ++i) filter.prefetch(b->ids[cand[i].pos()]);
    for (std::size_t i = lo; i < hi; ++i)
      if (filter.allows(b->ids[cand[i].pos()])) cand[accepted++] = cand[i];  // accepted <= i: in place
    lo = hi;
  }
  cand.resize(accepted);
  std::sort(cand.begin(), cand.end());
  if (cand.size() > keep) cand.resize(keep);

  // Step 2: the best `exact + kMargin` estimates re-scored from the f32 copies, in row order (forward
  // through the block, so the hardware prefetcher helps), with the vector index's kernel and distance.
  const std::size_t head = exact == 0 ? 0 : std::min(cand.size(), exact + kMargin);
  std::sort(cand.begin(), cand.begin() + long(head), [](const Candidate& a, const Candidate& c) { return a.pos() < c.pos(); });
  const int mi = int(metric_);
  out.reserve(std::max(head, std::min(k, cand.size())));
  for (std::size_t i = 0; i < head; ++i) {
    if (i + 2 < head) {
      const auto* row = reinterpret_cast<const char*>(b->vecs.data() + std::size_t(cand[i + 2].pos()) * dim_);
      for (std::size_t off = 0; off < dim_ * sizeof(float); off += 64) __builtin_prefetch(row + off);
    }
    float d = kt.f32[mi](query, b->vecs.data() + std::size_t(cand[i].pos()) * dim_, dim_);
    if (metric_ == simd::Metric::ip) d = 1.0f - d;
    out.push_back({b->ids[cand[i].pos()], d});
  }
  std::sort(out.begin(), out.end(), [](const hnsw::Hit& a, const hnsw::Hit& c) {
    return a.distance < c.distance || (a.distance == c.distance && a.id < c.id);
  });
  // The rest in estimate order, with estimated distances kept monotone after the exact head.
  float floor = out.empty() ? -INFINITY : out.back().distance;
  for (std::size_t i = head; i < cand.size() && out.size() < k; ++i) {
    floor = std::max(floor, l2 ? cand[i].approx() : 1.0f + cand[i].approx());
    out.push_back({b->ids[cand[i].pos()], floor});
  }
  if (out.size() > k) out.resize(k);
  return true;
}

void NamespaceVectors::put(std::uint32_t ns, std::uint64_t id, const float* v, const RecordHeader& h) {
  std::lock_guard g(mu_);
  Block* b = find(ns);
  if (b == nullptr) return;
  std::size_t pos;
  if (b->ids.empty() || id > b->ids.back()) {
    pos = b->ids.size();  // new records have the highest ids: an append
  } else {
    pos = std::size_t(std::lower_bound(b->ids.begin(), b->ids.end(), id) - b->ids.begin());
  }
  if (pos == b->ids.size() || b->ids[pos] != id) {
    b->ids.insert(b->ids.begin() + long(pos), id);
    b->codes.insert(b->codes.begin() + long(pos * dim_), dim_, 0);
    b->scales.insert(b->scales.begin() + long(pos), 0.0f);
    b->norms.insert(b->norms.begin() + long(pos), 0.0f);
    b->sums.insert(b->sums.begin() + long(pos), 0);
    b->vecs.insert(b->vecs.begin() + long(pos * dim_), dim_, 0.0f);
    b->mirror.insert(b->mirror.begin() + long(pos), Mirror{});
    b->live.insert(b->live.begin() + long(pos), kWindowed);
  } else if (b->live[pos] == kRemoved) {
    --b->dead;  // a removed row re-added (a replaced vector)
  }
  encode(v, b->codes.data() + pos * dim_, &b->scales[pos], &b->norms[pos], &b->sums[pos]);
  std::copy(v, v + dim_, b->vecs.begin() + long(pos * dim_));
  b->mirror[pos] = mirror_of(h);
  b->live[pos] = live_state(b->mirror[pos]);
  resized(*b);
}

void NamespaceVectors::update_header(std::uint32_t ns, std::uint64_t id, const RecordHeader& h) {
  std::lock_guard g(mu_);
  Block* b = find(ns);
  if (b == nullptr) return;
  auto it = std::lower_bound(b->ids.begin(), b->ids.end(), id);
  if (it == b->ids.end() || *it != id) return;
  const std::size_t pos = std::size_t(it - b->ids.begin());
  b->mirror[pos] = mirror_of(h);
  if (b->live[pos] != kRemoved) b->live[pos] = live_state(b->mirror[pos]);
}

void NamespaceVectors::remove(std::uint32_t ns, std::uint64_t id) {
  std::lock_guard g(mu_);
  Block* b = find(ns);
  if (b == nullptr) return;
  auto it = std::lower_bound(b->ids.begin(), b->ids.end(), id);
  if (it == b->ids.end() || *it != id) return;
  const std::size_t pos = std::size_t(it - b->ids.begin());
  if (b->live[pos] == kRemoved) return;
  b->live[pos] = kRemoved;
  // Compact once a quarter is dead: removal stays O(1) amortised, scans stay dense.
  if (++b->dead * 4 > b->ids.size()) {
    compact(*b);
    resized(*b);
  }
}

void NamespaceVectors::compact(Block& b) const {
  std::size_t w = 0;
  for (std::size_t i = 0; i < b.ids.size(); ++i) {
    if (!b.live[i]) continue;
    if (w != i) {
      b.ids[w] = b.ids[i];
      std::copy_n(b.codes.begin() + long(i * dim_), dim_, b.codes.begin() + long(w * dim_));
      b.scales[w] = b.scales[i];
      b.norms[w] = b.norms[i];
      b.sums[w] = b.sums[i];
      b.mirror[w] = b.mirror[i];
      b.live[w] = b.live[i];
      std::copy_n(b.vecs.begin() + long(i * dim_), dim_, b.vecs.begin() + long(w * dim_));
    }
    ++w;
  }
  b.ids.resize(w);
  b.codes.resize(w * dim_);
  b.scales.resize(w);
  b.norms.resize(w);
  b.sums.resize(w);
  b.mirror.resize(w);
  b.vecs.resize(w * dim_);
  b.live.resize(w);
  b.dead = 0;
}

void NamespaceVectors::clear() {
  std::lock_guard g(mu_);
  blocks_.clear();
  requested_.clear();
  bytes_ = 0;
}

void NamespaceVectors::visit(
    const std::function<void(std::uint32_t, std::uint64_t, const float*, const Mirror&)>& fn) const {
  std::lock_guard g(mu_);
  for (const auto& [ns, b] : blocks_)
    for (std::size_t i = 0; i < b->ids.size(); ++i)
      if (b->live[i]) fn(ns, b->ids[i], b->vecs.data() + i * dim_, b->mirror[i]);
}

NamespaceVectors::Usage NamespaceVectors::usage() const {
  std::lock_guard g(mu_);
  return {blocks_.size(), bytes_, budget_, evictions_};
}

}  // namespace recallcore::engine
