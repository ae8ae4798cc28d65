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
// 2: the shared word-wise checksum (was byte-wise FNV-1a); 3: a directory and self-contained,
// separately checksummed partition blocks, so an open decodes only the partitions it uses.
constexpr std::uint32_t kVersion = 3;
// magic, version, flags, k1, b, partitions, reserved, image size
constexpr std::size_t kHeaderSize = 8 + 4 + 4 + 4 + 4 + 4 + 4 + 8;
constexpr std::size_t kEntrySize = 4 + 4 + 8 + 8 + 8 + 8 + 8;  // partition, docs, min/max id, offset, length, checksum
constexpr std::size_t kChecksumSize = 8;

// A block's checksum is seeded with its partition id, so a block cannot pass for another partition's.
std::uint64_t block_checksum(std::string_view s, std::uint32_t partition) noexcept {
  return checksum64(s.data(), s.size(), partition);
}

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

std::vector<Bm25Index::TermTf> Bm25Index::term_counts(std::string_view text) {
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
  return terms;
}

void Bm25Index::erase_id(std::uint64_t id, bool drop_empty) {
  auto it = where_.find(id);
  if (it == where_.end()) return;
  const Location loc = it->second;
  where_.erase(it);
  Partition& p = partitions_.at(loc.partition);
  erase_doc(p, loc.slot);
  if (p.docs == 0 && drop_empty) partitions_.erase(loc.partition);
}

void Bm25Index::add(std::uint32_t partition, std::uint64_t id, std::string_view text) {
  ensure(partition);
  locate(id, partition);
  std::vector<TermTf> terms = term_counts(text);
  erase_id(id);
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

bool Bm25Index::remove(std::uint64_t id, std::optional<std::uint32_t> hint) {
  locate(id, hint);
  if (!where_.count(id)) return false;
  erase_id(id);
  return true;
}

void Bm25Index::drop_partition(std::uint32_t partition) {
  if (lazy_) {
    if (const Undecoded* e = lazy_->find(partition); e && e->pending.load(std::memory_order_acquire)) {
      // Never decoded: nothing of it is in where_ or the dictionary, so forgetting the block suffices.
      e->pending.store(false, std::memory_order_release);
      lazy_->pending_docs -= e->docs;
    }
  }
  auto it = partitions_.find(partition);
  if (it == partitions_.end()) return;
  const Partition& p = it->second;
  for (std::size_t s = 0; s < p.slot_id.size(); ++s)
    if (p.slot_live[s]) where_.erase(p.slot_id[s]);
  partitions_.erase(it);
}

std::size_t Bm25Index::size() const {
  if (!lazy_) return where_.size();
  std::shared_lock dict(lazy_->dict_mu);
  return where_.size() + lazy_->pending_docs;
}

bool Bm25Index::contains(std::uint64_t id) const {
  locate(id, std::nullopt);
  if (!lazy_) return where_.count(id) != 0;
  std::shared_lock dict(lazy_->dict_mu);
  return where_.count(id) != 0;
}

std::size_t Bm25Index::partition_size(std::uint32_t partition) const {
  if (lazy_) {
    std::shared_lock dict(lazy_->dict_mu);
    if (const Undecoded* e = lazy_->find(partition); e && e->pending.load(std::memory_order_acquire)) return e->docs;
    auto it = partitions_.find(partition);
    return it == partitions_.end() ? 0 : it->second.docs;
  }
  auto it = partitions_.find(partition);
  return it == partitions_.end() ? 0 : it->second.docs;
}

std::vector<std::uint32_t> Bm25Index::partitions() const {
  std::vector<std::uint32_t> out;
  std::shared_lock<std::shared_mutex> dict;
  if (lazy_) dict = std::shared_lock(lazy_->dict_mu);
  out.reserve(partitions_.size());
  for (const auto& [pid, p] : partitions_) {
    bool pending = false;
    if (lazy_)
      if (const Undecoded* e = lazy_->find(pid)) pending = e->pending.load(std::memory_order_acquire);
    if (p.docs > 0 || pending) out.push_back(pid);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<LexHit> Bm25Index::search(std::uint32_t partition, std::string_view query, std::size_t k,
                                      const DocFilter* filter) const {
  ensure(partition);
  Scratch& s = scratch();
  s.qterms.clear();
  {
    std::shared_lock<std::shared_mutex> dict;
    if (lazy_) dict = std::shared_lock(lazy_->dict_mu);  // another partition may be decoding (interning)
    for_each_token(query, tokenizer_, [&](std::string_view t) {
      if (auto it = term_ids_.find(t); it != term_ids_.end()) s.qterms.push_back(it->second);
    });
  }
  std::vector<LexHit> out;
  auto pit = partitions_.find(partition);
  if (k == 0 || s.qterms.empty() || pit == partitions_.end()) return out;
  const Partition& p = pit->second;
  // Terms are summed in the order of their text, not of their ids: ids depend on the order terms
  // were first seen (different after a decode or a rebuild), and float sums on their order.
  std::sort(s.qterms.begin(), s.qterms.end());
  s.qterms.erase(std::unique(s.qterms.begin(), s.qterms.end()), s.qterms.end());
  {
    std::shared_lock<std::shared_mutex> dict;
    if (lazy_) dict = std::shared_lock(lazy_->dict_mu);
    std::sort(s.qterms.begin(), s.qterms.end(),
              [this](std::uint32_t a, std::uint32_t b) { return terms_[a] < terms_[b]; });
  }
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

void Bm25Index::encode_partition(std::string& out, const Partition& p) const {
  // Canonical: the partition's terms sorted by text, its documents by id, each document's terms by
  // (local) term id.
  std::vector<std::uint32_t> used;
  for (const auto& [term, list] : p.postings)
    if (!list.empty()) used.push_back(term);
  std::sort(used.begin(), used.end(), [this](std::uint32_t a, std::uint32_t b) { return terms_[a] < terms_[b]; });
  std::unordered_map<std::uint32_t, std::uint32_t> local;
  local.reserve(used.size());
  for (std::uint32_t i = 0; i < used.size(); ++i) local.emplace(used[i], i);
  Writer w;
  w.u32(std::uint32_t(used.size()));
  for (std::uint32_t t : used) {
    w.u32(std::uint32_t(terms_[t].size()));
    w.bytes(terms_[t]);
  }
  std::vector<std::pair<std::uint64_t, std::uint32_t>> docs;
  for (std::size_t s = 0; s < p.slot_id.size(); ++s)
    if (p.slot_live[s]) docs.emplace_back(p.slot_id[s], std::uint32_t(s));
  std::sort(docs.begin(), docs.end());
  std::vector<TermTf> terms;
  for (const auto& [id, slot] : docs) {
    terms = p.slot_terms[slot];
    for (TermTf& t : terms) t.term = local.at(t.term);
    std::sort(terms.begin(), terms.end(), [](const TermTf& a, const TermTf& b) { return a.term < b.term; });
    w.u64(id);
    w.u32(std::uint32_t(terms.size()));
    for (const TermTf& t : terms) {
      w.u32(t.term);
      w.u32(t.tf);
    }
  }
  out = std::move(w.out);
}

std::string Bm25Index::serialize() const {
  // A pending block is copied as it is (it is canonical), once its checksum has been verified: a bad
  // one is decoded instead, which rebuilds it.
  const auto pids = partitions();
  struct Block {
    std::uint32_t pid, docs;
    std::uint64_t min_id, max_id;
    std::string bytes;
  };
  std::vector<Block> blocks;
  blocks.reserve(pids.size());
  for (std::uint32_t pid : pids) {
    Block b{pid, 0, 0, 0, {}};
    if (lazy_) {
      const Undecoded* e = lazy_->find(pid);
      if (e && e->pending.load(std::memory_order_acquire)) {
        const std::string_view raw = lazy_->image.substr(e->offset, e->length);
        if (block_checksum(raw, pid) == e->checksum) {
          b.docs = e->docs, b.min_id = e->min_id, b.max_id = e->max_id;
          b.bytes.assign(raw);
          blocks.push_back(std::move(b));
          continue;
        }
        decode(*e);
      }
    }
    auto it = partitions_.find(pid);
    if (it == partitions_.end() || it->second.docs == 0) continue;  // emptied by a rebuild
    const Partition& p = it->second;
    b.docs = std::uint32_t(p.docs);
    b.min_id = std::numeric_limits<std::uint64_t>::max();
    for (std::size_t s = 0; s < p.slot_id.size(); ++s)
      if (p.slot_live[s]) b.min_id = std::min(b.min_id, p.slot_id[s]), b.max_id = std::max(b.max_id, p.slot_id[s]);
    encode_partition(b.bytes, p);
    blocks.push_back(std::move(b));
  }
  Writer w;
  w.bytes(std::string_view(kMagic, sizeof kMagic));
  w.u32(kVersion);
  w.u32((tokenizer_.stopwords ? 1u : 0u) | (tokenizer_.stem ? 2u : 0u));
  w.f32(params_.k1);
  w.f32(params_.b);
  w.u32(std::uint32_t(blocks.size()));
  w.u32(0);
  const std::uint64_t dir_end = kHeaderSize + blocks.size() * kEntrySize + kChecksumSize;
  std::uint64_t total = dir_end;
  for (const Block& b : blocks) total += b.bytes.size();
  w.u64(total);
  std::uint64_t at = dir_end;
  for (const Block& b : blocks) {
    w.u32(b.pid);
    w.u32(b.docs);
    w.u64(b.min_id);
    w.u64(b.max_id);
    w.u64(at);
    w.u64(b.bytes.size());
    w.u64(block_checksum(b.bytes, b.pid));
    at += b.bytes.size();
  }
  w.u64(checksum64(w.out.data(), w.out.size()));
  w.out.reserve(total);
  for (const Block& b : blocks) w.bytes(b.bytes);
  return std::move(w.out);
}

const Bm25Index::Undecoded* Bm25Index::Lazy::find(std::uint32_t partition) const {
  std::size_t lo = 0, hi = n;
  while (lo < hi) {
    const std::size_t mid = (lo + hi) / 2;
    if (dir[mid].partition < partition) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && dir[lo].partition == partition ? &dir[lo] : nullptr;
}

Bm25Index Bm25Index::open(std::shared_ptr<const void> owner, std::string_view bytes, Rebuild rebuild) {
  if (bytes.size() < kHeaderSize + kChecksumSize)
    throw CorruptData("BM25 snapshot is too short (" + std::to_string(bytes.size()) + " bytes)");
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) throw CorruptData("not a BM25 snapshot (bad magic)");
  Reader r{bytes, sizeof kMagic};
  const std::uint32_t version = r.u32();
  if (version != kVersion)
    throw CorruptData("BM25 snapshot has format version " + std::to_string(version) + ", this build reads " +
                      std::to_string(kVersion));
  const std::uint32_t flags = r.u32();
  const float k1 = r.f32(), b = r.f32();
  const std::uint32_t n_parts = r.u32();
  const std::uint32_t reserved = r.u32();
  const std::uint64_t total = r.u64();
  if (total != bytes.size())
    throw CorruptData("BM25 snapshot size mismatch: header says " + std::to_string(total) + " bytes, found " +
                      std::to_string(bytes.size()));
  if (n_parts > (bytes.size() - kHeaderSize - kChecksumSize) / kEntrySize)
    throw CorruptData("BM25 snapshot partition count is impossible");
  const std::size_t dir_end = kHeaderSize + std::size_t(n_parts) * kEntrySize;
  Reader sum{bytes, dir_end};
  if (sum.u64() != checksum64(bytes.data(), dir_end)) throw CorruptData("BM25 snapshot checksum mismatch");
  if (flags > 3 || reserved != 0) throw CorruptData("BM25 snapshot has unknown flags " + std::to_string(flags));
  Bm25Params params{k1, b};
  try {
    params.validate();
  } catch (const InvalidArgument& e) {
    throw CorruptData(std::string("BM25 snapshot has invalid parameters: ") + e.what());
  }
  Bm25Index index(params, TokenizerOptions{(flags & 1) != 0, (flags & 2) != 0});
  auto lazy = std::make_unique<Lazy>();
  lazy->owner = std::move(owner);
  lazy->image = bytes;
  lazy->rebuild = std::move(rebuild);
  lazy->dir = std::make_unique<Undecoded[]>(n_parts);
  lazy->n = n_parts;
  std::uint64_t at = dir_end + kChecksumSize;
  for (std::uint32_t i = 0; i < n_parts; ++i) {
    Undecoded& e = lazy->dir[i];
    e.partition = r.u32();
    e.docs = r.u32();
    e.min_id = r.u64();
    e.max_id = r.u64();
    e.offset = r.u64();
    e.length = r.u64();
    e.checksum = r.u64();
    // Blocks tile the image in partition order: every byte is under some checksum.
    if ((i > 0 && e.partition <= lazy->dir[i - 1].partition) || e.docs == 0 || e.min_id > e.max_id ||
        e.offset != at || e.length > bytes.size() - at || e.length < 4 + std::uint64_t(e.docs) * 12)
      throw CorruptData("BM25 snapshot has an inconsistent directory");
    at += e.length;
    e.pending.store(true, std::memory_order_relaxed);
    lazy->pending_docs += e.docs;
    index.partitions_[e.partition];  // the (empty) entry a decode fills
  }
  if (at != bytes.size()) throw CorruptData("BM25 snapshot has trailing bytes");
  index.lazy_ = std::move(lazy);
  return index;
}

void Bm25Index::decode(const Undecoded& e) const {
  std::lock_guard load(lazy_->load_mu);
  if (!e.pending.load(std::memory_order_acquire)) return;  // another thread was first
  // Readers decode: the index object itself is never const (see the thread-safety note).
  const_cast<Bm25Index*>(this)->decode_locked(e);
}

void Bm25Index::decode_locked(const Undecoded& e) {
  // Parse and check the block before touching the index, so a bad block changes nothing.
  struct Doc {
    std::uint64_t id;
    std::vector<TermTf> terms;
  };
  std::vector<std::string_view> local;
  std::vector<Doc> docs;
  bool ok = true;
  try {
    const std::string_view raw = lazy_->image.substr(e.offset, e.length);
    if (block_checksum(raw, e.partition) != e.checksum) throw CorruptData("BM25 snapshot checksum mismatch");
    Reader r{raw, 0};
    const std::uint32_t n_terms = r.u32();
    if (n_terms > raw.size()) throw CorruptData("BM25 snapshot term count is impossible");
    local.reserve(n_terms);
    for (std::uint32_t t = 0; t < n_terms; ++t) {
      const std::string_view term = r.bytes(r.u32());
      if (term.empty() || !valid_utf8(term) || (t && term <= local.back()))
        throw CorruptData("BM25 snapshot has an invalid term");
      local.push_back(term);
    }
    docs.reserve(e.docs);
    for (std::uint32_t d = 0; d < e.docs; ++d) {
      Doc doc;
      doc.id = r.u64();
      if ((d && doc.id <= docs.back().id) || doc.id < e.min_id || doc.id > e.max_id || (d == 0 && doc.id != e.min_id))
        throw CorruptData("BM25 snapshot documents are not in order");
      const std::uint32_t nt = r.u32();
      r.need(std::size_t(nt) * 8);
      doc.terms.resize(nt);
      std::uint64_t len = 0;
      for (std::uint32_t j = 0; j < nt; ++j) {
        doc.terms[j].term = r.u32();
        doc.terms[j].tf = r.u32();
        if (doc.terms[j].term >= n_terms || doc.terms[j].tf == 0 || (j && doc.terms[j].term <= doc.terms[j - 1].term))
          throw CorruptData("BM25 snapshot has an invalid posting");
        len += doc.terms[j].tf;
      }
      if (len >= std::numeric_limits<std::uint32_t>::max()) throw CorruptData("BM25 snapshot document too long");
      docs.push_back(std::move(doc));
    }
    if (docs.back().id != e.max_id) throw CorruptData("BM25 snapshot documents are not in order");
    if (r.pos != raw.size()) throw CorruptData("BM25 snapshot has trailing bytes");
  } catch (const CorruptData&) {
    if (!lazy_->rebuild) throw;
    ok = false;
  }
  std::vector<std::pair<std::uint64_t, std::string>> texts;
  if (!ok) {
    // The block is unusable: its documents come from the caller's source of truth instead.
    lazy_->rebuild(e.partition, [&](std::uint64_t id, std::string_view text) { texts.emplace_back(id, text); });
    std::sort(texts.begin(), texts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  std::unique_lock dict(lazy_->dict_mu);
  if (ok) {
    std::vector<std::uint32_t> global(local.size());
    for (std::size_t t = 0; t < local.size(); ++t) global[t] = intern(local[t]);
    Partition& part = partitions_.at(e.partition);
    // Each term's posting list sized once (its document count is known here), not grown by doubling.
    std::vector<std::uint32_t> df(local.size(), 0);
    for (const Doc& d : docs)
      for (const TermTf& t : d.terms) ++df[t.term];
    part.postings.reserve(part.postings.size() + local.size());
    for (std::size_t t = 0; t < local.size(); ++t)
      if (df[t]) {
        auto& list = part.postings[global[t]];
        list.reserve(list.size() + df[t]);
      }
    part.slot_id.reserve(docs.size());
    part.slot_len.reserve(docs.size());
    part.slot_terms.reserve(docs.size());
    part.slot_live.reserve(docs.size());
    where_.reserve(where_.size() + docs.size());
    for (Doc& d : docs) {
      for (TermTf& t : d.terms) t.term = global[t.term];
      // An id already indexed elsewhere cannot come from a consistent image; the block's copy wins,
      // as a later add would. The emptied partition keeps its (empty) entry: readers may be looking
      // entries up.
      erase_id(d.id, false);
      insert_doc(e.partition, d.id, std::move(d.terms));
    }
  } else {
    for (auto& [id, text] : texts) {
      std::vector<TermTf> terms = term_counts(text);
      erase_id(id, false);
      insert_doc(e.partition, id, std::move(terms));
    }
  }
  lazy_->pending_docs -= e.docs;
  e.pending.store(false, std::memory_order_release);
}

void Bm25Index::decode_all() const {
  if (!lazy_) return;
  for (std::size_t i = 0; i < lazy_->n; ++i)
    if (lazy_->dir[i].pending.load(std::memory_order_acquire)) decode(lazy_->dir[i]);
}

void Bm25Index::locate(std::uint64_t id, std::optional<std::uint32_t> hint) const {
  if (!lazy_) return;
  {
    std::shared_lock dict(lazy_->dict_mu);
    if (where_.count(id) || lazy_->pending_docs == 0) return;
  }
  if (hint) {
    ensure(*hint);
    std::shared_lock dict(lazy_->dict_mu);
    if (where_.count(id)) return;
  }
  for (std::size_t i = 0; i < lazy_->n; ++i) {
    const Undecoded& e = lazy_->dir[i];
    if (!e.pending.load(std::memory_order_acquire) || id < e.min_id || id > e.max_id) continue;
    decode(e);
    std::shared_lock dict(lazy_->dict_mu);
    if (where_.count(id)) return;
  }
}

Bm25Index Bm25Index::deserialize(std::string_view bytes) {
  auto copy = std::make_shared<const std::string>(bytes);
  Bm25Index index = open(copy, *copy);
  index.decode_all();  // no rebuild: a bad block throws
  index.lazy_.reset();
  return index;
}

}  // namespace recallcore::text
