// Snapshots of the derived state: the filter table (the row table's image, each namespace's ids, then
// the ids whose vectors were not yet in the graph) in `snapshot.rc`, the vector index in `vectors.idx`
// and the lexical index in `lexical.idx`, all stamped with the change sequence they reflect. A
// snapshot that is missing, corrupt, from another format or not matching the store is ignored and the
// state is rebuilt from LMDB; nothing in a snapshot is trusted blindly.
#include <sys/file.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>

#include "common/checksum.h"
#include "common/fast_checksum.h"
#include "common/errors.h"
#include "engine/memory.h"
#include "storage/keys.h"

namespace recallcore::engine {

namespace {

constexpr char kMagic[8] = {'R', 'C', 'S', 'N', 'A', 'P', '\x01', '\0'};
// 2: rows hold raw RecordHeader bytes; 3: shared checksum; 4: the pending ids follow the rows, and
// the checksum covers the header too; 5: the rows are the row table's image, indexed by id (live or
// not), so an open maps them instead of copying them, and each namespace's ids follow them; the
// payload is summed with fast_checksum64.
constexpr std::uint32_t kFormat = 5;

// snapshot.rc, format 5 (native byte order: derived data, read back by the same build on the same
// machine; the header records the row layout, so a build with another layout rejects the file):
//   SnapHeader, zero padding to kRowsAt
//   rows         table slots of Memory::Row (ids 0 .. rows-1; access statistics zero)
//   namespaces   entries of {u32 ns, u32 0, u64 count}, in increasing ns
//   ids          each namespace's live ids in increasing order, the lists in directory order
//   pending      u64 ids whose vector the graph lacked or held stale
// The checksum covers the header (with the checksum field zero) and everything after it.
struct SnapHeader {
  char magic[8];
  std::uint32_t format;
  std::uint32_t row_bytes;  // sizeof(Memory::Row)
  std::uint32_t header_bytes;  // sizeof(RecordHeader)
  std::uint32_t namespaces;
  std::uint64_t stamp;
  std::uint64_t dim;
  std::uint64_t rows;  // table slots
  std::uint64_t live;
  std::uint64_t with_vector;  // live rows with kHasVector
  std::uint64_t pending;
  std::uint64_t checksum;
};
static_assert(sizeof(SnapHeader) == 80);
constexpr std::size_t kRowsAt = 128;
static_assert(kRowsAt >= sizeof(SnapHeader) && kRowsAt % alignof(Memory::Row) == 0);

struct NsEntry {
  std::uint32_t ns, zero;
  std::uint64_t count;
};
static_assert(sizeof(NsEntry) == 16);

std::uint64_t snapshot_checksum(SnapHeader h, const char* payload, std::size_t n) {
  h.checksum = 0;
  return fast_checksum64(payload, n, checksum64(&h, sizeof h));
}

// The sections of a format-5 file of `size` bytes, or false when its header does not describe one.
struct SnapLayout {
  std::size_t dir, ids, pending;
};
bool snap_layout(const SnapHeader& h, std::uint64_t size, SnapLayout* L) {
  if (std::memcmp(h.magic, kMagic, 8) != 0 || h.format != kFormat || h.row_bytes != sizeof(Memory::Row) ||
      h.header_bytes != sizeof(RecordHeader) || size < kRowsAt)
    return false;
  // Each count bounded by the bytes it needs, so the sum below cannot overflow.
  const std::uint64_t room = size - kRowsAt;
  if (h.rows > room / sizeof(Memory::Row) || h.namespaces > room / sizeof(NsEntry) || h.live > room / 8 ||
      h.pending > room / 8)
    return false;
  L->dir = kRowsAt + h.rows * sizeof(Memory::Row);
  L->ids = L->dir + std::size_t(h.namespaces) * sizeof(NsEntry);
  L->pending = L->ids + h.live * 8;
  return L->pending + h.pending * 8 == size;
}

// A read-only private mapping of a whole file, unmapped with its last owner. Files are replaced by
// rename, never rewritten in place, so a mapping stays valid while a newer snapshot is written.
struct Mapping {
  void* p = nullptr;
  std::size_t n = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (p != nullptr) ::munmap(p, n);
  }
  std::string_view bytes() const { return {static_cast<const char*>(p), n}; }
};

std::shared_ptr<const Mapping> map_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  const off_t size = ::lseek(fd, 0, SEEK_END);
  auto m = std::make_shared<Mapping>();
  if (size > 0) {
    void* p = ::mmap(nullptr, std::size_t(size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) m->p = p, m->n = std::size_t(size);
  }
  ::close(fd);
  return m->p != nullptr ? m : nullptr;
}

std::string rows_path(const std::string& dir) { return (std::filesystem::path(dir) / "snapshot.rc").string(); }
std::string vectors_path(const std::string& dir) { return (std::filesystem::path(dir) / "vectors.idx").string(); }
std::string lexical_path(const std::string& dir) { return (std::filesystem::path(dir) / "lexical.idx").string(); }

void fsync_dir(const std::string& path) {
  const int dfd = ::open(std::filesystem::path(path).parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

// Held while a process writes the snapshot files. Their temporary names are fixed, and another
// process of the same store may checkpoint at the same moment: unserialised, one could truncate the
// other's temporary file after it was renamed into place, under a third process that maps it. An
// advisory lock on a file of the store, released on close (and by the OS if the process dies).
class SnapshotWriteLock {
 public:
  explicit SnapshotWriteLock(const std::string& dir) {
    const std::string path = (std::filesystem::path(dir) / "snapshot.lock").string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw StoreError("cannot open " + path + ": " + std::strerror(errno));
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd_);
      throw StoreError("cannot lock " + path + ": " + std::strerror(e));
    }
  }
  ~SnapshotWriteLock() { ::close(fd_); }
  SnapshotWriteLock(const SnapshotWriteLock&) = delete;
  SnapshotWriteLock& operator=(const SnapshotWriteLock&) = delete;

 private:
  int fd_ = -1;
};

// Writes `bytes` to `path` atomically: a temporary file, fsync, rename, fsync of the directory.
void write_atomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw StoreError("cannot write " + tmp + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      throw StoreError("cannot write " + tmp + ": " + std::strerror(e));
    }
    done += std::size_t(w);
  }
  ::fsync(fd);
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw StoreError("cannot rename " + tmp + ": " + std::strerror(errno));
  fsync_dir(path);
}

}  // namespace

void Memory::write_snapshot() {
  // Readers may go on; writers wait (the state must not change while it is written).
  std::lock_guard sync(sync_mu_);
  // Catch up first: a snapshot of a state older than LMDB could hold what another process has since
  // forgotten (Memory::forget), and would be written over that process's clean snapshot. The graph
  // is then saved as it is (the indexer paused by graph_mu_): vectors still pending are not in it,
  // and load_snapshot_locked() re-queues them from LMDB, so closing never waits for indexing.
  catch_up_locked();
  std::shared_lock lock(state_mu_);
  std::lock_guard graph(graph_mu_);
  const std::uint64_t stamp = applied_seq_.load();
  const std::uint64_t graph_version = graph_version_.load();
  if (stamp == snapshot_seq_.load() && graph_version == snapshot_graph_version_ &&
      std::filesystem::exists(rows_path(options_.path)))
    return;
  SnapHeader h{};
  std::memcpy(h.magic, kMagic, 8);
  h.format = kFormat;
  h.row_bytes = std::uint32_t(sizeof(Row));
  h.header_bytes = std::uint32_t(sizeof(RecordHeader));
  h.stamp = stamp;
  h.dim = dim_;
  std::vector<std::uint32_t> spaces;
  for (const auto& [ns, ids] : ns_ids_) spaces.push_back(ns);
  std::sort(spaces.begin(), spaces.end());
  std::vector<NsEntry> dir;
  std::vector<std::uint64_t> lists;
  for (auto ns : spaces) {
    const std::size_t before = lists.size();
    for (auto id : ns_ids_.at(ns))
      if (rows_[id].live) lists.push_back(id);  // lists may still hold ids removed since
    // Ids are appended in commit order, which is id order; a load rejects anything else, so a list
    // that is not (never seen) costs a sort here rather than a rebuild at the next open.
    const auto from = lists.begin() + std::ptrdiff_t(before);
    if (std::adjacent_find(from, lists.end(), std::greater_equal<>()) != lists.end()) {
      std::sort(from, lists.end());
      lists.erase(std::unique(from, lists.end()), lists.end());
    }
    if (lists.size() > before) dir.push_back({ns, 0, lists.size() - before});
  }
  for (std::uint64_t id = 0; id < rows_.size(); ++id)
    if (rows_[id].live) {
      h.rows = id + 1;
      h.with_vector += (rows_[id].h.flags & kHasVector) != 0;
    }
  h.namespaces = std::uint32_t(dir.size());
  h.live = lists.size();
  // Every live vector is in the graph or in pend_ (an id leaves pend_ only once the graph holds its
  // latest vector), so these ids are all a load has to re-queue; it need not look at the others.
  h.pending = pend_.size();
  std::string bytes(kRowsAt, '\0');
  bytes.reserve(kRowsAt + h.rows * sizeof(Row) + dir.size() * sizeof(NsEntry) + (lists.size() + pend_.size()) * 8);
  for (std::uint64_t id = 0; id < h.rows; ++id) {
    // Only the header and liveness, as a rebuild from LMDB would have them: a deleted record's row is
    // saved as zeros (its header must not outlive it on disk), and the access statistics (this
    // process's, written concurrently by recalls through atomic_ref) start at 0.
    Row r;
    if (rows_[id].live) {
      r.h = rows_[id].h;
      r.h.reserved = 0;
      r.live = true;
    } else {
      std::memset(static_cast<void*>(&r.h), 0, sizeof r.h);
    }
    bytes.append(reinterpret_cast<const char*>(&r), sizeof r);
  }
  bytes.append(reinterpret_cast<const char*>(dir.data()), dir.size() * sizeof(NsEntry));
  bytes.append(reinterpret_cast<const char*>(lists.data()), lists.size() * 8);
  for (const PendingVec& p : pend_) bytes.append(reinterpret_cast<const char*>(&p.id), 8);
  h.checksum = snapshot_checksum(h, bytes.data() + sizeof h, bytes.size() - sizeof h);
  std::memcpy(bytes.data(), &h, sizeof h);
  // Each file is written whole under a temporary name and renamed, so a crash leaves the previous
  // snapshot or the new one; the stamps tie the three together and a mismatch means "rebuild".
  const SnapshotWriteLock one_writer(options_.path);
  if (dim_ > 0) {
    const std::string vp = vectors_path(options_.path);
    vec_->save(vp + ".tmp", stamp);
    const int fd = ::open((vp + ".tmp").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    if (std::rename((vp + ".tmp").c_str(), vp.c_str()) != 0) throw StoreError("cannot rename " + vp + ".tmp");
  }
  std::string lex(8, '\0');
  std::memcpy(lex.data(), &stamp, 8);
  lex += lexical().serialize();
  write_atomically(lexical_path(options_.path), lex);
  write_atomically(rows_path(options_.path), bytes);
  snapshot_seq_.store(stamp);
  snapshot_graph_version_ = graph_version;
}

void Memory::snapshot_refs(const std::function<void(std::uint64_t, std::optional<std::uint32_t>)>& f) const {
  const auto m = map_file(rows_path(options_.path));
  SnapHeader h;
  SnapLayout L{};
  if (m == nullptr || m->n < sizeof h) return;
  std::memcpy(&h, m->p, sizeof h);
  if (!snap_layout(h, m->n, &L)) return;
  const char* base = static_cast<const char*>(m->p);
  // Fields are read as bytes: the file is not verified here, and a bool must not be read from a
  // byte that is neither 0 nor 1.
  for (std::uint64_t id = 0; id < h.rows; ++id) {
    const char* row = base + kRowsAt + id * sizeof(Row);
    std::uint8_t live;
    std::uint32_t ns;
    std::memcpy(&live, row + offsetof(Row, live), 1);
    std::memcpy(&ns, row + offsetof(Row, h) + offsetof(RecordHeader, ns), 4);
    if (live != 0) f(id, ns);
  }
  std::uint64_t at = 0;
  for (std::uint32_t i = 0; i < h.namespaces; ++i) {
    NsEntry e;
    std::memcpy(&e, base + L.dir + i * sizeof e, sizeof e);
    for (std::uint64_t k = 0; k < e.count && at < h.live; ++k, ++at) {
      std::uint64_t id;
      std::memcpy(&id, base + L.ids + at * 8, 8);
      f(id, e.ns);
    }
  }
  for (std::uint64_t i = 0; i < h.pending; ++i) {
    std::uint64_t id;
    std::memcpy(&id, base + L.pending + i * 8, 8);
    f(id, std::nullopt);
  }
}

bool Memory::load_snapshot_locked() {
  const std::string path = rows_path(options_.path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  SnapHeader h{};
  SnapLayout L{};
  const off_t size = ::lseek(fd, 0, SEEK_END);
  RowTable rows;
  if (size >= off_t(sizeof h) && ::pread(fd, &h, sizeof h, 0) == ssize_t(sizeof h) &&
      snap_layout(h, std::uint64_t(size), &L))
    rows = RowTable::map_file(fd, std::size_t(size), kRowsAt, h.rows);
  ::close(fd);
  if (rows.file_image() == nullptr || h.dim != dim_) return false;
  // The whole file is verified before any of it is used (about 1 ms at 100k rows); the rows are
  // then used in place.
  const char* base = rows.file_image();
  if (snapshot_checksum(h, base + sizeof h, std::size_t(size) - sizeof h) != h.checksum) return false;
  {
    // The stamp must not be ahead of the store (a snapshot from another copy of it).
    storage::Env::Reader reader(*env_);
    std::string_view v;
    std::uint64_t seq = 0;
    if (reader.txn().get(meta_, "seq", &v) && v.size() == 8) seq = storage::get_be64(v);
    if (h.stamp > seq) return false;
  }
  std::unique_ptr<hnsw::Index> vec;
  if (dim_ > 0) {
    std::uint64_t vstamp = 0;
    try {
      // Mapped, not read: a cold open touches only the pages a query visits.
      vec = hnsw::Index::load(vectors_path(options_.path), true, &vstamp);
    } catch (const std::exception&) {
      return false;
    }
    const auto& c = vec->config();
    if (vstamp != h.stamp || c.dim != dim_ || c.metric != metric_id_ ||
        c.storage != hnsw::parse_storage(options_.storage))
      return false;
  } else {
    vec = std::make_unique<hnsw::Index>(index_config());
  }
  // The lexical image: its stamp must match; its header and directory are verified now, each
  // partition when first used (a bad one is rebuilt from LMDB, a bad directory rebuilds it all).
  const auto lex_map = map_file(lexical_path(options_.path));
  if (lex_map == nullptr || lex_map->n < 8) return false;
  {
    std::uint64_t lstamp = 0;
    std::memcpy(&lstamp, lex_map->p, 8);
    if (lstamp != h.stamp) return false;
  }
  std::unique_ptr<text::Bm25Index> lex;
  try {
    lex = std::make_unique<text::Bm25Index>(text::Bm25Index::open(
        lex_map, lex_map->bytes().substr(8),
        [this](std::uint32_t ns, const text::Bm25Index::AddDoc& add) { lexical_texts(ns, add); }));
  } catch (const CorruptData&) {
    // lexical() rebuilds it whole from LMDB on first use.
  }
  std::unordered_map<std::uint32_t, std::vector<std::uint64_t>> ns_ids;
  {
    // Ids index the table, so each is bounds-checked; the lists are in increasing id order.
    const char* ids = base + L.ids;
    std::uint64_t total = 0;
    for (std::uint32_t i = 0; i < h.namespaces; ++i) {
      NsEntry e;
      std::memcpy(&e, base + L.dir + i * sizeof e, sizeof e);
      if (e.count > h.live - total || ns_ids.count(e.ns)) return false;
      std::vector<std::uint64_t>& list = ns_ids[e.ns];
      list.resize(e.count);
      std::memcpy(list.data(), ids + total * 8, e.count * 8);
      total += e.count;
      for (std::size_t k = 0; k < list.size(); ++k)
        if (list[k] >= h.rows || (k > 0 && list[k] <= list[k - 1])) return false;
    }
    if (total != h.live) return false;
  }
  const std::uint64_t with_vector = h.with_vector;
  rows_ = std::move(rows);
  ns_ids_ = std::move(ns_ids);
  vec_ = std::move(vec);
  ns_vecs_ = dim_ > 0 ? std::make_unique<NamespaceVectors>(dim_, metric_id_, options_.scan_cache_bytes) : nullptr;
  {
    std::lock_guard g(lex_mu_);
    lex_ = std::move(lex);
  }
  pend_.clear();
  pend_vecs_.clear();
  pend_pos_.clear();
  graph_dead_.clear();
  if (dim_ > 0) {
    // Vectors that were pending at snapshot time go back to the tail (a stale copy in the graph is
    // replaced). The graph holds every other live vector, so if it holds more than that, the rest
    // are ids of records deleted since: those are found and queued for removal (filtered meanwhile).
    storage::Env::Reader reader(*env_);
    const char* pend_ids = base + L.pending;
    std::uint64_t missing = 0;
    std::vector<float> v(dim_);
    for (std::uint64_t i = 0; i < h.pending; ++i) {
      std::uint64_t id;
      std::memcpy(&id, pend_ids + i * 8, 8);
      if (id >= rows_.size() || !rows_[id].live || !(rows_[id].h.flags & kHasVector) || pend_pos_.count(id)) continue;
      missing += !vec_->contains(id);
      std::string_view vb;
      if (reader.txn().get(vectors_, storage::id_key(id), &vb) && vb.size() == dim_ * sizeof(float)) {
        std::memcpy(v.data(), vb.data(), vb.size());
        queue_vector_locked(id, h.stamp, v.data());
      }
    }
    if (with_vector - missing != vec_->size())
      for (auto id : vec_->ids())
        if (id >= rows_.size() || !rows_[id].live) graph_dead_.push_back(id);
  }
  applied_seq_.store(h.stamp);
  snapshot_seq_.store(h.stamp);
  // A snapshot whose graph lacked vectors (re-queued above) is rewritten on close even if no change
  // follows; a complete one is not.
  snapshot_graph_version_ = pend_.empty() && graph_dead_.empty() ? graph_version_.load() : ~std::uint64_t(0);
  return true;
}

}  // namespace recallcore::engine
