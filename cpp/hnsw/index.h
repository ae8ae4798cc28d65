// HNSW vector index over dense uint32 slots with external uint64 ids.
//
// Layout (after hnswlib): level-0 links and the traversal copy of each vector live in one contiguous
// block with a fixed stride per slot, so expanding a node touches one region; upper levels are separate
// per-slot arrays. With compressed storage (f16/i8) the traversal copy is compressed and the f32
// originals sit in a separate array that only the final re-rank (and exact scans) touch, unless
// Config::keep_originals is false: then there are no f32 copies and the codes are all there is.
//
// Concurrency: one writer at a time (add/remove/compact serialise on a writer mutex) and any number of
// concurrent readers (search, search_exact, distance, get_vector, contains, size). Inside add, slots
// are prepared under an exclusive lock and then linked into the graph under a shared lock by several
// threads with per-node link locks; readers see link lists through atomic loads, so they keep running
// while new nodes are linked in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hnsw/filter.h"
#include "simd/kernel_table.h"

namespace recallcore::hnsw {

enum class Storage : std::uint8_t { f32, f16, i8 };

const char* storage_name(Storage s);
Storage parse_storage(const std::string& name);      // throws InvalidArgument
const char* metric_name(simd::Metric m);
simd::Metric parse_metric(const std::string& name);  // throws InvalidArgument

struct Config {
  std::size_t dim;
  simd::Metric metric = simd::Metric::cosine;
  std::size_t M = 16;  // links per node on upper levels; level 0 keeps 2*M
  std::size_t ef_construction = 200;
  Storage storage = Storage::f32;
  std::uint64_t seed = 0;
  std::size_t capacity = 0;  // initial slots reserved (grows on demand)
  // Compressed storage only: keep the f32 originals in RAM for the final re-rank, exact scans and
  // get_vector (the default). false drops them: i8 then costs ~1/3 of the f32 memory, and distances,
  // re-rank, exact scans and get_vector all use the compressed codes (an f32-query x code estimate).
  bool keep_originals = true;
  void validate() const;     // throws InvalidArgument naming the bad field
};

struct Hit {
  std::uint64_t id;
  float distance;
};

struct Stats {
  std::size_t size = 0;        // live vectors
  std::size_t slots = 0;       // slots in use (live + tombstones)
  std::size_t capacity = 0;    // slots allocated
  std::size_t tombstones = 0;  // removed, not yet reused or compacted
  std::size_t levels = 0;      // number of graph levels (max level + 1; 0 when empty)
  std::size_t memory_bytes = 0;  // owned heap bytes + the resident part of mapped sections
  std::size_t mapped_bytes = 0;  // size of the sections served from a file mapping (not all resident)
  std::size_t traversal_bytes = 0;  // of memory_bytes: the level-0 block (links + traversal vectors)
  std::size_t exact_scan_threshold = 0;
  bool mapped = false;  // level-0 block still served from a file mapping
  std::string storage, metric, simd_level;
};

// Distances: l2 = squared L2; ip = 1 - a.b; cosine = 1 - cos (vectors normalised at insert).
class Index {
 public:
  explicit Index(const Config& config);
  ~Index();
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  const Config& config() const;

  // Adds n vectors (row-major n x dim). ids may be null: ids are then assigned (one past the largest id
  // ever seen) and written to assigned_ids when it is not null. An existing id is replaced. Validates
  // everything first (finite values, no duplicate id in the batch): on error nothing changes.
  void add(const float* vectors, const std::uint64_t* ids, std::size_t n, std::size_t threads = 1,
           std::uint64_t* assigned_ids = nullptr);
  // Throws InvalidArgument on an unknown or repeated id; nothing is removed then.
  void remove(const std::uint64_t* ids, std::size_t n);
  bool contains(std::uint64_t id) const;
  std::size_t size() const;  // live count

  // k nearest (sorted ascending by distance); filter may be null; ef >= k (0 = default).
  std::vector<Hit> search(const float* query, std::size_t k, std::size_t ef = 0, const Filter* filter = nullptr) const;
  // The same into caller buffers of k entries; returns how many were found (<= k). No allocation on
  // the unfiltered path once the per-thread scratch is warm.
  std::size_t search_into(const float* query, std::size_t k, std::size_t ef, const Filter* filter,
                          std::uint64_t* ids, float* distances) const;
  // nq queries, rows of ids/distances padded with (UINT64_MAX, +inf) past the results found.
  void search_batch(const float* queries, std::size_t nq, std::size_t k, std::size_t ef, const Filter* filter,
                    std::size_t threads, std::uint64_t* ids, float* distances) const;
  // Exact k nearest among the given ids (unknown/removed ids skipped): the planner's small-filter path.
  std::vector<Hit> search_exact(const float* query, std::size_t k, const std::uint64_t* ids, std::size_t n) const;
  float distance(const float* query, std::uint64_t id) const;  // full precision; throws on unknown id
  bool get_vector(std::uint64_t id, float* out) const;         // the stored (normalised for cosine) f32 vector
  std::vector<std::uint64_t> ids() const;                      // live ids, in slot order

  void save(const std::string& path, std::uint64_t stamp = 0) const;
  // Throws CorruptData on a bad magic/version/size/checksum. With mmap the level-0 block and the f32
  // originals are served from a private mapping (not read up front, so not checksummed: every link is
  // bounds-checked where it is followed instead); the ids, levels and upper links are read and verified.
  static std::unique_ptr<Index> load(const std::string& path, bool mmap = false, std::uint64_t* stamp = nullptr);

  Stats stats() const;
  void compact();  // rebuilds the graph from the live vectors: no tombstones afterwards
  std::size_t default_ef() const;
  // Allow-lists admitting at most this many items are scanned exactly instead of walked (at ef = 64;
  // the planner uses max(1024, sqrt(24 * ef * size)), see index.cpp for the measurement).
  std::size_t exact_scan_threshold() const;
  // Overrides the automatic threshold (n < 0 restores it); 0 forces the filtered graph walk.
  void set_exact_scan_threshold(std::int64_t n);

  struct Impl;
  explicit Index(std::unique_ptr<Impl> impl);  // internal (load); Impl is private to cpp/hnsw

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace recallcore::hnsw
