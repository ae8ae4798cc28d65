// The store's view of a vector index: what the engine needs, whatever the implementation behind it
// (the HNSW graph; an exact scan for tests). Distances are "smaller is closer" (l2: squared L2,
// ip: 1 - a.b, cosine: 1 - cos).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "simd/kernel_table.h"

namespace recallcore::engine {

struct VecHit {
  std::uint64_t id;
  float distance;
};

class IdFilter {
 public:
  virtual ~IdFilter() = default;
  virtual bool allows(std::uint64_t id) const = 0;
};

class VectorIndex {
 public:
  virtual ~VectorIndex() = default;
  virtual std::size_t dim() const = 0;
  // Adds or replaces. Safe to run concurrently with the const methods.
  virtual void add(const float* vectors, const std::uint64_t* ids, std::size_t n, std::size_t threads) = 0;
  virtual void remove(const std::uint64_t* ids, std::size_t n) = 0;  // ids must be present
  virtual bool contains(std::uint64_t id) const = 0;
  virtual std::size_t size() const = 0;
  virtual std::vector<VecHit> search(const float* query, std::size_t k, std::size_t ef, const IdFilter* filter) const = 0;
  virtual std::vector<VecHit> search_exact(const float* query, std::size_t k, const std::uint64_t* ids,
                                           std::size_t n) const = 0;
  virtual bool get_vector(std::uint64_t id, float* out) const = 0;
  virtual void save(const std::string& path, std::uint64_t stamp) const = 0;
  virtual std::size_t memory_bytes() const = 0;
};

struct VectorIndexParams {
  std::size_t dim = 0;
  simd::Metric metric = simd::Metric::cosine;
  std::size_t M = 16, ef_construction = 200, ef_search = 64;
  int storage = 0;  // 0 f32, 1 f16, 2 i8
};

// Creates the index the store uses, or loads one saved with save(); load returns null (never
// throws) when the file is missing, corrupt or does not match `params`, so the caller rebuilds.
std::unique_ptr<VectorIndex> make_vector_index(const VectorIndexParams& params);
std::unique_ptr<VectorIndex> load_vector_index(const VectorIndexParams& params, const std::string& path,
                                               std::uint64_t* stamp);

}  // namespace recallcore::engine
