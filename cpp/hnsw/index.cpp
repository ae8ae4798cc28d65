#include "hnsw/index.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "common/errors.h"
#include "hnsw/impl.h"
#include "hnsw/parallel.h"
#include "simd/convert.h"
#include "simd/dispatch.h"

namespace recallcore::hnsw {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr std::uint64_t kSentinel = std::numeric_limits<std::uint64_t>::max();

inline void prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }

std::size_t round_up(std::size_t x, std::size_t a) { return (x + a - 1) / a * a; }

std::size_t vector_bytes(Storage s, std::size_t dim) {
  switch (s) {
    case Storage::f16: return dim * 2;
    case Storage::i8: return sizeof(float) + dim;
    case Storage::f32: break;
  }
  return dim * 4;
}

}  // namespace

const char* storage_name(Storage s) {
  switch (s) {
    case Storage::f32: return "f32";
    case Storage::f16: return "f16";
    case Storage::i8: return "i8";
  }
  return "unknown";
}

Storage parse_storage(const std::string& name) {
  if (name == "f32") return Storage::f32;
  if (name == "f16") return Storage::f16;
  if (name == "i8") return Storage::i8;
  throw InvalidArgument("storage must be 'f32', 'f16' or 'i8', got '" + name + "'");
}

const char* metric_name(simd::Metric m) {
  switch (m) {
    case simd::Metric::l2: return "l2";
    case simd::Metric::ip: return "ip";
    case simd::Metric::cosine: return "cosine";
  }
  return "unknown";
}

simd::Metric parse_metric(const std::string& name) {
  if (name == "l2") return simd::Metric::l2;
  if (name == "ip") return simd::Metric::ip;
  if (name == "cosine") return simd::Metric::cosine;
  throw InvalidArgument("metric must be 'l2', 'ip' or 'cosine', got '" + name + "'");
}

void Config::validate() const {
  if (dim == 0 || dim > 65536) throw InvalidArgument("dim must be in [1, 65536], got " + std::to_string(dim));
  if (M < 2 || M > kMaxM) throw InvalidArgument("M must be in [2, " + std::to_string(kMaxM) + "], got " + std::to_string(M));
  if (ef_construction < 1 || ef_construction > 100000)
    throw InvalidArgument("ef_construction must be in [1, 100000], got " + std::to_string(ef_construction));
  if (metric != simd::Metric::l2 && metric != simd::Metric::ip && metric != simd::Metric::cosine)
    throw InvalidArgument("metric must be l2, ip or cosine");
  if (storage != Storage::f32 && storage != Storage::f16 && storage != Storage::i8)
    throw InvalidArgument("storage must be f32, f16 or i8");
  if (capacity > (std::size_t(1) << 32) - 2)
    throw InvalidArgument("capacity must be below 2^32 - 1, got " + std::to_string(capacity));
  if (!keep_originals && storage == Storage::f32)
    throw InvalidArgument("keep_originals=false needs storage 'f16' or 'i8' (f32 storage is the originals)");
}

// ---------------------------------------------------------------------------------------------------
Index::Impl::Impl(const Config& c) : cfg(c), rng(c.seed) {
  cfg.validate();
  dim = cfg.dim;
  M0 = 2 * cfg.M;
  Mup = cfg.M;
  level_mult = 1.0 / std::log(double(cfg.M));
  // Links first, then the traversal vector 16-byte aligned: expanding a node reads its links and the
  // vectors of its neighbours, each from one contiguous stretch.
  vec_off = round_up(sizeof(std::uint32_t) * (1 + M0), 16);
  stride = round_up(vec_off + vector_bytes(cfg.storage, dim), 16);
  if (!cfg.keep_originals) {
    // Memory is the point of this mode: no alignment padding (24 of 544 bytes at 384-d i8). The
    // kernels load unaligned and the scale is read with memcpy; links stay 4-byte aligned.
    vec_off = round_up(sizeof(std::uint32_t) * (1 + M0), 4);
    stride = round_up(vec_off + vector_bytes(cfg.storage, dim), 4);
    if (cfg.storage == Storage::i8) res_bytes = (dim + 7) / 8;
  }
  pf_all = vector_bytes(cfg.storage, dim);
  // Measured (30k x 384, ip): prefetching the first 512 bytes of every fresh neighbour up front (all
  // of an i8 row) and the rest of the next one while computing the current cut p50 by ~10% for i8.
  pf_head = std::min<std::size_t>(pf_all, 512);
  similarity = cfg.metric != simd::Metric::l2;
  const simd::KernelTable& kt = simd::active();
  level = kt.level;
  // Cosine vectors are normalised at insert, so cosine runs on the cheaper dot kernel.
  const int mi = int(cfg.metric == simd::Metric::l2 ? simd::Metric::l2 : simd::Metric::ip);
  f32fn = kt.f32[mi];
  f16fn = kt.f16[mi];
  i8fn = kt.i8[mi];
  q16fn = kt.dot_i16i8;
  if (cfg.storage == Storage::f32) f32gather = kt.f32_gather[mi];
  int_query = cfg.storage == Storage::i8 && similarity;
  if (cfg.capacity > 0) ensure_capacity(cfg.capacity);
}

void Index::Impl::ensure_capacity(std::size_t slots) {
  if (slots <= capacity) return;
  if (slots > (std::size_t(1) << 32) - 2) throw InvalidArgument("index is full (2^32 - 2 slots)");
  std::size_t cap = std::max<std::size_t>({slots, capacity + capacity / 2, 64});
  cap = std::min(cap, (std::size_t(1) << 32) - 2);
  block.grow(cap * stride, n_slots * stride);
  if (cfg.storage != Storage::f32 && cfg.keep_originals)
    originals.grow(cap * dim * sizeof(float), n_slots * dim * sizeof(float));
  if (res_bytes > 0) residual.grow(cap * res_bytes, n_slots * res_bytes);
  slot_ids.resize(cap, 0);
  slot_level.resize(cap, 0);
  deleted.resize(cap, 0);
  upper.resize(cap);
  capacity = cap;
}

const float* Index::Impl::vector_of(std::uint32_t slot, float* buf) const {
  if (has_f32()) return f32_of(slot);
  const std::byte* t = traversal(slot);
  if (cfg.storage == Storage::f16) {
    simd::decode_f16(reinterpret_cast<const std::uint16_t*>(t), dim, buf);
  } else {
    float scale;
    std::memcpy(&scale, t, sizeof scale);
    const auto* codes = reinterpret_cast<const std::int8_t*>(t + sizeof(float));
    const auto* bits = reinterpret_cast<const std::uint8_t*>(residual.data()) + std::size_t(slot) * res_bytes;
    for (std::size_t i = 0; i < dim; ++i)
      buf[i] = scale * (float(codes[i]) + (((bits[i >> 3] >> (i & 7)) & 1) ? 0.25f : -0.25f));
  }
  return buf;
}

// With value ~ s * (c + b / 4), b = +-1 the residual sign:
//   ip:  q.x = s * q.c + (s / 4) * sum(q_i b_i)
//   l2:  |q - x|^2 = |q - s c|^2 - (s / 2) * sum((q_i - s c_i) b_i) + (s / 4)^2 * dim
// Knowing the sign halves the rounding interval: the error variance drops 4x (measured: brute-force
// recall@10 of the estimate 0.9949 -> 0.9972 on the synthetic set, 0.9937 -> 0.9962 on realtalk).
float Index::Impl::refined(const float* q, std::uint32_t slot) const {
  if (res_bytes == 0) return dist(q, slot);
  const std::byte* t = traversal(slot);
  float s;
  std::memcpy(&s, t, sizeof s);
  const auto* codes = reinterpret_cast<const std::int8_t*>(t + sizeof(float));
  const auto* bits = reinterpret_cast<const std::uint8_t*>(residual.data()) + std::size_t(slot) * res_bytes;
  float raw = i8fn(q, codes, s, dim);
  float qb = 0.0f, cb = 0.0f;
  for (std::size_t i = 0; i < dim; ++i) {
    const float b = ((bits[i >> 3] >> (i & 7)) & 1) ? 1.0f : -1.0f;
    qb += q[i] * b;
    cb += float(codes[i]) * b;
  }
  if (similarity) raw += 0.25f * s * qb;
  else raw += -0.5f * s * (qb - s * cb) + 0.0625f * s * s * float(dim);
  return finish(raw);
}

const float* Index::Impl::prepare_query(const float* q, Scratch& s) const {
  float* out = aligned64(s.query, dim);
  if (cfg.metric != simd::Metric::cosine) {
    std::memcpy(out, q, dim * sizeof(float));
    return out;
  }
  double nn = 0;
  for (std::size_t i = 0; i < dim; ++i) nn += double(q[i]) * q[i];
  const float inv = nn > 0 ? float(1.0 / std::sqrt(nn)) : 0.0f;
  for (std::size_t i = 0; i < dim; ++i) out[i] = q[i] * inv;
  return out;
}

Query Index::Impl::quantize(const float* f, std::vector<std::int16_t>& buf) const {
  Query out{f, nullptr, 0.0f};
  if (!int_query) return out;
  float amax = 0.0f;
  for (std::size_t i = 0; i < dim; ++i) amax = std::max(amax, std::fabs(f[i]));
  // The largest code keeps any sum of dim products with 8-bit codes inside int32.
  const float top = float(std::min<std::size_t>(32767, std::size_t(2147483647) / (127 * dim)));
  std::int16_t* codes = aligned64(buf, dim);
  std::fill(codes, codes + dim, std::int16_t(0));
  if (amax > 0.0f) {
    const float inv = top / amax;
    constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: round to nearest without a libm call
    for (std::size_t i = 0; i < dim; ++i) {
      const float c = (f[i] * inv + kRound) - kRound;
      codes[i] = std::int16_t(std::clamp(c, -top, top));
    }
    out.step = amax / top;
  }
  out.codes = codes;
  return out;
}

void Index::Impl::greedy(const Query& q, std::uint32_t& ep, float& epd, int lv) const {
  if (q.codes) greedy_on<true>(q, ep, epd, lv);
  else greedy_on<false>(q, ep, epd, lv);
}

template <bool Codes>
void Index::Impl::greedy_on(const Query& q, std::uint32_t& ep, float& epd, int lv) const {
  for (bool changed = true; changed;) {
    changed = false;
    const std::uint32_t* ll = links(ep, lv);
    if (ll == nullptr) return;
    const std::size_t cnt = std::min<std::size_t>(load_count(ll), Mup);
    for (std::size_t i = 0; i < cnt; ++i) {
      const std::uint32_t nb = load_link(ll, i);
      if (nb >= n_slots) continue;  // only a corrupted mapped file can hold one
      const float d = est<Codes>(q, nb);
      if (d < epd) {
        epd = d;
        ep = nb;
        changed = true;
      }
    }
  }
}

// Best-first search of one level (hnswlib's searchBaseLayer). Every reached node is navigable;
// only live nodes the filter allows enter the result heap s.top (a max-heap of at most ef), so a
// selective filter or many tombstones make the walk go further instead of returning fewer results.
template <bool Codes, class Allow>
void Index::Impl::walk_on(const Query& q, std::uint32_t ep, std::size_t ef, int lv, Allow& allow, Scratch& s,
                          bool live_only) const {
  auto& cand = s.cand;
  auto& top = s.top;
  cand.clear();
  top.clear();
  s.visited.begin(n_slots);
  const std::size_t maxl = max_links(lv);
  const float d0 = est<Codes>(q, ep);
  s.visited.test_and_set(ep);
  cand.push_back({d0, ep});
  if ((!live_only || !deleted[ep]) && allow(ep)) top.push_back({d0, ep});
  float bound = top.empty() ? kInf : d0;
  std::uint32_t fresh[2 * kMaxM];
  // A small index is cache-resident: prefetching it only costs instructions (floor benchmark, 100 x
  // 384 f32: 3.55 -> 3.30 us p50 per call without them).
  const bool small = n_slots * stride <= (std::size_t(256) << 10);
  // Cache-resident f32 rows: all fresh neighbours in one kernel call, four rows per pass.
  const bool gather = !Codes && small && f32gather != nullptr;
  float gd[2 * kMaxM];
  while (!cand.empty()) {
    const Cand c = cand.front();
    if (c.d > bound && top.size() >= ef) break;
    std::pop_heap(cand.begin(), cand.end(), std::greater<>());
    cand.pop_back();
    const std::uint32_t* ll = links(c.slot, lv);
    if (ll == nullptr) continue;
    const std::size_t cnt = std::min<std::size_t>(load_count(ll), maxl);
    // Pass 1: collect unvisited neighbours and prefetch the head of their vectors, so the loads of
    // pass 2 overlap; pass 2 prefetches the rest of the next vector while computing the current one.
    std::size_t nf = 0;
    for (std::size_t i = 0; i < cnt; ++i) {
      const std::uint32_t nb = load_link(ll, i);
      if (nb >= n_slots || s.visited.test_and_set(nb)) continue;
      fresh[nf++] = nb;
      if (!small) {
        const std::byte* v = traversal(nb);
        for (std::size_t b = 0; b < pf_head; b += 64) prefetch(v + b);
      }
    }
    if (gather) {
      const float* rows[2 * kMaxM];
      for (std::size_t j = 0; j < nf; ++j) rows[j] = reinterpret_cast<const float*>(traversal(fresh[j]));
      f32gather(q.f, rows, nf, dim, gd);
    }
    for (std::size_t j = 0; j < nf; ++j) {
      const std::uint32_t nb = fresh[j];
      if (!small && j + 1 < nf) {
        const std::byte* v = traversal(fresh[j + 1]);
        for (std::size_t b = pf_head; b < pf_all; b += 64) prefetch(v + b);
      }
      const float d = gather ? finish(gd[j]) : est<Codes>(q, nb);
      if (top.size() < ef || d < bound) {
        cand.push_back({d, nb});
        std::push_heap(cand.begin(), cand.end(), std::greater<>());
        if ((!live_only || !deleted[nb]) && allow(nb)) {
          top.push_back({d, nb});
          std::push_heap(top.begin(), top.end());
          if (top.size() > ef) {
            std::pop_heap(top.begin(), top.end());
            top.pop_back();
          }
          bound = top.front().d;
        }
      }
    }
  }
}

// hnswlib's getNeighborsByHeuristic2: keep a candidate only when it is closer to the base than to every
// neighbour already kept, which spreads links over directions. cands must be sorted ascending.
// buf: dim floats for a decoded candidate (used only without f32 originals).
void Index::Impl::select(std::vector<Cand>& cands, std::size_t m, std::vector<Cand>& out, float* buf) const {
  out.clear();
  for (const Cand& c : cands) {
    if (out.size() >= m) break;
    bool good = true;
    const float* cv = vector_of(c.slot, buf);
    for (const Cand& o : out) {
      if (pair(cv, o.slot) < c.d) {
        good = false;
        break;
      }
    }
    if (good) out.push_back(c);
  }
}

void Index::Impl::insert(std::uint32_t slot, Scratch& s) {
  s.vq.resize(dim);
  s.vc.resize(dim);
  s.vn.resize(dim);
  // Without originals the node is linked by its decoded codes: the graph is built in the same
  // geometry the searches see.
  const Query q = quantize(vector_of(slot, s.vq.data()), s.qcodes);
  const int lv = slot_level[slot];
  std::unique_lock<std::mutex> top_lock(entry_mu, std::defer_lock);
  std::uint64_t e = entry.load(std::memory_order_acquire);
  if (lv > entry_level(e)) {
    // A new top node: hold the entry lock for the whole insertion (as hnswlib does) so two new top
    // nodes cannot race on the entry point.
    top_lock.lock();
    e = entry.load(std::memory_order_acquire);
    if (lv <= entry_level(e)) top_lock.unlock();
  }
  if (e == kNoEntry) {
    entry.store(pack_entry(slot, lv), std::memory_order_release);
    return;
  }
  std::uint32_t ep = entry_slot(e);
  const int maxl = entry_level(e);
  float epd = est(q, ep);
  for (int l = maxl; l > lv; --l) greedy(q, ep, epd, l);
  // Neighbours are chosen top-down (each level's search starts from the best of the level above) but
  // written bottom-up: a node becomes reachable at level l only after its own lists at levels <= l are
  // in place, so a concurrent reader never lands on a node that is a dead end below.
  auto no_filter = [](std::uint32_t) { return true; };
  const int top_l = std::min(lv, maxl);
  if (s.chosen.size() < std::size_t(top_l + 1)) s.chosen.resize(std::size_t(top_l + 1));
  for (int l = top_l; l >= 0; --l) {
    walk(q, ep, cfg.ef_construction, l, no_filter, s);
    // Only tombstones reachable (e.g. every earlier node removed or replaced): link to them rather than
    // leave the new node unreachable; they stay navigable until their slots are reused.
    if (s.top.empty()) walk(q, ep, cfg.ef_construction, l, no_filter, s, false);
    s.tmp.assign(s.top.begin(), s.top.end());
    std::sort(s.tmp.begin(), s.tmp.end());
    // Drop self: stale links of a reused slot can lead back to it.
    s.tmp.erase(std::remove_if(s.tmp.begin(), s.tmp.end(), [&](const Cand& c) { return c.slot == slot; }), s.tmp.end());
    select(s.tmp, Mup, s.chosen[std::size_t(l)], s.vc.data());
    if (!s.chosen[std::size_t(l)].empty()) ep = s.chosen[std::size_t(l)].front().slot;
  }
  for (int l = 0; l <= top_l; ++l) {
    const std::vector<Cand>& chosen = s.chosen[std::size_t(l)];
    if (chosen.empty()) continue;
    {
      std::lock_guard<std::mutex> lock((*link_locks)[slot % kLockStripes]);
      std::uint32_t* own = links(slot, l);
      if (l == 0) {
        // A reused slot still holds the links of its previous vector, and for some node that link
        // may be the only way in. Level 0 keeps up to 2M links and the heuristic picks at most M, so
        // the spare room keeps those old live links: nothing becomes unreachable by the reuse.
        s.sel.assign(chosen.begin(), chosen.end());
        const std::size_t old = std::min<std::size_t>(load_count(own), M0);
        for (std::size_t i = 0; i < old && s.sel.size() < M0; ++i) {
          const std::uint32_t x = load_link(own, i);
          if (x >= n_slots || x == slot || deleted[x]) continue;
          if (std::none_of(s.sel.begin(), s.sel.end(), [x](const Cand& c) { return c.slot == x; }))
            s.sel.push_back({0.0f, x});
        }
        store_links(own, s.sel.data(), s.sel.size());
      } else {
        store_links(own, chosen.data(), chosen.size());
      }
    }
    const std::size_t maxm = max_links(l);
    for (const Cand& nc : chosen) {
      std::lock_guard<std::mutex> lock((*link_locks)[nc.slot % kLockStripes]);
      std::uint32_t* nl = links(nc.slot, l);
      if (nl == nullptr) continue;
      const std::size_t cnt = std::min<std::size_t>(load_count(nl), maxm);
      bool present = false;
      for (std::size_t i = 0; i < cnt && !present; ++i) present = load_link(nl, i) == slot;
      if (present) continue;
      if (cnt < maxm) {
        std::atomic_ref<std::uint32_t>(nl[1 + cnt]).store(slot, std::memory_order_relaxed);
        std::atomic_ref<std::uint32_t>(nl[0]).store(std::uint32_t(cnt + 1), std::memory_order_release);
        continue;
      }
      // Full: re-select the neighbour's links among its current ones plus the new node.
      // vq holds the new node's decoded vector (q) when there are no originals: decode the
      // neighbour into its own buffer; select() decodes its candidates into vc.
      const float* nv = vector_of(nc.slot, s.vn.data());
      s.tmp.clear();
      s.tmp.push_back({pair(nv, slot), slot});
      for (std::size_t i = 0; i < cnt; ++i) {
        const std::uint32_t x = load_link(nl, i);
        if (x < n_slots) s.tmp.push_back({pair(nv, x), x});
      }
      std::sort(s.tmp.begin(), s.tmp.end());
      select(s.tmp, maxm, s.sel, s.vc.data());
      store_links(nl, s.sel.data(), s.sel.size());
    }
  }
  if (lv > maxl) entry.store(pack_entry(slot, lv), std::memory_order_release);
}

std::uint32_t Index::Impl::take_slot() {
  if (!free_slots.empty()) {
    const std::uint32_t s = free_slots.back();
    free_slots.pop_back();
    --n_tomb;
    return s;
  }
  return std::uint32_t(n_slots++);
}

// buf: dim floats of working space for the normalised vector when the originals are not kept.
void Index::Impl::write_slot(std::uint32_t slot, std::uint64_t id, const float* v, float* buf) {
  float* o = has_f32() ? const_cast<float*>(f32_of(slot)) : buf;
  if (cfg.metric == simd::Metric::cosine) {
    double nn = 0;
    for (std::size_t i = 0; i < dim; ++i) nn += double(v[i]) * v[i];
    const float inv = nn > 0 ? float(1.0 / std::sqrt(nn)) : 0.0f;
    for (std::size_t i = 0; i < dim; ++i) o[i] = v[i] * inv;
  } else {
    std::memcpy(o, v, dim * sizeof(float));
  }
  std::byte* t = block.data() + std::size_t(slot) * stride + vec_off;
  if (cfg.storage == Storage::f16) {
    simd::encode_f16(o, dim, reinterpret_cast<std::uint16_t*>(t));
  } else if (cfg.storage == Storage::i8) {
    auto* codes = reinterpret_cast<std::int8_t*>(t + sizeof(float));
    const float scale = simd::encode_i8(o, dim, codes);
    std::memcpy(t, &scale, sizeof scale);
    if (res_bytes > 0) {
      auto* bits = reinterpret_cast<std::uint8_t*>(residual.data()) + std::size_t(slot) * res_bytes;
      std::memset(bits, 0, res_bytes);
      const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
      for (std::size_t i = 0; i < dim; ++i)
        if (o[i] * inv - float(codes[i]) >= 0.0f) bits[i >> 3] = std::uint8_t(bits[i >> 3] | (1u << (i & 7)));
    }
  }
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double r = u(rng);
  const int lv = std::min(kMaxLevel, int(-std::log(std::max(r, 1e-300)) * level_mult));
  // A reused slot keeps its old links (valid slots, pointing near the old vector) until insert()
  // overwrites them: a reader reaching it meanwhile through a stale link still finds a way on. Fresh
  // slots start zeroed (Region::grow) and are unreachable until linked.
  const int old_lv = slot_level[slot];
  const std::size_t words = std::size_t(lv) * (Mup + 1);
  std::unique_ptr<std::uint32_t[]> up = words ? std::make_unique<std::uint32_t[]>(words) : nullptr;  // zeroed
  const std::size_t keep = std::size_t(std::min(lv, old_lv)) * (Mup + 1);  // upper[slot] holds old_lv levels
  if (keep) std::copy_n(upper[slot].get(), keep, up.get());
  upper[slot] = std::move(up);
  slot_level[slot] = std::uint8_t(lv);
  deleted[slot] = 0;
  slot_ids[slot] = id;
  id_map.put(id, slot);
  ++n_live;
}

// Tombstones a slot and repairs its neighbourhood: every live neighbour that links back to it gets that
// link replaced by the closest of the removed node's other live neighbours (a local patch in the spirit
// of FreshDiskANN), so the graph stays navigable around the hole. Exclusive lock held.
void Index::Impl::remove_slot(std::uint32_t slot) {
  std::vector<float> nvbuf(has_f32() ? 0 : dim);
  deleted[slot] = 1;
  id_map.erase(slot_ids[slot]);
  --n_live;
  ++n_tomb;
  for (int l = 0; l <= slot_level[slot]; ++l) {
    const std::uint32_t* dl = links(slot, l);
    const std::size_t dn = std::min<std::size_t>(dl[0], max_links(l));
    for (std::size_t i = 0; i < dn; ++i) {
      const std::uint32_t nb = dl[1 + i];
      if (nb >= n_slots || deleted[nb]) continue;
      std::uint32_t* nl = links(nb, l);
      if (nl == nullptr) continue;
      const std::size_t nn = std::min<std::size_t>(nl[0], max_links(l));
      std::size_t pos = nn;
      for (std::size_t j = 0; j < nn; ++j)
        if (nl[1 + j] == slot) pos = j;
      if (pos == nn) continue;
      const float* nv = vector_of(nb, nvbuf.data());
      std::uint32_t best = 0;
      float bestd = kInf;
      for (std::size_t j = 0; j < dn; ++j) {
        const std::uint32_t c = dl[1 + j];
        if (c == nb || c >= n_slots || deleted[c]) continue;
        bool linked = false;
        for (std::size_t t = 0; t < nn && !linked; ++t) linked = nl[1 + t] == c;
        if (linked) continue;
        const float d = pair(nv, c);
        if (d < bestd) {
          bestd = d;
          best = c;
        }
      }
      if (bestd < kInf) {
        nl[1 + pos] = best;
      } else {
        nl[1 + pos] = nl[nn];
        nl[0] = std::uint32_t(nn - 1);
      }
    }
  }
  // The entry slot stays a (navigable) tombstone: reusing it would change the top of the graph.
  if (entry.load() == kNoEntry || entry_slot(entry.load()) != slot) free_slots.push_back(slot);
}

void Index::Impl::add(const float* vectors, const std::uint64_t* ids, std::size_t n, std::size_t threads,
                      std::uint64_t* assigned) {
  if (n == 0) return;
  if (vectors == nullptr) throw InvalidArgument("vectors must not be null");
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t i = 0; i < dim; ++i)
      if (!std::isfinite(vectors[r * dim + i]))
        throw InvalidArgument("vectors must be finite: row " + std::to_string(r) + " holds NaN or inf");
  std::lock_guard<std::mutex> writer(write_mu);
  std::vector<std::uint64_t> idv(n);
  if (ids != nullptr) {
    std::copy(ids, ids + n, idv.begin());
    std::vector<std::uint64_t> sorted = idv;
    std::sort(sorted.begin(), sorted.end());
    const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
    if (dup != sorted.end()) throw InvalidArgument("ids must be unique within one add: " + std::to_string(*dup) + " repeats");
    if (sorted.back() == kSentinel) throw InvalidArgument("id 2^64-1 is reserved (the 'no result' sentinel)");
  } else {
    if (next_auto_id > kSentinel - n) throw InvalidArgument("automatic ids exhausted");
    for (std::size_t i = 0; i < n; ++i) idv[i] = next_auto_id + i;
  }
  std::vector<std::uint32_t> slots(n);
  {
    std::unique_lock<std::shared_mutex> lock(rw);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t old = id_map.find(idv[i]);
      if (old != IdMap::kMissing) remove_slot(old);  // replace = tombstone + insert
    }
    const std::size_t fresh = n > free_slots.size() ? n - free_slots.size() : 0;
    ensure_capacity(n_slots + fresh);
    std::vector<float> buf(has_f32() ? 0 : dim);
    for (std::size_t i = 0; i < n; ++i) {
      slots[i] = take_slot();
      write_slot(slots[i], idv[i], vectors + i * dim, buf.data());
      next_auto_id = std::max(next_auto_id, idv[i] + 1);
    }
  }
  {
    // Linking runs under the shared lock: readers keep searching while the new nodes are woven in.
    std::shared_lock<std::shared_mutex> lock(rw);
    parallel_for(n, threads, [&](std::size_t i, std::size_t) {
      auto s = pool.acquire();
      insert(slots[i], *s);
    });
  }
  if (assigned != nullptr) std::copy(idv.begin(), idv.end(), assigned);
}

// Allow-lists up to this size are scanned exactly. Measured with benchmarks/bench_ann.py --filter-sweep
// (numbers in benchmarks/RESULTS.md): an exact scan costs c_s * m for m allowed items; a filtered walk
// needs about ef / s node expansions at selectivity s = m / N, i.e. c_w * ef * N / m. They cross at
// m* = sqrt(c_w / c_s * ef * N); the sweep at N = 20k (exact 52 ns/item, walk ~ 75 us at ef 64 and
// s = 1) gives c_w / c_s ~ 24. Both scale with dim, so the ratio holds across dimensions.
std::size_t Index::Impl::exact_threshold(std::size_t ef) const {
  const std::int64_t o = exact_override.load(std::memory_order_relaxed);
  if (o >= 0) return std::size_t(o);
  return std::max<std::size_t>(1024, std::size_t(std::sqrt(24.0 * double(ef) * double(n_live))));
}

namespace {

// Covers every cache line of [p, p + bytes): rows in the level-0 block are not line-aligned.
inline void prefetch_range(const std::byte* p, std::size_t bytes) {
  const auto first = reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t(63);
  const auto last = reinterpret_cast<std::uintptr_t>(p) + bytes;
  for (std::uintptr_t a = first; a < last; a += 64) prefetch(reinterpret_cast<const void*>(a));
}

// score(i) for i in [0, n), with the row of item i + ahead requested while item i is scored: a filter's
// rows are scattered and usually cold, so several DRAM misses must be in flight at once.
template <class Row, class Score>
void pipelined(std::size_t n, std::size_t ahead, Row&& row, Score&& score) {
  for (std::size_t i = 0; i < std::min(ahead, n); ++i) row(i);
  for (std::size_t i = 0; i < n; ++i) {
    if (i + ahead < n) row(i + ahead);
    score(i);
  }
}

}  // namespace

// Exact k nearest among an allow-list. With i8 storage the scan reads the traversal codes (a quarter of
// the f32 bytes) and re-ranks only the rows the code estimate cannot rule out, by a worst-case bound on
// its error, so the result is the same as a scan of every precise row. The bound, with e = x - s * c
// (|e_i| <= s / 2 from round-to-nearest; the residual refinement moves the value by at most s / 4):
//   ip:  |q.x - s q.c| <= (s / 2) |q|_1
//   l2:  | |q - x|^2 - |q - s c|^2 | <= 2 |e.(q - s c)| + |e|^2 <= s sqrt(dim * est) + dim s^2 / 4
// plus float32 rounding of both sums (gamma = 2 dim 2^-24 per sum of dim products). An item is kept when
// its lower bound is at most the k-th smallest upper bound: every true top-k item is (its precise
// distance lies below that). On the 100k x 384 benchmark about 13 of 1,000 rows are re-ranked.
std::size_t Index::Impl::exact_into(const Query& q, std::size_t k, const std::uint64_t* ids, std::size_t n,
                                    Scratch& s, std::uint64_t* out_ids, float* out_d) const {
  constexpr std::size_t kIdsAhead = 16;   // id-map buckets in flight
  constexpr std::size_t kRowsAhead = 6;   // rows in flight (3 to 10 measured the same)
  auto& c = s.sel;
  c.resize(n);  // filled by index: push_back per id was an out-of-line call costing ~10% of a warm scan
  std::size_t live = 0;
  const bool coded = cfg.storage == Storage::i8;
  // The k smallest upper bounds so far, as a max-heap: the cut is its top once it holds k (a running
  // selection: after the first few hundred rows almost every bound is rejected by one comparison,
  // where nth_element over all of them mispredicted its way through ~4 us per 1,000 rows).
  auto& hi = s.bound;
  hi.clear();
  float q1 = 0.0f;
  if (coded)
    for (std::size_t i = 0; i < dim; ++i) q1 += std::fabs(q.f[i]);
  // The query's own rounding when the estimate runs on its int16 codes: s * (step / 2) * |c|_1.
  const float qround = 0.5f * q.step * 127.0f * float(dim);
  const float fdim = float(dim);
  const float gamma = 2.0f * fdim * 0x1p-24f;
  auto score = [&](std::size_t i) {
    const std::uint32_t slot = c[i].slot;
    float sc;
    std::memcpy(&sc, traversal(slot), sizeof sc);
    sc = std::fabs(sc);
    const float e = est(q, slot);
    float err;
    if (similarity) {
      err = sc * (q1 * (0.5f + 127.0f * gamma) + qround) + 0x1p-20f * (1.0f + std::fabs(e));
    } else {
      const float e0 = sc * std::sqrt(fdim * std::max(e, 0.0f)) + 0.25f * fdim * sc * sc;
      err = e0 + gamma * (e + e0 + sc * (q1 + 127.0f * sc * fdim));
    }
    c[i].d = e - err;
    float h = e + err;
    if (h != h) {  // NaN, only from a corrupted mapped row: keep it for the precise pass, cut nothing by it
      c[i].d = -kInf;
      h = kInf;
    }
    if (hi.size() < k) {
      hi.push_back(h);
      std::push_heap(hi.begin(), hi.end());
    } else if (h < hi.front()) {
      std::pop_heap(hi.begin(), hi.end());
      hi.back() = h;
      std::push_heap(hi.begin(), hi.end());
    }
  };
  // Ids are resolved, code rows fetched and estimates computed in one loop, so the id map's cache
  // misses overlap the rows' instead of preceding them.
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kIdsAhead < n) id_map.prefetch(ids[i + kIdsAhead]);
    const std::uint32_t slot = id_map.find(ids[i]);
    if (slot == IdMap::kMissing) continue;
    c[live++] = {0.0f, slot};
    if (!coded) continue;
    prefetch_range(traversal(slot), pf_all);
    if (live > kRowsAhead) score(live - 1 - kRowsAhead);
  }
  c.resize(live);
  if (coded) {
    for (std::size_t i = live > kRowsAhead ? live - kRowsAhead : 0; i < live; ++i) score(i);
    if (c.size() > k) {
      const float cut = hi.front();
      c.erase(std::remove_if(c.begin(), c.end(), [cut](const Cand& x) { return !(x.d <= cut); }), c.end());
    }
  }
  // The precise distances: f32 rows (f32 storage or the kept originals) or, without originals, the
  // refined code estimate (f16 without originals: the codes themselves).
  const std::size_t row_bytes = has_f32() ? dim * sizeof(float) : pf_all;
  pipelined(
      c.size(), kRowsAhead,
      [&](std::size_t i) {
        const std::uint32_t slot = c[i].slot;
        if (has_f32()) prefetch_range(reinterpret_cast<const std::byte*>(f32_of(slot)), row_bytes);
        else if (coded) prefetch_range(residual.data() + std::size_t(slot) * res_bytes, res_bytes);
        else prefetch_range(traversal(slot), row_bytes);
      },
      [&](std::size_t i) { c[i].d = exact(q.f, c[i].slot); });
  return write_best(c, k, out_ids, out_d);
}

std::size_t Index::Impl::search_into(const float* query, std::size_t k, std::size_t ef, const Filter* filter,
                                     std::uint64_t* out_ids, float* out_d) const {
  if (k == 0) throw InvalidArgument("k must be >= 1");
  if (ef == 0) ef = std::max<std::size_t>(k, 64);
  if (ef < k) throw InvalidArgument("ef must be >= k (ef=" + std::to_string(ef) + ", k=" + std::to_string(k) + ")");
  auto sp = pool.acquire();
  Scratch& s = *sp;
  const float* q = prepare_query(query, s);
  const Query qq = quantize(q, s.qcodes);
  std::shared_lock<std::shared_mutex> lock(rw);
  const std::uint64_t e = entry.load(std::memory_order_acquire);
  if (n_live == 0 || e == kNoEntry) return 0;

  enum class Mode { all, bits, sorted_list, generic } mode = Mode::all;
  const std::uint64_t* list = nullptr;
  std::size_t list_n = 0;
  if (filter != nullptr) {
    list = filter->allow_list(&list_n);
    if (list != nullptr) {
      if (list_n <= exact_threshold(ef)) return exact_into(qq, k, list, list_n, s, out_ids, out_d);
      if (dynamic_cast<const IdMaskFilter*>(filter) != nullptr) {
        mode = Mode::generic;  // one mask byte per check beats a binary search over its id list
      } else if (std::is_sorted(list, list + list_n)) {
        mode = Mode::sorted_list;
      } else {
        mode = Mode::bits;
        s.bits.assign((n_slots + 63) / 64, 0);
        for (std::size_t i = 0; i < list_n; ++i) {
          const std::uint32_t slot = id_map.find(list[i]);
          if (slot != IdMap::kMissing) s.bits[slot >> 6] |= std::uint64_t(1) << (slot & 63);
        }
      }
    } else {
      mode = Mode::generic;
    }
  }

  std::uint32_t ep = entry_slot(e);
  float epd = est(qq, ep);
  for (int l = entry_level(e); l > 0; --l) greedy(qq, ep, epd, l);
  switch (mode) {
    case Mode::all: walk(qq, ep, ef, 0, [](std::uint32_t) { return true; }, s); break;
    case Mode::bits: {
      const std::uint64_t* bits = s.bits.data();
      walk(qq, ep, ef, 0, [bits](std::uint32_t slot) { return (bits[slot >> 6] >> (slot & 63)) & 1; }, s);
      break;
    }
    case Mode::sorted_list:
      walk(qq, ep, ef, 0, [&](std::uint32_t slot) { return std::binary_search(list, list + list_n, slot_ids[slot]); }, s);
      break;
    case Mode::generic:
      walk(qq, ep, ef, 0, [&](std::uint32_t slot) { return filter->allows(slot_ids[slot]); }, s);
      break;
  }
  auto& top = s.top;
  if (cfg.storage != Storage::f32 && (cfg.keep_originals || res_bytes > 0)) {
    // Re-rank with the f32 originals, or (i8 without originals) with the residual-refined estimate;
    // f16 without originals has nothing more precise than the walk's distances. Only the best max(4k, k + 16) of the ef candidates by compressed
    // distance are re-ranked: the compressed order is accurate that far, and every re-ranked row is a
    // cold 4*dim-byte read (at ef = 128, 384-d, re-ranking all candidates read 192 KB per query).
    const std::size_t r = std::min(top.size(), std::max(4 * k, k + 16));
    std::partial_sort(top.begin(), top.begin() + std::ptrdiff_t(r), top.end());
    top.resize(r);
    for (Cand& c : top) {
      if (has_f32()) {
        const auto* row = reinterpret_cast<const std::byte*>(f32_of(c.slot));
        for (std::size_t b = 0; b < dim * sizeof(float); b += 64) prefetch(row + b);
      } else {
        prefetch(residual.data() + std::size_t(c.slot) * res_bytes);  // the codes are warm from the walk
      }
    }
    for (Cand& c : top) c.d = exact(q, c.slot);
  }
  return write_best(top, k, out_ids, out_d);
}

// Owned heap bytes plus the pages of mapped sections that are resident right now (a mapped section
// costs RAM only for the pages searches have touched; the rest stays on disk).
std::size_t Index::Impl::memory_bytes() const {
  std::size_t b = block.resident_bytes() + originals.resident_bytes() + residual.resident_bytes() + slot_ids.capacity() * 8 + slot_level.capacity() +
                  deleted.capacity() + id_map.bytes() + free_slots.capacity() * 4 + sizeof(Impl) +
                  sizeof(*link_locks) + upper.capacity() * sizeof(upper[0]);
  for (std::size_t i = 0; i < n_slots; ++i) b += std::size_t(slot_level[i]) * (Mup + 1) * 4;
  return b + pool.bytes();
}

void Index::Impl::adopt(Impl& o) {
  block = std::move(o.block);
  originals = std::move(o.originals);
  residual = std::move(o.residual);
  slot_ids = std::move(o.slot_ids);
  slot_level = std::move(o.slot_level);
  deleted = std::move(o.deleted);
  upper = std::move(o.upper);
  capacity = o.capacity;
  n_slots = o.n_slots;
  n_live = o.n_live;
  n_tomb = o.n_tomb;
  id_map = std::move(o.id_map);
  free_slots = std::move(o.free_slots);
  entry.store(o.entry.load());
  next_auto_id = std::max(next_auto_id, o.next_auto_id);
}

// ---------------------------------------------------------------------------------------------------
Index::Index(const Config& config) : impl_(std::make_unique<Impl>(config)) {}
Index::Index(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Index::~Index() = default;

const Config& Index::config() const { return impl_->cfg; }

void Index::add(const float* vectors, const std::uint64_t* ids, std::size_t n, std::size_t threads,
                std::uint64_t* assigned_ids) {
  impl_->add(vectors, ids, n, threads, assigned_ids);
}

void Index::remove(const std::uint64_t* ids, std::size_t n) {
  Impl& I = *impl_;
  std::lock_guard<std::mutex> writer(I.write_mu);
  std::unique_lock<std::shared_mutex> lock(I.rw);
  std::vector<std::uint32_t> slots(n);
  for (std::size_t i = 0; i < n; ++i) {
    slots[i] = I.id_map.find(ids[i]);
    if (slots[i] == IdMap::kMissing) throw InvalidArgument("unknown id " + std::to_string(ids[i]) + " in remove");
  }
  std::vector<std::uint32_t> sorted = slots;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    throw InvalidArgument("ids must be unique within one remove");
  for (std::uint32_t s : slots) I.remove_slot(s);
}

bool Index::contains(std::uint64_t id) const {
  std::shared_lock<std::shared_mutex> lock(impl_->rw);
  return impl_->id_map.find(id) != IdMap::kMissing;
}

std::size_t Index::size() const {
  std::shared_lock<std::shared_mutex> lock(impl_->rw);
  return impl_->n_live;
}

std::vector<Hit> Index::search(const float* query, std::size_t k, std::size_t ef, const Filter* filter) const {
  std::vector<std::uint64_t> ids(k);
  std::vector<float> d(k);
  const std::size_t n = impl_->search_into(query, k, ef, filter, ids.data(), d.data());
  std::vector<Hit> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = {ids[i], d[i]};
  return out;
}

std::size_t Index::search_into(const float* query, std::size_t k, std::size_t ef, const Filter* filter,
                               std::uint64_t* ids, float* distances) const {
  return impl_->search_into(query, k, ef, filter, ids, distances);
}

void Index::search_batch(const float* queries, std::size_t nq, std::size_t k, std::size_t ef, const Filter* filter,
                         std::size_t threads, std::uint64_t* ids, float* distances) const {
  if (k == 0) throw InvalidArgument("k must be >= 1");
  parallel_for(nq, threads, [&](std::size_t i, std::size_t) {
    const std::size_t n =
        impl_->search_into(queries + i * impl_->dim, k, ef, filter, ids + i * k, distances + i * k);
    for (std::size_t j = n; j < k; ++j) {
      ids[i * k + j] = kSentinel;
      distances[i * k + j] = kInf;
    }
  });
}

std::vector<Hit> Index::search_exact(const float* query, std::size_t k, const std::uint64_t* ids, std::size_t n) const {
  if (k == 0) throw InvalidArgument("k must be >= 1");
  const Impl& I = *impl_;
  auto sp = I.pool.acquire();
  const float* q = I.prepare_query(query, *sp);
  std::vector<std::uint64_t> oid(k);
  std::vector<float> od(k);
  std::size_t found;
  {
    std::shared_lock<std::shared_mutex> lock(I.rw);
    found = I.exact_into(I.quantize(q, sp->qcodes), k, ids, n, *sp, oid.data(), od.data());
  }
  std::vector<Hit> out(found);
  for (std::size_t i = 0; i < found; ++i) out[i] = {oid[i], od[i]};
  return out;
}

float Index::distance(const float* query, std::uint64_t id) const {
  const Impl& I = *impl_;
  auto sp = I.pool.acquire();
  const float* q = I.prepare_query(query, *sp);
  std::shared_lock<std::shared_mutex> lock(I.rw);
  const std::uint32_t slot = I.id_map.find(id);
  if (slot == IdMap::kMissing) throw InvalidArgument("unknown id " + std::to_string(id));
  return I.exact(q, slot);
}

bool Index::get_vector(std::uint64_t id, float* out) const {
  const Impl& I = *impl_;
  std::shared_lock<std::shared_mutex> lock(I.rw);
  const std::uint32_t slot = I.id_map.find(id);
  if (slot == IdMap::kMissing) return false;
  const float* v = I.vector_of(slot, out);
  if (v != out) std::memcpy(out, v, I.dim * sizeof(float));
  return true;
}

std::vector<std::uint64_t> Index::ids() const {
  const Impl& I = *impl_;
  std::shared_lock<std::shared_mutex> lock(I.rw);
  std::vector<std::uint64_t> out;
  out.reserve(I.n_live);
  for (std::size_t s = 0; s < I.n_slots; ++s)
    if (!I.deleted[s]) out.push_back(I.slot_ids[s]);
  return out;
}

void Index::save(const std::string& path, std::uint64_t stamp) const {
  std::lock_guard<std::mutex> writer(impl_->write_mu);  // a consistent graph: no insert in flight
  std::shared_lock<std::shared_mutex> lock(impl_->rw);
  save_impl(*impl_, path, stamp);
}

std::unique_ptr<Index> Index::load(const std::string& path, bool mmap, std::uint64_t* stamp) {
  return std::make_unique<Index>(load_impl(path, mmap, stamp));
}

Stats Index::stats() const {
  const Impl& I = *impl_;
  std::shared_lock<std::shared_mutex> lock(I.rw);
  Stats st;
  st.size = I.n_live;
  st.slots = I.n_slots;
  st.capacity = I.capacity;
  st.tombstones = I.n_tomb;
  const std::uint64_t e = I.entry.load();
  st.levels = e == kNoEntry ? 0 : std::size_t(Impl::entry_level(e) + 1);
  st.memory_bytes = I.memory_bytes();
  st.traversal_bytes = I.block.bytes();
  st.mapped_bytes = (I.block.mapped() ? I.block.bytes() : 0) + (I.originals.mapped() ? I.originals.bytes() : 0) +
                    (I.residual.mapped() ? I.residual.bytes() : 0);
  st.exact_scan_threshold = I.exact_threshold(64);
  st.mapped = I.block.mapped();
  st.storage = storage_name(I.cfg.storage);
  st.metric = metric_name(I.cfg.metric);
  st.simd_level = simd::level_name(I.level);
  return st;
}

void Index::compact() {
  Impl& I = *impl_;
  std::lock_guard<std::mutex> writer(I.write_mu);
  std::vector<std::uint64_t> live;
  std::vector<float> vecs;
  {
    std::shared_lock<std::shared_mutex> lock(I.rw);
    live.reserve(I.n_live);
    vecs.reserve(I.n_live * I.dim);
    for (std::size_t s = 0; s < I.n_slots; ++s) {
      if (I.deleted[s]) continue;
      live.push_back(I.slot_ids[s]);
      // Without originals the decoded codes are re-added; re-encoding them gives the same codes.
      vecs.resize(vecs.size() + I.dim);
      float* dst = vecs.data() + vecs.size() - I.dim;
      const float* v = I.vector_of(std::uint32_t(s), dst);
      if (v != dst) std::memcpy(dst, v, I.dim * sizeof(float));
    }
  }
  Config c = I.cfg;
  c.capacity = std::max<std::size_t>(live.size(), 1);
  Impl fresh(c);
  fresh.add(vecs.data(), live.data(), live.size(), 0, nullptr);
  std::unique_lock<std::shared_mutex> lock(I.rw);
  I.adopt(fresh);
}

std::size_t Index::default_ef() const { return 64; }

void Index::set_exact_scan_threshold(std::int64_t n) { impl_->exact_override.store(n < 0 ? -1 : n); }

std::size_t Index::exact_scan_threshold() const {
  std::shared_lock<std::shared_mutex> lock(impl_->rw);
  return impl_->exact_threshold(64);
}

}  // namespace recallcore::hnsw
