// Interim exact-scan implementation of VectorIndex (replaced by the HNSW graph adapter): correct,
// O(n) per query, not persisted (the store rebuilds it from LMDB on open).
#include <algorithm>
#include <cmath>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "common/errors.h"
#include "engine/vector_index.h"
#include "simd/dispatch.h"

namespace recallcore::engine {

namespace {

class ExactIndex final : public VectorIndex {
 public:
  explicit ExactIndex(const VectorIndexParams& p) : p_(p), kt_(simd::active()) {}
  std::size_t dim() const override { return p_.dim; }

  void add(const float* vectors, const std::uint64_t* ids, std::size_t n, std::size_t) override {
    std::unique_lock lock(mu_);
    for (std::size_t i = 0; i < n; ++i) {
      const float* v = vectors + i * p_.dim;
      auto it = row_.find(ids[i]);
      std::size_t r;
      if (it != row_.end()) {
        r = it->second;
      } else {
        r = ids_.size();
        ids_.push_back(ids[i]);
        data_.resize(data_.size() + p_.dim);
        row_[ids[i]] = r;
      }
      float* dst = data_.data() + r * p_.dim;
      std::copy(v, v + p_.dim, dst);
      if (p_.metric == simd::Metric::cosine) normalize(dst);
    }
  }

  void remove(const std::uint64_t* ids, std::size_t n) override {
    std::unique_lock lock(mu_);
    for (std::size_t i = 0; i < n; ++i) {
      auto it = row_.find(ids[i]);
      if (it == row_.end()) continue;
      const std::size_t r = it->second, last = ids_.size() - 1;
      if (r != last) {
        std::copy(data_.begin() + last * p_.dim, data_.begin() + (last + 1) * p_.dim, data_.begin() + r * p_.dim);
        ids_[r] = ids_[last];
        row_[ids_[r]] = r;
      }
      ids_.pop_back();
      data_.resize(ids_.size() * p_.dim);
      row_.erase(it);
    }
  }

  bool contains(std::uint64_t id) const override {
    std::shared_lock lock(mu_);
    return row_.count(id) != 0;
  }
  std::size_t size() const override {
    std::shared_lock lock(mu_);
    return ids_.size();
  }

  std::vector<VecHit> search(const float* q, std::size_t k, std::size_t, const IdFilter* filter) const override {
    std::shared_lock lock(mu_);
    std::vector<VecHit> hits;
    std::vector<float> qn = prepared(q);
    for (std::size_t r = 0; r < ids_.size(); ++r) {
      if (filter != nullptr && !filter->allows(ids_[r])) continue;
      hits.push_back({ids_[r], dist(qn.data(), data_.data() + r * p_.dim)});
    }
    return top(std::move(hits), k);
  }

  std::vector<VecHit> search_exact(const float* q, std::size_t k, const std::uint64_t* ids,
                                   std::size_t n) const override {
    std::shared_lock lock(mu_);
    std::vector<VecHit> hits;
    std::vector<float> qn = prepared(q);
    for (std::size_t i = 0; i < n; ++i) {
      auto it = row_.find(ids[i]);
      if (it != row_.end()) hits.push_back({ids[i], dist(qn.data(), data_.data() + it->second * p_.dim)});
    }
    return top(std::move(hits), k);
  }

  bool get_vector(std::uint64_t id, float* out) const override {
    std::shared_lock lock(mu_);
    auto it = row_.find(id);
    if (it == row_.end()) return false;
    std::copy(data_.begin() + it->second * p_.dim, data_.begin() + (it->second + 1) * p_.dim, out);
    return true;
  }

  void save(const std::string&, std::uint64_t) const override {}
  std::size_t memory_bytes() const override { return data_.capacity() * 4 + ids_.capacity() * 8 + row_.size() * 32; }

 private:
  void normalize(float* v) const {
    double s = 0;
    for (std::size_t i = 0; i < p_.dim; ++i) s += double(v[i]) * v[i];
    if (s > 0) {
      const float inv = float(1.0 / std::sqrt(s));
      for (std::size_t i = 0; i < p_.dim; ++i) v[i] *= inv;
    }
  }
  std::vector<float> prepared(const float* q) const {
    std::vector<float> out(q, q + p_.dim);
    if (p_.metric == simd::Metric::cosine) normalize(out.data());
    return out;
  }
  float dist(const float* q, const float* v) const {
    switch (p_.metric) {
      case simd::Metric::l2: return kt_.f32[0](q, v, p_.dim);
      default: return 1.0f - kt_.f32[1](q, v, p_.dim);
    }
  }
  static std::vector<VecHit> top(std::vector<VecHit> hits, std::size_t k) {
    auto less = [](const VecHit& a, const VecHit& b) { return a.distance < b.distance || (a.distance == b.distance && a.id < b.id); };
    if (hits.size() > k) {
      std::partial_sort(hits.begin(), hits.begin() + long(k), hits.end(), less);
      hits.resize(k);
    } else {
      std::sort(hits.begin(), hits.end(), less);
    }
    return hits;
  }

  VectorIndexParams p_;
  const simd::KernelTable& kt_;
  mutable std::shared_mutex mu_;
  std::vector<float> data_;
  std::vector<std::uint64_t> ids_;
  std::unordered_map<std::uint64_t, std::size_t> row_;
};

}  // namespace

std::unique_ptr<VectorIndex> make_vector_index(const VectorIndexParams& params) {
  return std::make_unique<ExactIndex>(params);
}

std::unique_ptr<VectorIndex> load_vector_index(const VectorIndexParams&, const std::string&, std::uint64_t*) {
  return nullptr;
}

}  // namespace recallcore::engine
