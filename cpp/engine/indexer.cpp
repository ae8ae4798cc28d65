// The not-yet-indexed tail and the background indexer.
//
// HNSW insertion costs ~1 ms per vector at ef_construction 200, far slower than a durable LMDB commit.
// So a committed vector first joins a pending tail that every search scans exactly (so it is
// searchable as soon as the write returns), and one indexer thread moves the tail into the graph in
// batches, concurrently with searches. Lock order: state_mu_ before graph_mu_; the indexer never holds
// both, so it cannot deadlock with a writer.
#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "engine/memory.h"
#include "simd/dispatch.h"

namespace recallcore::engine {

namespace {
// Small enough that close() and snapshots wait little for the batch in flight (~0.1-0.3 s).
constexpr std::size_t kBatch = 256;
}

void Memory::queue_vector_locked(std::uint64_t id, std::uint64_t seq, const float* v) {
  if (ns_vecs_) ns_vecs_->put(rows_[id].h.ns, id, v, rows_[id].h);
  auto it = pend_pos_.find(id);
  if (it != pend_pos_.end()) {
    pend_[it->second].seq = seq;
    std::memcpy(pend_vecs_.data() + it->second * dim_, v, dim_ * sizeof(float));
    return;
  }
  if (vec_->contains(id)) graph_dead_.push_back(id);  // replaced: the graph's copy is stale
  pend_pos_[id] = pend_.size();
  pend_.push_back({id, seq});
  pend_vecs_.insert(pend_vecs_.end(), v, v + dim_);
}

void Memory::erase_pending(std::unordered_map<std::uint64_t, std::size_t>::iterator it) {
  // Swap with the last entry: O(1); the order of the tail does not matter.
  const std::size_t pos = it->second, last = pend_.size() - 1;
  pend_pos_.erase(it);
  if (pos != last) {
    pend_[pos] = pend_[last];
    std::memcpy(pend_vecs_.data() + pos * dim_, pend_vecs_.data() + last * dim_, dim_ * sizeof(float));
    pend_pos_[pend_[pos].id] = pos;
  }
  pend_.pop_back();
  pend_vecs_.resize(pend_.size() * dim_);
}

void Memory::drop_vector_locked(std::uint64_t id) {
  if (ns_vecs_) ns_vecs_->remove(rows_[id].h.ns, id);
  auto it = pend_pos_.find(id);
  if (it != pend_pos_.end()) erase_pending(it);
  if (vec_->contains(id)) graph_dead_.push_back(id);
}

bool Memory::index_pending(std::size_t max_batch) {
  std::vector<PendingVec> batch;
  std::vector<float> vecs;
  std::vector<std::uint64_t> dead;
  std::uint64_t gen;
  {
    std::unique_lock lock(state_mu_);
    if (pend_.empty() && graph_dead_.empty()) return false;
    const std::size_t n = std::min(max_batch, pend_.size());
    // Take from the end: those are the newest, and erasing there needs no position fix-ups.
    batch.assign(pend_.end() - long(n), pend_.end());
    vecs.assign(pend_vecs_.end() - long(n * dim_), pend_vecs_.end());
    dead.swap(graph_dead_);
    gen = graph_gen_;
  }
  {
    std::lock_guard graph(graph_mu_);
    if (gen != graph_gen_) return true;  // the graph was rebuilt meanwhile: its tail was re-queued
    // Removals first, so a replaced id ends with its new vector.
    std::vector<std::uint64_t> present;
    for (auto id : dead)
      if (vec_->contains(id)) present.push_back(id);
    std::sort(present.begin(), present.end());
    present.erase(std::unique(present.begin(), present.end()), present.end());
    if (!present.empty()) vec_->remove(present.data(), present.size());
    if (!batch.empty()) {
      std::vector<std::uint64_t> ids(batch.size());
      for (std::size_t i = 0; i < batch.size(); ++i) ids[i] = batch[i].id;
      vec_->add(vecs.data(), ids.data(), ids.size(), 0);
    }
    if (!batch.empty() || !present.empty()) graph_version_.fetch_add(1);
  }
  std::unique_lock lock(state_mu_);
  if (gen != graph_gen_) return true;
  for (const auto& b : batch) {
    auto it = pend_pos_.find(b.id);
    if (it == pend_pos_.end()) {
      // Deleted while it was being inserted: take it out of the graph on the next round.
      if (b.id >= rows_.size() || !rows_[b.id].live) graph_dead_.push_back(b.id);
      continue;
    }
    if (pend_[it->second].seq != b.seq) continue;  // re-written meanwhile: the newer vector stays pending
    erase_pending(it);
  }
  return true;
}

void Memory::drain_pending() {
  while (index_pending(4 * kBatch)) {
  }
}

void Memory::indexer_loop() {
  std::unique_lock lk(idx_mu_);
  while (!idx_stop_) {
    bool has_work;
    {
      std::shared_lock lock(state_mu_);
      has_work = !pend_.empty() || !graph_dead_.empty();
    }
    if (!has_work) {
      idx_cv_.wait_for(lk, std::chrono::milliseconds(200));
      continue;
    }
    lk.unlock();
    try {
      index_pending(kBatch);
    } catch (...) {
      // The tail stays pending (and searchable); the next round or a drain retries.
    }
    lk.lock();
  }
}

void Memory::stop_indexer() {
  if (!indexer_) return;
  {
    std::lock_guard lk(idx_mu_);
    idx_stop_ = true;
  }
  idx_cv_.notify_all();
  indexer_->join();
  indexer_.reset();
}

bool Memory::vector_of(std::uint64_t id, float* out) const {
  auto it = pend_pos_.find(id);
  if (it != pend_pos_.end()) {
    std::memcpy(out, pend_vecs_.data() + it->second * dim_, dim_ * sizeof(float));
    return true;
  }
  return vec_->get_vector(id, out);
}

std::vector<hnsw::Hit> Memory::vector_candidates(const float* query, std::size_t k, std::size_t ef,
                                                 const std::vector<std::uint64_t>* allowed,
                                                 const hnsw::Filter& filter) const {
  std::vector<hnsw::Hit> hits;
  if (allowed != nullptr) {
    if (!allowed->empty()) hits = vec_->search_exact(query, k, allowed->data(), allowed->size());
  } else {
    hits = vec_->search(query, k, ef, &filter);
  }
  if (pend_.empty()) return hits;
  // The pending copy of an id is authoritative (it may replace a stale graph vector).
  hits.erase(std::remove_if(hits.begin(), hits.end(), [&](const hnsw::Hit& h) { return pend_pos_.count(h.id) != 0; }),
             hits.end());
  const auto& kt = simd::active();
  const int m = int(metric_id_);
  auto score = [&](std::uint64_t id, std::size_t pos) {
    float d = kt.f32[m](query, pend_vecs_.data() + pos * dim_, dim_);
    if (metric_id_ == simd::Metric::ip) d = 1.0f - d;
    hits.push_back({id, d});
  };
  if (allowed != nullptr && allowed->size() < pend_.size()) {
    // A small allow-list against a long tail (e.g. right after a bulk load): look its ids up.
    for (auto id : *allowed) {
      auto it = pend_pos_.find(id);
      if (it != pend_pos_.end()) score(id, it->second);
    }
  } else {
    for (std::size_t i = 0; i < pend_.size(); ++i) {
      const std::uint64_t id = pend_[i].id;
      if (!filter.allows(id)) continue;
      if (allowed != nullptr && !std::binary_search(allowed->begin(), allowed->end(), id)) continue;
      score(id, i);
    }
  }
  std::sort(hits.begin(), hits.end(), [](const hnsw::Hit& a, const hnsw::Hit& b) {
    return a.distance < b.distance || (a.distance == b.distance && a.id < b.id);
  });
  if (hits.size() > k) hits.resize(k);
  return hits;
}

}  // namespace recallcore::engine
