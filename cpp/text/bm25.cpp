#include "text/bm25.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/checksum.h"
#include "common/errors.h"
#include "text/utf8.h"

namespace recallcore::text {

namespace {

constexpr char kMagic[8] = {'R', 'C', 'B', 'M', '2', '5', '\r', '\n'};  // \r\n catches text-mode mangling
constexpr std::uint32_t kVersion = 2;  // 2: the shared word-wise checksum (was byte-wise FNV-1a)
constexpr std::size_t kHeaderSize = 8 + 4 + 4 + 4 + 4 + 8;  // magic, version, flags, k1, b, payload size
constexpr std::size_t kChecksumSize = 8;

std::uint64_t image_checksum(std::string_view s) noexcept { return checksum64(s.data(), s.size()); }

// Explicit little-endian encoding: the image is portable across hosts.
struct Writer {
  std::string out;
  void u32(std::uint32_t v) {
    for (int k = 0; k < 4; ++k) out.push_back(char((v >> (8 * k)) & 0xFF));
  }
  void u64(std::uint64_t v) {
    for (int k = 0; k < 8; ++k) out.push_back(char((v >> (8 * k)) & 0xFF));
  }
  void f32(float f) {
    std::uint32_t v = 0;
    std::memcpy(&v, &f, 4);
    u32(v);
  }
  void bytes(std::string_view s) { out.append(s); }
};

struct Reader {
  std::string_view in;
  std::size_t pos = 0;
  void need(std::size_t n) const {
    if (in.size() - pos < n) throw CorruptData("BM25 snapshot is truncated at byte " + std::to_string(pos));
  }
  std::uint32_t u32() {
    need(4);
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v |= std::uint32_t(static_cast<unsigned char>(in[pos + k])) << (8 * k);
    pos += 4;
    return v;
  }
  std::uint64_t u64() {
    need(8);
    std::uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v |= std::uint64_t(static_cast<unsigned char>(in[pos + k])) << (8 * k);
    pos += 8;
    return v;
  }
  float f32() {
    const std::uint32_t v = u32();
    float f = 0;
    std::memcpy(&f, &v, 4);
    return f;
  }
  std::string_view bytes(std::size_t n) {
    need(n);
    auto s = in.substr(pos, n);
    pos += n;
    return s;
  }
};

// Per-thread query scratch, sized to the largest partition seen: dense score accumulators and a
// state byte per slot, reset through the touched list so a query costs O(postings), not O(N).
struct Scratch {
  std::vector<float> acc;
  std::vector<std::uint8_t> state;  // 0 untouched, 1 scored, 2 rejected by the filter
  std::vector<std::uint32_t> touched;
  std::vector<std::uint32_t> qterms;
  std::vector<LexHit> heap;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

void Bm25Params::validate() const {
  if (!std::isfinite(k1) || k1 < 0) throw InvalidArgument("k1 must be a finite number >= 0, got " + std::to_string(k1));
  if (!std::isfinite(b) || b < 0 || b > 1) throw InvalidArgument("b must be in [0, 1], got " + std::to_string(b));
}

AllowListFilter::AllowListFilter(std::vector<std::uint64_t> ids) : ids_(std::move(ids)) {
  std::sort(ids_.begin(), ids_.end());
  ids_.erase(std::unique(ids_.begin(), ids_.end()), ids_.end());
}

bool AllowListFilter::allows(std::uint64_t id) const { return std::binary_search(ids_.begin(), ids_.end(), id); }

Bm25Index::Bm25Index(Bm25Params params, TokenizerOptions tokenizer) : params_(params), tokenizer_(tokenizer) {
  params_.validate();
}

std::uint32_t Bm25Index::intern(std::string_view term) {
  if (auto it = term_ids_.find(term); it != term_ids_.end()) return it->second;
  if (terms_.size() >= std::numeric_limits<std::uint32_t>::max()) throw InvalidArgument("too many distinct terms");
  const auto id = std::uint32_t(terms_.size());
  terms_.emplace_back(term);
  term_ids_.emplace(terms_.back(), id);
  return id;
}

void Bm25Index::add(std::uint32_t partition, std::uint64_t id, std::string_view text) {
  if (text.size() >= std::numeric_limits<std::uint32_t>::max())
    throw InvalidArgument("text is too long for the BM25 index (" + std::to_string(text.size()) + " bytes)");
  thread_local std::vector<std::uint32_t> ids;
  ids.clear();
  // Validation happens before the first token, so a bad text leaves the index untouched.
  for_each_token(text, tokenizer_, [&](std::string_view t) { ids.push_back(intern(t)); });
  std::sort(ids.begin(), ids.end());
  std::vector<TermTf> terms;
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t j = i;
    while (j < ids.size() && ids[j] == ids[i]) ++j;
    terms.push_back({ids[i], std::uint32_t(j - i)});
    i = j;
  }
  if (auto it = where_.find(id); it != where_.end()) {
    const Location loc = it->second;
    where_.erase(it);
    Partition& old = partitions_.at(loc.partition);
    erase_doc(old, loc.slot);
    if (old.docs == 0 && loc.partition != partition) partitions_.erase(loc.partition);
  }
  insert_doc(partition, id, std::move(terms));
}

void Bm25Index::insert_doc(std::uint32_t partition, std::uint64_t id, std::vector<TermTf> terms) {
  Partition& p = partitions_[partition];
  std::uint32_t slot;
  if (!p.free_slots.empty()) {
    slot = p.free_slots.back();
    p.free_slots.pop_back();
  } else {
    if (p.slot_id.size() >= std::numeric_limits<std::uint32_t>::max())
      throw InvalidArgument("partition " + std::to_string(partition) + " is full");
    slot = std::uint32_t(p.slot_id.size());
    p.slot_id.push_back(0);
    p.slot_len.push_back(0);
    p.slot_terms.emplace_back();
    p.slot_live.push_back(0);
  }
  std::uint64_t len = 0;
  for (const TermTf& t : terms) {
    p.postings[t.term].push_back({slot, t.tf});
    len += t.tf;
  }
  p.slot_id[slot] = id;
  p.slot_len[slot] = std::uint32_t(len);
  p.slot_terms[slot] = std::move(terms);
  p.slot_live[slot] = 1;
  ++p.docs;
  p.total_len += len;
  where_[id] = {partition, slot};
}

void Bm25Index::erase_doc(Partition& p, std::uint32_t slot) {
  for (const TermTf& t : p.slot_terms[slot]) {
    auto it = p.postings.find(t.term);
    if (it == p.postings.end()) continue;
    auto& list = it->second;
    // Postings are unordered, so removal is a swap with the last entry.
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (list[i].slot == slot) {
        list[i] = list.back();
        list.pop_back();
        break;
      }
    }
    if (list.empty()) p.postings.erase(it);
  }
  p.total_len -= p.slot_len[slot];
  --p.docs;
  p.slot_terms[slot] = {};
  p.slot_len[slot] = 0;
  p.slot_live[slot] = 0;
  p.free_slots.push_back(slot);
}

bool Bm25Index::remove(std::uint64_t id) {
  auto it = where_.find(id);
  if (it == where_.end()) return false;
  const Location loc = it->second;
  where_.erase(it);
  Partition& p = partitions_.at(loc.partition);
  erase_doc(p, loc.slot);
  if (p.docs == 0) partitions_.erase(loc.partition);
  return true;
}

void Bm25Index::drop_partition(std::uint32_t partition) {
  auto it = partitions_.find(partition);
  if (it == partitions_.end()) return;
  const Partition& p = it->second;
  for (std::size_t s = 0; s < p.slot_id.size(); ++s)
    if (p.slot_live[s]) where_.erase(p.slot_id[s]);
  partitions_.erase(it);
}

std::size_t Bm25Index::partition_size(std::uint32_t partition) const noexcept {
  auto it = partitions_.find(partition);
  return it == partitions_.end() ? 0 : it->second.docs;
}

std::vector<std::uint32_t> Bm25Index::partitions() const {
  std::vector<std::uint32_t> out;
  out.reserve(partitions_.size());
  for (const auto& [pid, p] : partitions_) out.push_back(pid);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<LexHit> Bm25Index::search(std::uint32_t partition, std::string_view query, std::size_t k,
                                      const DocFilter* filter) const {
  Scratch& s = scratch();
  s.qterms.clear();
  for_each_token(query, tokenizer_, [&](std::string_view t) {
    if (auto it = term_ids_.find(t); it != term_ids_.end()) s.qterms.push_back(it->second);
  });
  std::vector<LexHit> out;
  auto pit = partitions_.find(partition);
  if (k == 0 || s.qterms.empty() || pit == partitions_.end()) return out;
  const Partition& p = pit->second;
  std::sort(s.qterms.begin(), s.qterms.end());
  s.qterms.erase(std::unique(s.qterms.begin(), s.qterms.end()), s.qterms.end());

  if (s.acc.size() < p.slot_id.size()) {
    s.acc.resize(p.slot_id.size(), 0.0f);
    s.state.resize(p.slot_id.size(), 0);
  }
  // Restores the all-zero invariant of the scratch even if a filter throws.
  struct Reset {
    Scratch& s;
    ~Reset() {
      float* const acc = s.acc.data();
      std::uint8_t* const state = s.state.data();
      for (std::uint32_t slot : s.touched) {
        acc[slot] = 0.0f;
        state[slot] = 0;
      }
      s.touched.clear();
    }
  } reset{s};

  const double n = double(p.docs);
  const double avgdl = p.total_len ? double(p.total_len) / n : 1.0;
  const float k1 = params_.k1;
  const float c0 = k1 * (1.0f - params_.b);    // the length-independent part of the tf normaliser
  const float c1 = float(double(k1) * params_.b / avgdl);
  // Raw pointers: the uint8_t state stores could alias the vectors' own members, which would make
  // the compiler reload them on every posting.
  float* const acc = s.acc.data();
  std::uint8_t* const state = s.state.data();
  const std::uint64_t* const slot_id = p.slot_id.data();
  const std::uint32_t* const slot_len = p.slot_len.data();
  std::vector<std::uint32_t>& touched = s.touched;
  for (std::uint32_t term : s.qterms) {
    auto it = p.postings.find(term);
    if (it == p.postings.end()) continue;
    const auto& list = it->second;
    const double df = double(list.size());
    const float idf = float(std::log1p((n - df + 0.5) / (df + 0.5)));
    const float w = idf * (k1 + 1.0f);
    for (const Posting& post : list) {
      const std::uint32_t slot = post.slot;
      const std::uint8_t st = state[slot];
      if (st == 0) {
        touched.push_back(slot);
        if (filter && !filter->allows(slot_id[slot])) {
          state[slot] = 2;
          continue;
        }
        state[slot] = 1;
      } else if (st == 2) {
        continue;
      }
      const float tf = float(post.tf);
      acc[slot] += w * tf / (tf + c0 + c1 * float(slot_len[slot]));
    }
  }

  // Bounded heap of the k best: its front is the worst kept hit.
  // Strict "better" order: higher score, then smaller id (deterministic ties).
  const auto better = [](const LexHit& a, const LexHit& b) {
    return a.score > b.score || (a.score == b.score && a.id < b.id);
  };
  auto& heap = s.heap;
  heap.clear();
  for (std::uint32_t slot : touched) {
    if (state[slot] != 1) continue;
    const LexHit h{slot_id[slot], acc[slot]};
    if (heap.size() < k) {
      heap.push_back(h);
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (better(h, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = h;
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), better);
  out.assign(heap.begin(), heap.end());
  return out;
}

std::string Bm25Index::serialize() const {
  // Canonical term numbering: the terms still in use, in order of their current id.
  std::vector<std::uint32_t> remap(terms_.size(), std::numeric_limits<std::uint32_t>::max());
  std::vector<std::uint8_t> used(terms_.size(), 0);
  for (const auto& [pid, p] : partitions_)
    for (const auto& [term, list] : p.postings) used[term] = 1;
  Writer w;
  w.bytes(std::string_view(kMagic, sizeof kMagic));
  w.u32(kVersion);
  w.u32((tokenizer_.stopwords ? 1u : 0u) | (tokenizer_.stem ? 2u : 0u));
  w.f32(params_.k1);
  w.f32(params_.b);
  w.u64(0);  // payload size, patched below
  std::uint32_t n_terms = 0;
  for (std::size_t t = 0; t < terms_.size(); ++t)
    if (used[t]) remap[t] = n_terms++;
  w.u32(n_terms);
  for (std::size_t t = 0; t < terms_.size(); ++t) {
    if (!used[t]) continue;
    w.u32(std::uint32_t(terms_[t].size()));
    w.bytes(terms_[t]);
  }
  const auto pids = partitions();
  w.u32(std::uint32_t(pids.size()));
  std::vector<std::pair<std::uint64_t, std::uint32_t>> docs;
  std::vector<TermTf> terms;
  for (std::uint32_t pid : pids) {
    const Partition& p = partitions_.at(pid);
    docs.clear();
    for (std::size_t s = 0; s < p.slot_id.size(); ++s)
      if (p.slot_live[s]) docs.emplace_back(p.slot_id[s], std::uint32_t(s));
    std::sort(docs.begin(), docs.end());
    w.u32(pid);
    w.u32(std::uint32_t(docs.size()));
    for (const auto& [id, slot] : docs) {
      terms = p.slot_terms[slot];
      for (TermTf& t : terms) t.term = remap[t.term];
      std::sort(terms.begin(), terms.end(), [](const TermTf& a, const TermTf& b) { return a.term < b.term; });
      w.u64(id);
      w.u32(std::uint32_t(terms.size()));
      for (const TermTf& t : terms) {
        w.u32(t.term);
        w.u32(t.tf);
      }
    }
  }
  const std::uint64_t payload = w.out.size() - kHeaderSize;
  for (int k = 0; k < 8; ++k) w.out[kHeaderSize - 8 + k] = char((payload >> (8 * k)) & 0xFF);
  w.u64(image_checksum(w.out));
  return std::move(w.out);
}

Bm25Index Bm25Index::deserialize(std::string_view bytes) {
  if (bytes.size() < kHeaderSize + kChecksumSize)
    throw CorruptData("BM25 snapshot is too short (" + std::to_string(bytes.size()) + " bytes)");
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) throw CorruptData("not a BM25 snapshot (bad magic)");
  Reader r{bytes.substr(0, bytes.size() - kChecksumSize), sizeof kMagic};
  const std::uint32_t version = r.u32();
  if (version != kVersion)
    throw CorruptData("BM25 snapshot has format version " + std::to_string(version) + ", this build reads " +
                      std::to_string(kVersion));
  const std::uint32_t flags = r.u32();
  const float k1 = r.f32(), b = r.f32();
  const std::uint64_t payload = r.u64();
  if (payload != bytes.size() - kHeaderSize - kChecksumSize)
    throw CorruptData("BM25 snapshot size mismatch: header says " + std::to_string(payload) + " payload bytes, found " +
                      std::to_string(bytes.size() - kHeaderSize - kChecksumSize));
  Reader tail{bytes, bytes.size() - kChecksumSize};
  if (tail.u64() != image_checksum(bytes.substr(0, bytes.size() - kChecksumSize)))
    throw CorruptData("BM25 snapshot checksum mismatch");
  if (flags > 3) throw CorruptData("BM25 snapshot has unknown flags " + std::to_string(flags));

  Bm25Params params{k1, b};
  try {
    params.validate();
  } catch (const InvalidArgument& e) {
    throw CorruptData(std::string("BM25 snapshot has invalid parameters: ") + e.what());
  }
  Bm25Index index(params, TokenizerOptions{(flags & 1) != 0, (flags & 2) != 0});
  const std::uint32_t n_terms = r.u32();
  if (n_terms > r.in.size() - r.pos) throw CorruptData("BM25 snapshot term count is impossible");
  for (std::uint32_t t = 0; t < n_terms; ++t) {
    const std::string_view term = r.bytes(r.u32());
    if (term.empty() || !valid_utf8(term)) throw CorruptData("BM25 snapshot has an invalid term");
    if (index.intern(term) != t) throw CorruptData("BM25 snapshot has a duplicate term");
  }
  const std::uint32_t n_parts = r.u32();
  std::int64_t last_pid = -1;
  for (std::uint32_t i = 0; i < n_parts; ++i) {
    const std::uint32_t pid = r.u32();
    if (std::int64_t(pid) <= last_pid) throw CorruptData("BM25 snapshot partitions are not in order");
    last_pid = pid;
    const std::uint32_t n_docs = r.u32();
    if (n_docs == 0) throw CorruptData("BM25 snapshot has an empty partition");
    if (std::size_t(n_docs) * 12 > r.in.size() - r.pos) throw CorruptData("BM25 snapshot is truncated");
    {
      // Sized once: loading is otherwise dominated by the growth of these tables.
      Partition& part = index.partitions_[pid];
      part.slot_id.reserve(n_docs);
      part.slot_len.reserve(n_docs);
      part.slot_terms.reserve(n_docs);
      part.slot_live.reserve(n_docs);
      index.where_.reserve(index.where_.size() + n_docs);
    }
    for (std::uint32_t d = 0; d < n_docs; ++d) {
      const std::uint64_t id = r.u64();
      if (index.contains(id)) throw CorruptData("BM25 snapshot has a duplicate id " + std::to_string(id));
      const std::uint32_t nt = r.u32();
      r.need(std::size_t(nt) * 8);
      std::vector<TermTf> terms(nt);
      std::uint64_t len = 0;
      for (std::uint32_t j = 0; j < nt; ++j) {
        terms[j].term = r.u32();
        terms[j].tf = r.u32();
        if (terms[j].term >= n_terms || terms[j].tf == 0 || (j && terms[j].term <= terms[j - 1].term))
          throw CorruptData("BM25 snapshot has an invalid posting");
        len += terms[j].tf;
      }
      if (len >= std::numeric_limits<std::uint32_t>::max()) throw CorruptData("BM25 snapshot document too long");
      index.insert_doc(pid, id, std::move(terms));
    }
  }
  if (r.pos != r.in.size()) throw CorruptData("BM25 snapshot has trailing bytes");
  return index;
}

}  // namespace recallcore::text
