// Internal state of hnsw::Index, shared by index.cpp (graph algorithms) and persistence.cpp (the
// snapshot format). Not part of the public API.
#pragma once

#include <array>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <vector>

#include "hnsw/idmap.h"
#include "hnsw/index.h"
#include "hnsw/region.h"
#include "hnsw/visited.h"

namespace recallcore::hnsw {

inline constexpr std::size_t kMaxM = 128;        // so level-0 lists (2*M) fit a stack buffer
inline constexpr int kMaxLevel = 30;
inline constexpr std::size_t kLockStripes = 4096;  // per-node link locks, striped by slot
inline constexpr std::uint64_t kNoEntry = 0;     // entry word: ((level + 1) << 32) | slot

struct Cand {
  float d;
  std::uint32_t slot;
  bool operator<(const Cand& o) const { return d < o.d || (d == o.d && slot < o.slot); }
  bool operator>(const Cand& o) const { return o < *this; }
};

// A prepared query: the f32 vector (normalised for cosine) and, with i8 storage and a similarity
// metric, the same vector as int16 codes (value ~ step * code) for the integer estimate kernel.
struct Query {
  const float* f = nullptr;
  const std::int16_t* codes = nullptr;
  float step = 0.0f;
};

// n elements of v starting on a 64-byte boundary: a query is loaded once per distance, and with malloc's
// 16-byte alignment every 64-byte load of it spans two cache lines.
template <class T>
T* aligned64(std::vector<T>& v, std::size_t n) {
  v.resize(n + 64 / sizeof(T));
  const auto a = reinterpret_cast<std::uintptr_t>(v.data());
  return v.data() + ((64 - a % 64) % 64) / sizeof(T);
}

// Per-thread search state, pooled so a query allocates nothing once warm.
struct Scratch {
  VisitedList visited;
  std::vector<Cand> cand, top, sel, tmp;
  std::vector<std::vector<Cand>> chosen;  // per level, while inserting
  std::vector<float> query;
  std::vector<std::int16_t> qcodes;  // Query::codes
  std::vector<float> vq, vc, vn;  // decoded vectors while inserting without f32 originals
  std::vector<std::uint64_t> bits;
  std::vector<float> bound;  // the k smallest upper bounds of the code estimates in an exact scan
};

class ScratchPool {
 public:
  struct Deleter {
    ScratchPool* pool;
    void operator()(Scratch* s) const { pool->release(s); }
  };
  using Lease = std::unique_ptr<Scratch, Deleter>;
  ScratchPool() = default;
  ScratchPool(const ScratchPool&) = delete;
  ScratchPool& operator=(const ScratchPool&) = delete;
  ~ScratchPool() { std::unique_ptr<Scratch> last(fast_.exchange(nullptr)); }
  Lease acquire() {
    // One scratch sits in a lock-free slot: a single-threaded caller (the common case: one query per
    // Python call) never takes the mutex (~40 ns of a ~3 us search on a tiny index).
    if (Scratch* f = fast_.exchange(nullptr, std::memory_order_acquire)) return Lease(f, Deleter{this});
    std::unique_ptr<Scratch> s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        s = std::move(free_.back());
        free_.pop_back();
      }
    }
    if (!s) s = std::make_unique<Scratch>();
    return Lease(s.release(), Deleter{this});
  }
  std::size_t bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t b = 0;
    // The slot's scratch may be in use by a search right now, so its size is recorded at release
    // instead of read here (approximate under concurrency, never a data race).
    b += fast_bytes_.load(std::memory_order_relaxed);
    for (const auto& s : free_) b += s->visited.bytes();
    return b;
  }

 private:
  void release(Scratch* s) {
    Scratch* empty = nullptr;
    fast_bytes_.store(s->visited.bytes(), std::memory_order_relaxed);
    if (fast_.compare_exchange_strong(empty, s, std::memory_order_release, std::memory_order_relaxed)) return;
    std::unique_ptr<Scratch> owned(s);
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < 64) free_.push_back(std::move(owned));
  }
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Scratch>> free_;
  std::atomic<Scratch*> fast_{nullptr};
  std::atomic<std::size_t> fast_bytes_{0};
};

struct Index::Impl {
  explicit Impl(const Config& c);

  // ---- configuration and derived layout ----
  Config cfg;
  std::size_t dim = 0, M0 = 0, Mup = 0;
  std::size_t stride = 0;   // bytes per slot in the level-0 block
  std::size_t vec_off = 0;  // offset of the traversal vector inside a slot
  std::size_t pf_head = 0, pf_all = 0;  // bytes of a neighbour's vector prefetched early / in total
  double level_mult = 0;
  bool similarity = false;  // the kernels return a.b (ip, cosine): distance = 1 - a.b
  simd::F32Fn f32fn = nullptr;
  simd::F16Fn f16fn = nullptr;
  simd::I8Fn i8fn = nullptr;
  simd::I16I8Fn q16fn = nullptr;
  simd::F32GatherFn f32gather = nullptr;  // f32 storage only
  bool int_query = false;  // i8 storage with ip/cosine: the walk's estimate runs on integer codes
  simd::Level level = simd::Level::scalar;

  // ---- data (guarded by rw: exclusive to change the slot set, shared to link or read) ----
  Region block;      // level 0: [u32 count][u32 links[M0]] [traversal vector] per slot
  Region originals;  // f32 vectors when the traversal copy is compressed and they are kept (else empty)
  // i8 without originals: one bit per dimension and slot, the sign of the rounding residual of each
  // code (value ~ scale * (code +- 1/4)). Only the final re-rank and exact scans read it, so it lives
  // outside the level-0 block.
  Region residual;
  std::size_t res_bytes = 0;  // bytes of residual bits per slot (0 when there are none)
  std::vector<std::uint64_t> slot_ids;
  std::vector<std::uint8_t> slot_level;
  std::vector<std::uint8_t> deleted;
  // Per slot: levels 1..slot_level, each [count][links[Mup]]; slot_level gives the size, so a slot
  // costs 8 bytes here, not a vector's 24 (a 100k open creates 100k of them, nearly all empty).
  std::vector<std::unique_ptr<std::uint32_t[]>> upper;
  std::size_t capacity = 0, n_slots = 0, n_live = 0, n_tomb = 0;
  IdMap id_map;
  std::vector<std::uint32_t> free_slots;
  std::atomic<std::uint64_t> entry{kNoEntry};
  std::uint64_t next_auto_id = 0;
  std::mt19937_64 rng;
  std::atomic<std::int64_t> exact_override{-1};  // -1: automatic threshold

  // ---- synchronisation ----
  mutable std::shared_mutex rw;
  std::mutex write_mu;  // one writer at a time
  std::mutex entry_mu;  // held while a node above the current top level is inserted
  std::unique_ptr<std::array<std::mutex, kLockStripes>> link_locks = std::make_unique<std::array<std::mutex, kLockStripes>>();
  mutable ScratchPool pool;

  // ---- accessors ----
  std::uint32_t* links(std::uint32_t slot, int lv) const {
    if (lv == 0) return reinterpret_cast<std::uint32_t*>(block.data() + std::size_t(slot) * stride);
    if (lv > slot_level[slot]) return nullptr;  // a reused slot may have fewer levels than stale links assume
    return upper[slot].get() + std::size_t(lv - 1) * (Mup + 1);
  }
  std::size_t max_links(int lv) const { return lv == 0 ? M0 : Mup; }
  const std::byte* traversal(std::uint32_t slot) const { return block.data() + std::size_t(slot) * stride + vec_off; }
  // True when every slot has an f32 vector (f32 storage, or compressed with the originals kept).
  bool has_f32() const { return cfg.storage == Storage::f32 || cfg.keep_originals; }
  // Only when has_f32().
  const float* f32_of(std::uint32_t slot) const {
    if (cfg.storage == Storage::f32) return reinterpret_cast<const float*>(traversal(slot));
    return reinterpret_cast<const float*>(originals.data()) + std::size_t(slot) * dim;
  }
  // The f32 vector of a slot, or (without originals) its codes decoded into buf (dim floats).
  const float* vector_of(std::uint32_t slot, float* buf) const;
  // Code distance refined by the residual bits (i8 without originals; else dist()).
  float refined(const float* q, std::uint32_t slot) const;
  float finish(float raw) const {
    const float d = similarity ? 1.0f - raw : raw;
    // NaN (only from a corrupted mapped file) must not reach the heaps' comparisons.
    return d == d ? d : std::numeric_limits<float>::infinity();
  }
  // Distance from a (prepared) query to a slot's traversal copy.
  float dist(const float* q, std::uint32_t slot) const {
    const std::byte* v = traversal(slot);
    switch (cfg.storage) {
      case Storage::f16: return finish(f16fn(q, reinterpret_cast<const std::uint16_t*>(v), dim));
      case Storage::i8: {
        float scale;
        std::memcpy(&scale, v, sizeof scale);
        return finish(i8fn(q, reinterpret_cast<const std::int8_t*>(v + sizeof(float)), scale, dim));
      }
      case Storage::f32: break;
    }
    return finish(f32fn(q, reinterpret_cast<const float*>(v), dim));
  }
  // The traversal estimate of a prepared query: dist(), or the integer kernel when the query has codes.
  // The product of int16 and int8 codes is exact; only the query's rounding (step / 2 per dimension,
  // ~1e-5 of its largest value) adds to the i8 codes' own error.
  // Codes is a template argument so the f32/f16 walk carries no per-distance test (measured: the
  // run-time test cost the 100 x 384 f32 floor benchmark ~0.3 us of 3.4 per call).
  template <bool Codes>
  float est(const Query& q, std::uint32_t slot) const {
    if constexpr (!Codes) return dist(q.f, slot);
    const std::byte* v = traversal(slot);
    float scale;
    std::memcpy(&scale, v, sizeof scale);
    const auto* codes = reinterpret_cast<const std::int8_t*>(v + sizeof(float));
    return finish(scale * q.step * float(q16fn(q.codes, codes, dim)));
  }
  // The most precise distance available: f32 when the index has the vectors, else the refined code
  // estimate (re-rank, exact scans, distance()).
  float exact(const float* q, std::uint32_t slot) const {
    return has_f32() ? finish(f32fn(q, f32_of(slot), dim)) : refined(q, slot);
  }
  // Vector-to-node distance while building the graph: f32, or the plain code estimate (cheaper than
  // refined(); the graph only needs the neighbourhood's shape).
  float pair(const float* v, std::uint32_t slot) const {
    return has_f32() ? finish(f32fn(v, f32_of(slot), dim)) : dist(v, slot);
  }

  static std::uint32_t load_count(const std::uint32_t* ll) {
    return std::atomic_ref<std::uint32_t>(*const_cast<std::uint32_t*>(ll)).load(std::memory_order_acquire);
  }
  static std::uint32_t load_link(const std::uint32_t* ll, std::size_t i) {
    return std::atomic_ref<std::uint32_t>(*const_cast<std::uint32_t*>(ll + 1 + i)).load(std::memory_order_relaxed);
  }
  static void store_links(std::uint32_t* ll, const Cand* c, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
      std::atomic_ref<std::uint32_t>(ll[1 + i]).store(c[i].slot, std::memory_order_relaxed);
    std::atomic_ref<std::uint32_t>(ll[0]).store(std::uint32_t(n), std::memory_order_release);
  }
  static int entry_level(std::uint64_t e) { return int(e >> 32) - 1; }
  static std::uint32_t entry_slot(std::uint64_t e) { return std::uint32_t(e); }
  static std::uint64_t pack_entry(std::uint32_t slot, int lv) { return (std::uint64_t(lv + 1) << 32) | slot; }

  // ---- algorithms (index.cpp) ----
  const float* prepare_query(const float* q, Scratch& s) const;  // in s.query (normalised for cosine)
  Query quantize(const float* f, std::vector<std::int16_t>& buf) const;  // codes in buf when int_query
  float est(const Query& q, std::uint32_t slot) const { return q.codes ? est<true>(q, slot) : est<false>(q, slot); }
  void greedy(const Query& q, std::uint32_t& ep, float& epd, int lv) const;
  template <bool Codes>
  void greedy_on(const Query& q, std::uint32_t& ep, float& epd, int lv) const;
  template <class Allow>
  void walk(const Query& q, std::uint32_t ep, std::size_t ef, int lv, Allow&& allow, Scratch& s,
            bool live_only = true) const {
    if (q.codes) walk_on<true>(q, ep, ef, lv, allow, s, live_only);
    else walk_on<false>(q, ep, ef, lv, allow, s, live_only);
  }
  template <bool Codes, class Allow>
  void walk_on(const Query& q, std::uint32_t ep, std::size_t ef, int lv, Allow& allow, Scratch& s,
               bool live_only) const;
  void select(std::vector<Cand>& cands, std::size_t m, std::vector<Cand>& out, float* buf) const;
  void insert(std::uint32_t slot, Scratch& s);
  void ensure_capacity(std::size_t slots);
  std::uint32_t take_slot();
  void write_slot(std::uint32_t slot, std::uint64_t id, const float* v, float* buf);
  void remove_slot(std::uint32_t slot);
  void add(const float* vectors, const std::uint64_t* ids, std::size_t n, std::size_t threads, std::uint64_t* assigned);
  std::size_t search_into(const float* q, std::size_t k, std::size_t ef, const Filter* filter, std::uint64_t* ids,
                          float* dists) const;
  std::size_t exact_into(const Query& q, std::size_t k, const std::uint64_t* ids, std::size_t n, Scratch& s,
                         std::uint64_t* out_ids, float* out_d) const;
  std::size_t exact_threshold(std::size_t ef) const;
  // The best min(k, c.size()) of c, nearest first, as ids and distances; returns how many. Always
  // inlined: out of line, this tail of every search moved the per-call floor by ~0.2 us (code layout).
  [[gnu::always_inline]] std::size_t write_best(std::vector<Cand>& c, std::size_t k, std::uint64_t* out_ids,
                                                float* out_d) const {
    const std::size_t m = std::min(k, c.size());
    std::partial_sort(c.begin(), c.begin() + std::ptrdiff_t(m), c.end());
    for (std::size_t i = 0; i < m; ++i) {
      out_ids[i] = slot_ids[c[i].slot];
      out_d[i] = c[i].d;
    }
    return m;
  }
  std::size_t memory_bytes() const;
  void adopt(Impl& o);  // takes o's data (compact)
};

// Persistence (persistence.cpp).
void save_impl(const Index::Impl& impl, const std::string& path, std::uint64_t stamp);
std::unique_ptr<Index::Impl> load_impl(const std::string& path, bool mmap, std::uint64_t* stamp);

}  // namespace recallcore::hnsw
