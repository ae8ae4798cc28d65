// The memory store: LMDB is the source of truth; everything in memory (the filter table of record
// headers, per-namespace id lists, the vector index, the lexical index) is derived from it, kept
// current after each commit, snapshotted with the change sequence it reflects, and caught up from
// the change log on open and whenever another process has written.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/mapped_table.h"
#include "engine/names.h"
#include "engine/namespace_vectors.h"
#include "engine/recall.h"
#include "engine/record.h"
#include "engine/record_hints.h"
#include "hnsw/index.h"
#include "storage/lmdb.h"
#include "text/bm25.h"

namespace recallcore::engine {

constexpr std::uint32_t kSchemaVersion = 1;

struct MemoryOptions {
  std::string path;
  std::size_t dim = 0;          // 0: as stored (a new store without dim is text-only)
  std::string metric;           // "": as stored (new stores: cosine)
  std::string embedder;         // name recorded at creation; "" = none
  std::string token_counter;    // name recorded at creation; "" = as stored
  bool readonly = false;
  bool durable = true;          // false: no fsync per commit (process-crash safe, not power-loss safe)
  std::size_t map_size = std::size_t(64) << 20;
  std::size_t max_text_bytes = std::size_t(1) << 20;
  std::size_t M = 16, ef_construction = 200, ef_search = 64;
  std::string storage = "f32";
  std::size_t checkpoint_every = 50000;  // changes between background snapshots (0: only on close)
  // Bytes of the per-namespace vector copies recall scans (engine/namespace_vectors.h).
  std::size_t scan_cache_bytes = std::size_t(256) << 20;
};

struct NewRecord {
  std::string text, summary, ns = "default", session, kind = "turn", role, metadata;
  std::vector<std::string> entities;
  double ts = 0;              // Unix seconds (the binding fills "now")
  float importance = 0.5f;
  double ttl = 0;             // seconds; 0 = none
  std::uint32_t tokens_text = 0, tokens_summary = 0;
  const float* vector = nullptr;  // dim floats or null
  std::uint64_t supersedes = 0;
  // Duplicates on write (issue 7, engine/dedupe.cpp): keep writes a new record; skip returns the id
  // of an existing duplicate without writing; merge folds this one into it.
  enum class Dedupe : std::uint8_t { keep, skip, merge };
  Dedupe dedupe = Dedupe::keep;
  float dedupe_threshold = 0.95f;  // near duplicates: vector similarity (cosine/ip) at or above this
};

// Fields an update may change; unset optionals stay as they are.
struct RecordPatch {
  std::optional<std::string> text, summary, metadata, kind, role;
  std::optional<std::vector<std::string>> entities;
  std::optional<double> ts, ttl;
  std::optional<float> importance;
  std::optional<std::uint32_t> tokens_text, tokens_summary;
  std::optional<bool> archived;
  const float* vector = nullptr;
};

// A record with its names resolved, as handed to callers.
struct RecordOut {
  Record r;
  std::string ns, session, kind, role;
};

struct ListPage {
  std::vector<RecordOut> records;
  std::string next_cursor;  // "" at the end
};

struct RecallResult {
  RecallHit hit;
  RecordOut record;
};

struct Stats {
  std::uint64_t records = 0, vectors = 0, indexed_vectors = 0, pending_vectors = 0, seq = 0, snapshot_seq = 0;
  std::uint64_t file_bytes = 0, map_bytes = 0, index_bytes = 0, lexical_docs = 0;
  NamespaceVectors::Usage scan_cache;  // the per-namespace copies recall scans (engine/namespace_vectors.h)
  std::map<std::string, std::map<std::string, std::uint64_t>> counts;  // namespace -> kind -> live records
  std::size_t dim = 0;
  std::string metric, embedder, token_counter, storage;
};

class Memory {
 public:
  explicit Memory(const MemoryOptions& options);
  ~Memory();
  Memory(const Memory&) = delete;
  Memory& operator=(const Memory&) = delete;

  void close();  // checkpoints (unless read-only) and releases the environment; idempotent
  // True in a child of fork(). The parent's threads are gone there and its condition variables may
  // have waiters forever, so the owner must leak (not destroy) a Memory in that case.
  bool forked() const { return env_ != nullptr && env_->forked(); }
  bool closed() const { return closed_; }

  std::vector<std::uint64_t> add(const std::vector<NewRecord>& items);
  void update(std::uint64_t id, const RecordPatch& patch);
  void remove(const std::vector<std::uint64_t>& ids);  // all must exist; nothing removed otherwise

  std::optional<RecordOut> get(std::uint64_t id);
  std::vector<RecordOut> get_many(const std::vector<std::uint64_t>& ids);
  // Export support: each record's stored vector, bit for bit (empty: none; unknown id: InvalidArgument),
  // and every namespace name the store has registered (also those holding only state).
  std::vector<std::vector<float>> get_vectors(const std::vector<std::uint64_t>& ids);
  std::vector<std::string> namespaces();
  std::vector<RecordOut> history(const std::string& ns, const std::optional<std::string>& session,
                                 std::size_t last, double since, double until);
  // The last `n` records of `kind` in a namespace (or one of its sessions), not archived and not in
  // `skip`, in time order; headers are checked before a record is decoded (Memory.context's turns).
  std::vector<RecordOut> recent_of_kind(const std::string& ns, const std::optional<std::string>& session,
                                        const std::string& kind, std::size_t n,
                                        const std::unordered_set<std::uint64_t>& skip);
  ListPage list(const std::string& ns, const std::optional<std::string>& kind, double since, double until,
                std::size_t limit, const std::string& cursor);
  std::vector<RecordOut> entity(const std::string& ns, const std::string& name);
  // Live records of a namespace whose kind is one of `kinds`, valid at `valid_at` (unless
  // include_history), not archived, not expired at `now`; in time order. Uses the in-memory table,
  // so it costs O(namespace) comparisons, not a scan of LMDB.
  std::vector<RecordOut> select_kinds(const std::string& ns, const std::vector<std::string>& kinds, double valid_at,
                                      double now, bool include_history, std::size_t limit);

  std::optional<std::string> state_get(const std::string& ns, const std::string& key);
  void state_set(const std::string& ns, const std::string& key, const std::string& json);
  bool state_delete(const std::string& ns, const std::string& key);
  std::vector<std::pair<std::string, std::string>> state_items(const std::string& ns);

  std::vector<RecallResult> recall(const RecallQuery& query);

  void checkpoint();
  void sync();
  // Compares the derived state with LMDB: the number of ids live in one but not the other, and of
  // records whose vector is missing from (or stale in) the vector index. All zero when consistent.
  struct Consistency {
    std::uint64_t lmdb_records = 0, missing_in_state = 0, extra_in_state = 0, missing_vectors = 0,
                  extra_vectors = 0, scan_copy_mismatches = 0;
  };
  Consistency verify();  // catch up with writes committed by other processes
  Stats stats();
  std::size_t dim() const { return dim_; }
  const std::string& metric_name() const { return metric_; }
  const std::string& token_counter_name() const { return options_.token_counter; }
  const std::string& embedder_name() const { return options_.embedder; }
  const std::string& path() const { return options_.path; }

  // A row of the in-memory filter table (by record id). Access statistics feed retention scores.
  struct Row {
    RecordHeader h;
    bool live = false;
    std::uint8_t reserved[3] = {};  // explicit, always 0 (rows are saved as bytes: no indeterminate padding)
    std::uint32_t accesses = 0;     // updated with std::atomic_ref under the shared state lock
    double last_access = 0;
  };
  static_assert(sizeof(Row) == sizeof(RecordHeader) + 1 + 3 + 4 + 8, "Row has implicit padding");
  // Served from the snapshot file at open (engine/mapped_table.h), so the 120-byte rows are saved in
  // exactly this layout (engine/snapshot.cpp).
  using RowTable = MappedTable<Row>;

  // ---- Forgetting (issue 7): engine/forget.cpp, engine/dedupe.cpp, engine/retention.cpp ----------
  struct ForgetQuery {
    std::optional<std::string> ns, session;
    std::vector<std::uint64_t> ids;       // empty: every record the other fields select
    std::optional<double> before;         // records with ts < before
    std::vector<std::string> kinds;       // empty: all kinds
  };
  // Deletes every trace of the selected records in one transaction, rebuilds the derived indexes and
  // writes a fresh snapshot; returns the number of records deleted.
  std::uint64_t forget(const ForgetQuery& q);
  // References to `ns` left anywhere (LMDB tables, change log, snapshot files, in-memory indexes).
  std::uint64_t verify_forgotten(const std::string& ns);
  void vacuum(const std::string& dest_dir);  // a compacted copy of the LMDB environment
  void set_archived(const std::vector<std::uint64_t>& ids, bool archived);  // all must exist
  struct CompactGroup {
    NewRecord summary;
    std::vector<std::uint64_t> sources;
  };
  // Writes one summary per group (linked to its sources) and archives or drops the sources, all in
  // one transaction; returns the summary ids.
  std::vector<std::uint64_t> compact_commit(const std::vector<CompactGroup>& groups, bool drop);
  // Retention policies are opaque values (JSON from the binding) under "namespace\0kind" keys.
  void policy_put(const std::string& ns, const std::string& kind, const std::string& value);  // "" deletes
  std::vector<std::pair<std::string, std::string>> policy_items();
  struct RetentionPolicy {
    std::string ns, kind;  // "" = any
    double ttl = 0, half_life = 0;
    std::uint64_t max_items = 0, max_tokens = 0;
  };
  struct ExpireReport {
    std::uint64_t expired = 0, evicted = 0;
    std::vector<std::uint64_t> ids;
  };
  ExpireReport expire(double now, const std::vector<RetentionPolicy>& policies);
  // Writes a snapshot, then deletes the change-log entries it covers; returns how many. Processes
  // behind that point rebuild their indexes on their next catch-up (correct, but not free).
  std::uint64_t prune_log();
  // The retention score of a live record (see engine/retention.h); NaN for an unknown id.
  double retention_score(std::uint64_t id, double now, double half_life);

 private:
  struct Pending {  // one committed change, applied to the derived state after commit
    std::uint64_t seq;
    std::uint64_t id;
    bool removed;
    RecordHeader h;
    std::string text;
    std::vector<float> vector;  // empty: none
  };

  void ensure_open() const;
  void open_meta();
  void validate(const NewRecord& r) const;
  std::uint64_t meta_u64(const storage::Txn& txn, const char* key, std::uint64_t dflt) const;
  void put_meta_u64(storage::Txn& txn, const char* key, std::uint64_t v);
  void log_change(storage::Txn& txn, std::uint64_t seq, char op, std::uint64_t id);
  void put_secondary(storage::Txn& txn, const Record& r);
  Record new_record(storage::Txn& txn, const NewRecord& item, std::uint64_t id, double now);
  void check_vector(const float* v) const;  // dim set, every value finite
  void put_new_record(storage::Txn& txn, const Record& r, const float* vector, std::uint64_t seq,
                      std::vector<Pending>& changes);
  void del_secondary(storage::Txn& txn, const Record& r);
  // Forgetting helpers (engine/dedupe.cpp).
  void put_dedupe(storage::Txn& txn, const Record& r);
  void del_dedupe(storage::Txn& txn, const Record& r);
  std::uint64_t find_duplicate(const storage::Txn& txn, const NewRecord& it, std::uint32_t ns, std::uint32_t kind);
  RecordOut resolve(const storage::Txn& txn, Record r);
  // The time-ordered key range of a namespace (or one of its sessions) in by_ns / by_session:
  // false when a name is unknown (nothing is in range).
  bool time_index(const storage::Txn& txn, const std::string& ns, const std::optional<std::string>& session,
                  std::string* prefix, MDB_dbi* dbi);
  std::vector<std::uint64_t> entity_record_ids(const storage::Txn& txn, std::uint32_t ns, const std::string& name);
  hnsw::Config index_config() const;

  // Vector search over the graph and the not-yet-indexed tail (engine/indexer.cpp). Callers hold
  // state_mu_ (shared). `allowed` (sorted ids) selects the exact path; otherwise `filter` is walked.
  std::vector<hnsw::Hit> vector_candidates(const float* query, std::size_t k, std::size_t ef,
                                           const std::vector<std::uint64_t>* allowed, const hnsw::Filter& filter) const;
  bool vector_of(std::uint64_t id, float* out) const;  // caller holds state_mu_
  void queue_vector_locked(std::uint64_t id, std::uint64_t seq, const float* v);
  void drop_vector_locked(std::uint64_t id);
  void erase_pending(std::unordered_map<std::uint64_t, std::size_t>::iterator it);
  bool index_pending(std::size_t max_batch);  // false when nothing was pending
  void drain_pending();
  void indexer_loop();
  void stop_indexer();

  // One write transaction that logs changes: `body` runs with `seq` at the store's change sequence
  // (from the start again when LMDB retries the transaction, with `changes` emptied), the new
  // sequence is stored, names resolved inside are published, and the derived state follows the
  // commit. Takes the process's writer lock.
  void write_changes(const std::function<void(storage::Txn&, std::uint64_t& seq, std::vector<Pending>& changes)>& body);
  // Deletes a record and its secondary keys and vector inside `txn`, logging the change.
  void drop_record(storage::Txn& txn, const Record& r, std::uint64_t& seq, std::vector<Pending>& changes);
  void after_commit(std::uint64_t seq0, std::vector<Pending>&& changes);
  void apply_locked(std::vector<Pending>& changes);
  void catch_up_locked();
  void rebuild_locked();
  bool load_snapshot_locked();
  void write_snapshot();
  // Calls `f` for every record id the snapshot file mentions, with its namespace where the file says
  // one (rows and namespace lists; pending ids have none). Nothing when the file is missing or of
  // another format.
  void snapshot_refs(const std::function<void(std::uint64_t id, std::optional<std::uint32_t> ns)>& f) const;
  void checkpointer_loop();

  MemoryOptions options_;
  std::unique_ptr<storage::Env> env_;
  MDB_dbi meta_ = 0, records_ = 0, vectors_ = 0, by_ns_ = 0, by_session_ = 0, entities_ = 0, state_ = 0,
          changes_ = 0, names_dbi_ = 0, dedupe_ = 0, policies_ = 0;
  std::unique_ptr<Names> names_;
  std::size_t dim_ = 0;
  std::string metric_;
  simd::Metric metric_id_ = simd::Metric::cosine;
  bool closed_ = false;

  std::mutex write_mu_;              // one writer in this process at a time
  std::mutex sync_mu_;               // one applier of changes at a time (own commits or catch-up)
  mutable std::shared_mutex state_mu_;  // the derived state below
  RowTable rows_;                    // by record id
  RecordHints hints_;                // where records were last read in LMDB's map (prefetch only)
  std::unordered_map<std::uint32_t, std::vector<std::uint64_t>> ns_ids_;
  std::unique_ptr<hnsw::Index> vec_;  // vectors of live records (dim > 0)
  // Dense per-namespace copies of the vectors for the exact path (built on a namespace's second search).
  std::unique_ptr<NamespaceVectors> ns_vecs_;
  std::unique_ptr<text::Bm25Index> lex_;  // text + entity names of live records, one partition per namespace
  // A snapshot's lexical index is opened lazily (text/bm25.h: each namespace's partition is decoded on
  // first use), so a cold open costs O(namespaces) and a first query decodes one partition. A null
  // lex_ (the image was unusable) is rebuilt from LMDB by lexical() on first use.
  text::Bm25Index& lexical();
  // Feeds the texts of a namespace's live records to `add`: rebuilds a partition whose block in the
  // lexical image is bad. Caller holds state_mu_ (shared or exclusive).
  void lexical_texts(std::uint32_t ns, const text::Bm25Index::AddDoc& add);
  std::mutex lex_mu_;
  std::atomic<std::uint64_t> applied_seq_{0};
  std::atomic<std::uint64_t> snapshot_seq_{0};

  // Vectors committed but not yet in the graph. Searched exactly (so a write is searchable as soon as
  // it returns) while the indexer thread inserts them; the graph has one writer, that thread (or a
  // drain), serialised by graph_mu_. Guarded by state_mu_; graph_gen_ changes when vec_ is replaced.
  struct PendingVec {
    std::uint64_t id, seq;
  };
  std::vector<PendingVec> pend_;
  std::vector<float> pend_vecs_;
  std::unordered_map<std::uint64_t, std::size_t> pend_pos_;
  std::vector<std::uint64_t> graph_dead_;  // ids to remove from the graph (deleted or replaced)
  std::uint64_t graph_gen_ = 0;
  // Bumped whenever the indexer changes the graph, so a snapshot is rewritten when only the graph
  // moved on since the last one (same change sequence, more vectors indexed).
  std::atomic<std::uint64_t> graph_version_{0};
  std::uint64_t snapshot_graph_version_ = ~std::uint64_t(0);
  std::mutex graph_mu_;
  std::unique_ptr<std::thread> indexer_;
  std::mutex idx_mu_;
  std::condition_variable idx_cv_;
  bool idx_stop_ = false;

  std::unique_ptr<std::thread> checkpointer_;
  std::mutex ck_mu_;
  std::condition_variable ck_cv_;
  bool ck_stop_ = false;
};

}  // namespace recallcore::engine
