// Duplicates on write. Exact duplicates are found through the `dedupe` table, keyed
// namespace · kind · hash(normalised text) · id, so a lookup is one B-tree seek (O(log n)) inside the
// writing transaction (which also sees earlier items of the same batch). Near duplicates are found
// through the in-memory vector index restricted to the same namespace and kind. Every candidate is
// re-checked against the record in LMDB: hash collisions and index lag can only cost a miss.
#include "engine/dedupe.h"

#include <cctype>

#include "common/checksum.h"
#include "engine/memory.h"
#include "hnsw/filter.h"
#include "storage/keys.h"

namespace recallcore::engine {

using storage::get_be64;
using storage::id_key;
using storage::put_be32;
using storage::put_be64;

std::string normalise_for_dedupe(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool space = false;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x80 && std::isspace(c)) {
      space = !out.empty();
      continue;
    }
    if (c < 0x80 && std::ispunct(c)) continue;
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c < 0x80 ? char(std::tolower(c)) : ch);
  }
  return out;
}

std::uint64_t dedupe_hash(std::string_view text) {
  const std::string n = normalise_for_dedupe(text);
  if (n.empty()) return 0;
  const std::uint64_t h = checksum64(n.data(), n.size());
  return h == 0 ? 1 : h;
}

namespace {

std::string dedupe_prefix(std::uint32_t ns, std::uint32_t kind, std::uint64_t hash) {
  std::string k;
  put_be32(k, ns);
  put_be32(k, kind);
  put_be64(k, hash);
  return k;
}

// Admits live, current (not superseded, not archived) records of one namespace and kind.
class SameScope final : public hnsw::Filter {
 public:
  SameScope(const Memory::RowTable& rows, std::uint32_t ns, std::uint32_t kind)
      : rows_(rows), ns_(ns), kind_(kind) {}
  bool allows(std::uint64_t id) const override {
    if (id >= rows_.size()) return false;
    const auto& r = rows_[id];
    return r.live && r.h.ns == ns_ && r.h.kind == kind_ && r.h.superseded_by == 0 && !(r.h.flags & kArchived);
  }

 private:
  const Memory::RowTable& rows_;
  std::uint32_t ns_, kind_;
};

}  // namespace

void Memory::put_dedupe(storage::Txn& txn, const Record& r) {
  const std::uint64_t h = dedupe_hash(r.text);
  if (h == 0) return;
  std::string k = dedupe_prefix(r.h.ns, r.h.kind, h);
  put_be64(k, r.id);
  txn.put(dedupe_, k, {});
}

void Memory::del_dedupe(storage::Txn& txn, const Record& r) {
  const std::uint64_t h = dedupe_hash(r.text);
  if (h == 0) return;
  std::string k = dedupe_prefix(r.h.ns, r.h.kind, h);
  put_be64(k, r.id);
  txn.del(dedupe_, k);
}

std::uint64_t Memory::find_duplicate(const storage::Txn& txn, const NewRecord& it, std::uint32_t ns,
                                     std::uint32_t kind) {
  auto current = [&](std::uint64_t id, Record* out) {
    std::string_view b;
    if (!txn.get(records_, id_key(id), &b)) return false;
    *out = decode_record(id, b);
    return out->h.ns == ns && out->h.kind == kind && out->h.superseded_by == 0 && !(out->h.flags & kArchived);
  };
  if (const std::uint64_t h = dedupe_hash(it.text); h != 0) {
    const std::string prefix = dedupe_prefix(ns, kind, h);
    const std::string norm = normalise_for_dedupe(it.text);
    storage::Cursor cur(txn, dedupe_);
    for (bool ok = cur.seek(prefix); ok && cur.key().substr(0, prefix.size()) == prefix; ok = cur.next()) {
      Record r;
      const std::uint64_t id = get_be64(cur.key(), prefix.size());
      if (current(id, &r) && normalise_for_dedupe(r.text) == norm) return id;
    }
  }
  // Similarity = 1 - distance is the cosine (or inner product) for those metrics; l2 distances have
  // no fixed scale, so near-duplicate detection is not offered there.
  if (it.vector == nullptr || dim_ == 0 || metric_id_ == simd::Metric::l2 || !(it.dedupe_threshold > 0.0f))
    return 0;
  std::vector<hnsw::Hit> hits;
  {
    std::shared_lock lock(state_mu_);
    if (!vec_) return 0;
    SameScope filter(rows_, ns, kind);
    hits = vector_candidates(it.vector, 4, 0, nullptr, filter);  // graph and the pending tail
  }
  for (const auto& hit : hits) {
    if (1.0f - hit.distance < it.dedupe_threshold) break;
    Record r;
    if (current(hit.id, &r)) return hit.id;
  }
  return 0;
}

}  // namespace recallcore::engine
