#include "engine/memory.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/errors.h"
#include "engine/keys.h"
#include "simd/dispatch.h"
#include "storage/keys.h"

namespace recallcore::engine {

using storage::get_be32;
using storage::get_be64;
using storage::id_key;
using storage::put_be32;
using storage::put_be64;
using storage::time_key;
using storage::Txn;

namespace {

constexpr std::size_t kMaxNameBytes = 256;

void check_name(const char* what, const std::string& v, bool allow_empty) {
  if (v.empty() && !allow_empty) throw InvalidArgument(std::string(what) + " must be a non-empty string");
  if (v.size() > kMaxNameBytes)
    throw InvalidArgument(std::string(what) + " is longer than " + std::to_string(kMaxNameBytes) + " bytes");
  if (v.find('\0') != std::string::npos) throw InvalidArgument(std::string(what) + " must not contain NUL characters");
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Open and close

Memory::Memory(const MemoryOptions& options) : options_(options) {
  if (options_.path.empty()) throw InvalidArgument("path must be a non-empty string");
  if (!options_.metric.empty()) hnsw::parse_metric(options_.metric);  // validate before touching disk
  hnsw::parse_storage(options_.storage);
  storage::EnvOptions eo;
  eo.path = options_.path;
  eo.readonly = options_.readonly;
  eo.durable = options_.durable;
  eo.map_size = options_.map_size;
  env_ = std::make_unique<storage::Env>(eo);
  const auto dbis = env_->open_dbis(
      {"meta", "records", "vectors", "by_ns", "by_session", "entities", "state", "changes", "names", "dedupe",
       "policies"});
  meta_ = dbis[0], records_ = dbis[1], vectors_ = dbis[2], by_ns_ = dbis[3], by_session_ = dbis[4],
  entities_ = dbis[5], state_ = dbis[6], changes_ = dbis[7], names_dbi_ = dbis[8];
  dedupe_ = dbis[9], policies_ = dbis[10];
  names_ = std::make_unique<Names>(names_dbi_);
  open_meta();

  {
    std::lock_guard sync(sync_mu_);
    std::unique_lock lock(state_mu_);
    if (!load_snapshot_locked()) rebuild_locked();
  }
  {
    std::lock_guard sync(sync_mu_);
    catch_up_locked();
  }
  indexer_ = std::make_unique<std::thread>([this] { indexer_loop(); });
  if (!options_.readonly && options_.checkpoint_every > 0)
    checkpointer_ = std::make_unique<std::thread>([this] { checkpointer_loop(); });
}

Memory::~Memory() {
  try {
    close();
  } catch (...) {
    // A destructor must not throw; close() already released what it could.
  }
}

void Memory::close() {
  if (closed_) return;
  if (forked()) throw StoreError("this store was opened in another process (before fork()); it cannot be closed here");
  if (checkpointer_) {
    {
      std::lock_guard lk(ck_mu_);
      ck_stop_ = true;
    }
    ck_cv_.notify_all();
    checkpointer_->join();
    checkpointer_.reset();
  }
  stop_indexer();
  std::exception_ptr err;
  try {
    if (!options_.readonly && env_) {
      env_->check_fork();
      write_snapshot();
    }
  } catch (...) {
    err = std::current_exception();
  }
  closed_ = true;
  {
    std::unique_lock lock(state_mu_);
    vec_.reset();
    ns_vecs_.reset();
    lex_.reset();
    rows_.clear();
    ns_ids_.clear();
  }
  env_.reset();
  if (err) std::rethrow_exception(err);
}

void Memory::ensure_open() const {
  if (closed_) throw StoreError("the store is closed");
  env_->check_fork();
}

std::uint64_t Memory::meta_u64(const Txn& txn, const char* key, std::uint64_t dflt) const {
  std::string_view v;
  if (!txn.get(meta_, key, &v)) return dflt;
  if (v.size() != 8) throw CorruptData(std::string("meta entry '") + key + "' is corrupt");
  return get_be64(v);
}

void Memory::put_meta_u64(Txn& txn, const char* key, std::uint64_t v) {
  std::string s;
  put_be64(s, v);
  txn.put(meta_, key, s);
}

void Memory::open_meta() {
  // A store remembers schema, dim, metric, embedder and token counter; a conflicting open is refused.
  auto check_or_set = [&](Txn* txn, const char* key, std::string& value, const std::string& requested,
                          const std::string& dflt, const char* what) {
    std::string_view stored;
    const bool have = env_->readonly() ? false : txn->get(meta_, key, &stored);
    if (have) {
      if (!requested.empty() && requested != stored)
        throw InvalidArgument(std::string("this store was created with ") + what + " '" + std::string(stored) +
                              "', not '" + requested + "'");
      value = std::string(stored);
    } else {
      value = requested.empty() ? dflt : requested;
      txn->put(meta_, key, value);
    }
  };
  if (env_->readonly()) {
    storage::Env::Reader r(*env_);
    auto read = [&](const char* key) {
      std::string_view v;
      return r.txn().get(meta_, key, &v) ? std::string(v) : std::string();
    };
    if (read("schema").empty()) throw StoreError("no recallcore store at " + options_.path);
    if (std::stoul(read("schema")) != kSchemaVersion)
      throw StoreError("store schema version " + read("schema") + " is not supported by this recallcore (" +
                       std::to_string(kSchemaVersion) + ")");
    dim_ = std::stoul(read("dim"));
    if (options_.dim != 0 && options_.dim != dim_)
      throw InvalidArgument("this store was created with dim " + std::to_string(dim_) + ", not " +
                            std::to_string(options_.dim));
    metric_ = read("metric");
    if (!options_.metric.empty() && options_.metric != metric_)
      throw InvalidArgument("this store was created with metric '" + metric_ + "', not '" + options_.metric + "'");
    metric_id_ = hnsw::parse_metric(metric_);
    // Read-only opens refuse a different embedder too: its vectors would not be comparable.
    const std::string stored_embedder = read("embedder");
    if (!options_.embedder.empty() && options_.embedder != stored_embedder)
      throw InvalidArgument("this store was created with embedder '" + stored_embedder + "', not '" +
                            options_.embedder + "'");
    options_.embedder = stored_embedder;
    options_.token_counter = read("token_counter");
    return;
  }
  env_->write([&](Txn& txn) {
    std::string schema, dim_s, embedder, counter;
    check_or_set(&txn, "schema", schema, "", std::to_string(kSchemaVersion), "schema");
    if (std::stoul(schema) != kSchemaVersion)
      throw StoreError("store schema version " + schema + " is not supported by this recallcore (" +
                       std::to_string(kSchemaVersion) + ")");
    check_or_set(&txn, "dim", dim_s, options_.dim ? std::to_string(options_.dim) : "", "0", "dim");
    check_or_set(&txn, "metric", metric_, options_.metric, "cosine", "metric");
    check_or_set(&txn, "embedder", embedder, options_.embedder, "", "embedder");
    check_or_set(&txn, "token_counter", counter, options_.token_counter, "estimate-cl100k", "token counter");
    dim_ = std::stoul(dim_s);
    options_.embedder = embedder;
    options_.token_counter = counter;
  });
  metric_id_ = hnsw::parse_metric(metric_);
}

// ---------------------------------------------------------------------------------------------------
// Writes

void Memory::check_vector(const float* v) const {
  if (dim_ == 0) throw InvalidArgument("this store is text-only (created without dim): vectors are not accepted");
  for (std::size_t i = 0; i < dim_; ++i)
    if (!std::isfinite(v[i])) throw InvalidArgument("vector contains NaN or infinity");
}

void Memory::validate(const NewRecord& r) const {
  check_name("namespace", r.ns, false);
  check_name("session", r.session, true);
  check_name("kind", r.kind, false);
  check_name("role", r.role, true);
  if (r.text.size() > options_.max_text_bytes)
    throw InvalidArgument("text is " + std::to_string(r.text.size()) + " bytes; the limit is " +
                          std::to_string(options_.max_text_bytes));
  if (r.summary.size() > options_.max_text_bytes)
    throw InvalidArgument("summary is longer than the limit of " + std::to_string(options_.max_text_bytes) + " bytes");
  if (r.metadata.size() > options_.max_text_bytes) throw InvalidArgument("metadata is too large");
  for (const auto& e : r.entities) check_name("entity", e, false);
  if (!std::isfinite(r.ts)) throw InvalidArgument("ts must be a finite time");
  if (!(r.importance >= 0.0f && r.importance <= 1.0f)) throw InvalidArgument("importance must be within [0, 1]");
  if (!(r.ttl >= 0.0) || std::isinf(r.ttl)) throw InvalidArgument("ttl must be a finite number of seconds >= 0");
  if (r.vector != nullptr) check_vector(r.vector);
}

void Memory::log_change(Txn& txn, std::uint64_t seq, char op, std::uint64_t id) {
  std::string v(1, op);
  put_be64(v, id);
  txn.put(changes_, id_key(seq), v, MDB_APPEND);
}

Record Memory::new_record(Txn& txn, const NewRecord& it, std::uint64_t id, double now) {
  Record r;
  r.id = id;
  r.h.ns = names_->resolve(txn, NameKind::ns, it.ns, true);
  r.h.session = it.session.empty() ? 0 : names_->resolve(txn, NameKind::session, it.session, true);
  r.h.kind = names_->resolve(txn, NameKind::kind, it.kind, true);
  r.h.role = it.role.empty() ? 0 : names_->resolve(txn, NameKind::role, it.role, true);
  r.h.ts = it.ts, r.h.created = now, r.h.updated = now;
  r.h.importance = it.importance;
  r.h.tokens_text = it.tokens_text, r.h.tokens_summary = it.tokens_summary;
  r.h.expires_at = it.ttl > 0 ? now + it.ttl : kForever;
  if (it.vector != nullptr) r.h.flags |= kHasVector;
  r.text = it.text, r.summary = it.summary, r.metadata = it.metadata, r.entities = it.entities;
  return r;
}

void Memory::put_new_record(Txn& txn, const Record& r, const float* vector, std::uint64_t seq,
                            std::vector<Pending>& changes) {
  // Ids only grow, so every new record (and its vector) appends at the end of its B-tree.
  txn.put(records_, id_key(r.id), encode_record(r), MDB_APPEND);
  if (vector != nullptr)
    txn.put(vectors_, id_key(r.id), std::string_view(reinterpret_cast<const char*>(vector), dim_ * 4), MDB_APPEND);
  put_secondary(txn, r);
  log_change(txn, seq, kOpPut, r.id);
  Pending p{seq, r.id, false, r.h, lexical_text(r), {}};
  if (vector != nullptr) p.vector.assign(vector, vector + dim_);
  changes.push_back(std::move(p));
}

void Memory::put_secondary(Txn& txn, const Record& r) {
  txn.put(by_ns_, by_ns_key(r.h.ns, r.h.ts, r.id), {});
  if (r.h.session != 0) txn.put(by_session_, by_session_key(r.h.ns, r.h.session, r.h.ts, r.id), {});
  for (const auto& e : r.entities) txn.put(entities_, entity_key(r.h.ns, e, r.id), {});
  put_dedupe(txn, r);
}

void Memory::del_secondary(Txn& txn, const Record& r) {
  txn.del(by_ns_, by_ns_key(r.h.ns, r.h.ts, r.id));
  if (r.h.session != 0) txn.del(by_session_, by_session_key(r.h.ns, r.h.session, r.h.ts, r.id));
  for (const auto& e : r.entities) txn.del(entities_, entity_key(r.h.ns, e, r.id));
  del_dedupe(txn, r);
}

std::vector<std::uint64_t> Memory::add(const std::vector<NewRecord>& items) {
  ensure_open();
  for (const auto& it : items) validate(it);
  std::vector<std::uint64_t> ids;
  const double now = now_seconds();
  write_changes([&](Txn& txn, std::uint64_t& seq, std::vector<Pending>& changes) {
    ids.clear();
    std::uint64_t next_id = meta_u64(txn, "next_id", 1);
    for (const auto& it : items) {
      if (it.dedupe != NewRecord::Dedupe::keep && it.supersedes == 0) {
        // Duplicates on write (engine/dedupe.cpp): the same transaction sees earlier items of the batch.
        const std::uint32_t dns = names_->resolve(txn, NameKind::ns, it.ns, true);
        const std::uint32_t dkind = names_->resolve(txn, NameKind::kind, it.kind, true);
        if (const std::uint64_t dup = find_duplicate(txn, it, dns, dkind); dup != 0) {
          ids.push_back(dup);
          if (it.dedupe == NewRecord::Dedupe::skip) continue;
          std::string_view eb;
          txn.get(records_, id_key(dup), &eb);
          Record e = decode_record(dup, eb);
          del_secondary(txn, e);
          e.h.ts = std::min(e.h.ts, it.ts);
          e.h.importance = std::max(e.h.importance, it.importance);
          e.h.repeats += 1;
          if (it.ttl > 0 && e.h.expires_at != kForever) e.h.expires_at = std::max(e.h.expires_at, now + it.ttl);
          for (const auto& en : it.entities)
            if (std::none_of(e.entities.begin(), e.entities.end(),
                             [&](const std::string& x) { return entity_norm(x) == entity_norm(en); }))
              e.entities.push_back(en);
          e.h.updated = now;
          txn.put(records_, id_key(dup), encode_record(e));
          put_secondary(txn, e);
          log_change(txn, ++seq, kOpUpdate, dup);
          changes.push_back(Pending{seq, dup, false, e.h, lexical_text(e), {}});
          continue;
        }
      }
      Record r = new_record(txn, it, next_id++, now);
      if (it.supersedes != 0) {
        // Temporal facts: the old version stops being valid when the new one starts.
        std::string_view old_bytes;
        if (!txn.get(records_, id_key(it.supersedes), &old_bytes))
          throw InvalidArgument("supersedes=" + std::to_string(it.supersedes) + ": no such record");
        Record old = decode_record(it.supersedes, old_bytes);
        if (old.h.superseded_by != 0)
          throw InvalidArgument("record " + std::to_string(it.supersedes) + " is already superseded by " +
                                std::to_string(old.h.superseded_by));
        old.h.valid_to = it.ts;
        old.h.superseded_by = r.id;
        old.h.updated = now;
        txn.put(records_, id_key(old.id), encode_record(old));
        log_change(txn, ++seq, kOpUpdate, old.id);
        r.h.valid_from = it.ts;
        r.h.supersedes = old.id;
        changes.push_back(Pending{seq, old.id, false, old.h, lexical_text(old), {}});  // vector unchanged
      }
      put_new_record(txn, r, it.vector, ++seq, changes);
      ids.push_back(r.id);
    }
    put_meta_u64(txn, "next_id", next_id);
  });
  return ids;
}

void Memory::update(std::uint64_t id, const RecordPatch& patch) {
  ensure_open();
  if (patch.importance && !(*patch.importance >= 0.0f && *patch.importance <= 1.0f))
    throw InvalidArgument("importance must be within [0, 1]");
  if (patch.ts && !std::isfinite(*patch.ts)) throw InvalidArgument("ts must be a finite time");
  if (patch.text && patch.text->size() > options_.max_text_bytes) throw InvalidArgument("text is longer than the limit");
  if (patch.kind) check_name("kind", *patch.kind, false);
  if (patch.role) check_name("role", *patch.role, true);
  if (patch.entities)
    for (const auto& e : *patch.entities) check_name("entity", e, false);
  if (patch.vector != nullptr) check_vector(patch.vector);
  const double now = now_seconds();
  write_changes([&](Txn& txn, std::uint64_t& seq, std::vector<Pending>& changes) {
    std::string_view bytes;
    if (!txn.get(records_, id_key(id), &bytes)) throw InvalidArgument("unknown record id " + std::to_string(id));
    Record r = decode_record(id, bytes);
    del_secondary(txn, r);
    if (patch.text) r.text = *patch.text;
    if (patch.summary) r.summary = *patch.summary;
    if (patch.metadata) r.metadata = *patch.metadata;
    if (patch.kind) r.h.kind = names_->resolve(txn, NameKind::kind, *patch.kind, true);
    if (patch.role) r.h.role = patch.role->empty() ? 0 : names_->resolve(txn, NameKind::role, *patch.role, true);
    if (patch.entities) r.entities = *patch.entities;
    if (patch.ts) r.h.ts = *patch.ts;
    if (patch.ttl) r.h.expires_at = *patch.ttl > 0 ? now + *patch.ttl : kForever;
    if (patch.importance) r.h.importance = *patch.importance;
    if (patch.tokens_text) r.h.tokens_text = *patch.tokens_text;
    if (patch.tokens_summary) r.h.tokens_summary = *patch.tokens_summary;
    if (patch.archived) r.h.flags = *patch.archived ? (r.h.flags | kArchived) : (r.h.flags & ~kArchived);
    r.h.updated = now;
    std::vector<float> vec;
    if (patch.vector != nullptr) {
      r.h.flags |= kHasVector;
      txn.put(vectors_, id_key(id), std::string_view(reinterpret_cast<const char*>(patch.vector), dim_ * 4));
      vec.assign(patch.vector, patch.vector + dim_);
    }  // else: the vector is unchanged and stays where it is indexed
    txn.put(records_, id_key(id), encode_record(r));
    put_secondary(txn, r);
    log_change(txn, ++seq, kOpUpdate, id);
    changes.push_back(Pending{seq, id, false, r.h, lexical_text(r), std::move(vec)});
  });
}

void Memory::remove(const std::vector<std::uint64_t>& ids) {
  ensure_open();
  write_changes([&](Txn& txn, std::uint64_t& seq, std::vector<Pending>& changes) {
    for (auto id : ids) {
      std::string_view bytes;
      if (!txn.get(records_, id_key(id), &bytes)) throw InvalidArgument("unknown record id " + std::to_string(id));
      drop_record(txn, decode_record(id, bytes), seq, changes);
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// Derived state

void Memory::write_changes(
    const std::function<void(Txn&, std::uint64_t& seq, std::vector<Pending>& changes)>& body) {
  std::lock_guard w(write_mu_);
  std::vector<Pending> changes;
  std::uint64_t seq0 = 0;
  env_->write([&](Txn& txn) {
    names_->rollback();
    changes.clear();
    seq0 = meta_u64(txn, "seq", 0);
    std::uint64_t seq = seq0;
    body(txn, seq, changes);
    put_meta_u64(txn, "seq", seq);
  });
  names_->commit();
  after_commit(seq0, std::move(changes));
}

void Memory::drop_record(Txn& txn, const Record& r, std::uint64_t& seq, std::vector<Pending>& changes) {
  del_secondary(txn, r);
  txn.del(records_, id_key(r.id));
  txn.del(vectors_, id_key(r.id));
  log_change(txn, ++seq, kOpDelete, r.id);
  changes.push_back(Pending{seq, r.id, true, r.h, {}, {}});
}

void Memory::after_commit(std::uint64_t seq0, std::vector<Pending>&& changes) {
  std::lock_guard sync(sync_mu_);
  if (applied_seq_.load() == seq0) {
    // Nobody else wrote in between: apply what we just committed without reading it back.
    std::unique_lock lock(state_mu_);
    apply_locked(changes);
    applied_seq_.store(seq0 + changes.size());
  } else {
    catch_up_locked();
  }
  if (options_.checkpoint_every > 0 && applied_seq_.load() - snapshot_seq_.load() >= options_.checkpoint_every)
    ck_cv_.notify_all();
}

void Memory::apply_locked(std::vector<Pending>& changes) {
  bool removed_any = false;
  for (auto& c : changes) {
    if (c.id >= rows_.size()) rows_.resize(std::max<std::size_t>(c.id + 1, rows_.size() * 3 / 2 + 16));
    Row& row = rows_[c.id];
    if (c.removed) {
      if (row.live) {
        drop_vector_locked(c.id);
        lexical().remove(c.id, row.h.ns);  // records never change namespace
        removed_any = true;
      }
      row.live = false;
      continue;
    }
    if (!row.live) ns_ids_[c.h.ns].push_back(c.id);
    row.h = c.h;
    row.live = true;
    lexical().add(c.h.ns, c.id, c.text);
    // Vectors go to the pending tail: searchable now (exact scan), in the graph soon (indexer).
    if (!c.vector.empty())
      queue_vector_locked(c.id, c.seq, c.vector.data());
    else if (ns_vecs_)
      ns_vecs_->update_header(c.h.ns, c.id, c.h);  // validity, archive or expiry may have changed
  }
  if (!pend_.empty() || !graph_dead_.empty()) idx_cv_.notify_one();
  // Keep namespace id lists free of dead ids once they are mostly dead (amortised O(1)).
  if (removed_any) {
    for (auto& [ns, list] : ns_ids_) {
      (void)ns;
      if (list.size() <= 64) continue;
      std::size_t dead = 0;
      for (auto id : list) dead += !rows_[id].live;
      if (dead * 2 > list.size())
        list.erase(std::remove_if(list.begin(), list.end(), [&](std::uint64_t id) { return !rows_[id].live; }), list.end());
    }
  }
}

void Memory::catch_up_locked() {
  storage::Env::Reader reader(*env_);
  Txn& txn = reader.txn();
  const std::uint64_t seq = meta_u64(txn, "seq", 0);
  std::uint64_t from = applied_seq_.load();
  if (seq == from) return;
  if (seq < from) {
    // The store went backwards (restored from a copy): our state is not derived from it.
    std::unique_lock lock(state_mu_);
    rebuild_locked();
    return;
  }
  storage::Cursor cur(txn, changes_);
  if (!cur.seek(id_key(from + 1)) || get_be64(cur.key()) != from + 1) {
    // The log no longer holds what we missed (pruned by a vacuum or forget): start over.
    std::unique_lock lock(state_mu_);
    rebuild_locked();
    return;
  }
  std::vector<Pending> changes;
  std::uint64_t last = from;
  for (bool ok = true; ok; ok = cur.next()) {
    const std::uint64_t s = get_be64(cur.key());
    if (s > seq) break;
    const char op = cur.value()[0];
    const std::uint64_t id = get_be64(cur.value(), 1);
    Pending p{s, id, op == kOpDelete, {}, {}, {}};
    std::string_view bytes;
    if (!p.removed) {
      if (!txn.get(records_, id_key(id), &bytes)) {
        p.removed = true;  // deleted later in the log; the delete entry follows
      } else {
        const Record r = decode_record(id, bytes);
        p.h = r.h;
        p.text = lexical_text(r);
        std::string_view vb;
        if ((r.h.flags & kHasVector) && txn.get(vectors_, id_key(id), &vb) && vb.size() == dim_ * 4) {
          p.vector.resize(dim_);
          std::memcpy(p.vector.data(), vb.data(), dim_ * 4);
        }
      }
    }
    changes.push_back(std::move(p));
    last = s;
  }
  std::unique_lock lock(state_mu_);
  apply_locked(changes);
  applied_seq_.store(last);
}

text::Bm25Index& Memory::lexical() {
  std::lock_guard g(lex_mu_);
  if (!lex_) {
    // The snapshot's lexical image was unusable: rebuild it from LMDB (texts of live records).
    auto fresh = std::make_unique<text::Bm25Index>();
    storage::Env::Reader reader(*env_);
    for (std::uint64_t id = 0; id < rows_.size(); ++id) {
      if (!rows_[id].live) continue;
      std::string_view bytes;
      if (reader.txn().get(records_, id_key(id), &bytes)) fresh->add(rows_[id].h.ns, id, lexical_text(decode_record(id, bytes)));
    }
    lex_ = std::move(fresh);
  }
  return *lex_;
}

void Memory::lexical_texts(std::uint32_t ns, const text::Bm25Index::AddDoc& add) {
  auto it = ns_ids_.find(ns);
  if (it == ns_ids_.end()) return;
  storage::Env::Reader reader(*env_);
  for (auto id : it->second) {
    if (id >= rows_.size() || !rows_[id].live || rows_[id].h.ns != ns) continue;
    std::string_view bytes;
    if (reader.txn().get(records_, id_key(id), &bytes)) add(id, lexical_text(decode_record(id, bytes)));
  }
}

hnsw::Config Memory::index_config() const {
  hnsw::Config c;
  c.dim = dim_ == 0 ? 1 : dim_;  // a text-only store keeps an empty index of dim 1
  c.metric = metric_id_;
  c.M = options_.M;
  c.ef_construction = options_.ef_construction;
  c.storage = hnsw::parse_storage(options_.storage);
  return c;
}

void Memory::rebuild_locked() {
  names_->clear_cache();  // a rebuild can follow another process's forget, which drops names
  {
    std::lock_guard graph(graph_mu_);  // the indexer must not be inside the graph being replaced
    vec_ = std::make_unique<hnsw::Index>(index_config());
    ++graph_gen_;
  }
  ns_vecs_ = dim_ > 0 ? std::make_unique<NamespaceVectors>(dim_, metric_id_, options_.scan_cache_bytes) : nullptr;
  pend_.clear();
  pend_vecs_.clear();
  pend_pos_.clear();
  graph_dead_.clear();
  {
    std::lock_guard g(lex_mu_);
    lex_ = std::make_unique<text::Bm25Index>();
  }
  rows_.clear();
  ns_ids_.clear();
  storage::Env::Reader reader(*env_);
  Txn& txn = reader.txn();
  const std::uint64_t seq = meta_u64(txn, "seq", 0);
  std::vector<Pending> changes;
  storage::Cursor cur(txn, records_);
  for (bool ok = cur.first(); ok; ok = cur.next()) {
    const std::uint64_t id = get_be64(cur.key());
    const Record r = decode_record(id, cur.value());
    Pending p{seq, id, false, r.h, lexical_text(r), {}};
    std::string_view vb;
    if ((r.h.flags & kHasVector) && txn.get(vectors_, id_key(id), &vb) && vb.size() == dim_ * 4) {
      p.vector.resize(dim_);
      std::memcpy(p.vector.data(), vb.data(), dim_ * 4);
    }
    changes.push_back(std::move(p));
    if (changes.size() >= 16384) {
      apply_locked(changes);
      changes.clear();
    }
  }
  apply_locked(changes);
  applied_seq_.store(seq);
}

void Memory::sync() {
  ensure_open();
  std::uint64_t seq;
  {
    storage::Env::Reader reader(*env_);
    seq = meta_u64(reader.txn(), "seq", 0);
  }
  if (seq == applied_seq_.load()) return;
  std::lock_guard sync(sync_mu_);
  catch_up_locked();
}

// ---------------------------------------------------------------------------------------------------
// Reads

RecordOut Memory::resolve(const Txn& txn, Record r) {
  RecordOut out;
  out.ns = names_->name_of(txn, NameKind::ns, r.h.ns);
  out.session = names_->name_of(txn, NameKind::session, r.h.session);
  out.kind = names_->name_of(txn, NameKind::kind, r.h.kind);
  out.role = names_->name_of(txn, NameKind::role, r.h.role);
  out.r = std::move(r);
  return out;
}

std::optional<RecordOut> Memory::get(std::uint64_t id) {
  ensure_open();
  storage::Env::Reader reader(*env_);
  std::string_view bytes;
  if (!reader.txn().get(records_, id_key(id), &bytes)) return std::nullopt;
  hints_.remember(id, bytes);
  return resolve(reader.txn(), decode_record(id, bytes));
}

std::vector<RecordOut> Memory::get_many(const std::vector<std::uint64_t>& ids) {
  ensure_open();
  storage::Env::Reader reader(*env_);
  std::vector<RecordOut> out;
  out.reserve(ids.size());
  hints_.visit(ids, [](std::uint64_t id) { return id; }, [&](std::uint64_t id) {
    std::string_view bytes;
    if (!reader.txn().get(records_, id_key(id), &bytes)) throw InvalidArgument("unknown record id " + std::to_string(id));
    hints_.remember(id, bytes);
    out.push_back(resolve(reader.txn(), decode_record(id, bytes)));
  });
  return out;
}

std::vector<std::vector<float>> Memory::get_vectors(const std::vector<std::uint64_t>& ids) {
  ensure_open();
  storage::Env::Reader reader(*env_);
  std::vector<std::vector<float>> out(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    std::string_view bytes;
    if (!reader.txn().get(records_, id_key(ids[i]), &bytes))
      throw InvalidArgument("unknown record id " + std::to_string(ids[i]));
    std::string_view vb;
    if (dim_ > 0 && reader.txn().get(vectors_, id_key(ids[i]), &vb) && vb.size() == dim_ * 4) {
      out[i].resize(dim_);
      std::memcpy(out[i].data(), vb.data(), dim_ * 4);
    }
  }
  return out;
}

std::vector<std::string> Memory::namespaces() {
  ensure_open();
  storage::Env::Reader reader(*env_);
  std::vector<std::string> out;
  for (auto& [id, name] : names_->all(reader.txn(), NameKind::ns)) out.push_back(std::move(name));
  std::sort(out.begin(), out.end());
  return out;
}

bool Memory::time_index(const Txn& txn, const std::string& ns, const std::optional<std::string>& session,
                        std::string* prefix, MDB_dbi* dbi) {
  const std::uint32_t nsid = names_->find(txn, NameKind::ns, ns);
  if (nsid == 0) return false;
  *prefix = ns_prefix(nsid);
  *dbi = by_ns_;
  if (session) {
    const std::uint32_t sid = names_->find(txn, NameKind::session, *session);
    if (sid == 0) return false;
    put_be32(*prefix, sid);
    *dbi = by_session_;
  }
  return true;
}

namespace {
// Positions `cur` on the newest key of `prefix`'s range with a time before `until`; false when none.
bool seek_newest_before(storage::Cursor& cur, const std::string& prefix, double until) {
  std::string end = prefix;
  put_be64(end, time_key(until));
  const bool ok = cur.seek(end) ? cur.prev() : cur.last();
  return ok && starts_with(cur.key(), prefix);
}
}  // namespace

std::vector<RecordOut> Memory::history(const std::string& ns, const std::optional<std::string>& session,
                                       std::size_t last, double since, double until) {
  ensure_open();
  storage::Env::Reader reader(*env_);
  Txn& txn = reader.txn();
  std::vector<RecordOut> out;
  std::string prefix;
  MDB_dbi dbi;
  if (!time_index(txn, ns, session, &prefix, &dbi)) return out;
  const std::size_t tpos = prefix.size();
  storage::Cursor cur(txn, dbi);
  std::vector<std::uint64_t> ids;
  if (last > 0) {
    // Newest first from the end of the range, then reversed into time order.
    for (bool ok = seek_newest_before(cur, prefix, until); ok && starts_with(cur.key(), prefix) && ids.size() < last;
         ok = cur.prev()) {
      const double t = storage::time_from_key(get_be64(cur.key(), tpos));
      if (t < since) break;
      if (t >= until) continue;
      ids.push_back(get_be64(cur.key(), tpos + 8));
    }
    std::reverse(ids.begin(), ids.end());
  } else {
    std::string start = prefix;
    put_be64(start, time_key(since));
    for (bool ok = cur.seek(start); ok && starts_with(cur.key(), prefix); ok = cur.next()) {
      const double t = storage::time_from_key(get_be64(cur.key(), tpos));
      if (t >= until) break;
      ids.push_back(get_be64(cur.key(), tpos + 8));
    }
  }
  for (auto id : ids) {
    std::string_view bytes;
    if (txn.get(records_, id_key(id), &bytes)) out.push_back(resolve(txn, decode_record(id, bytes)));
  }
  return out;
}

std::vector<RecordOut> Memory::recent_of_kind(const std::string& ns, const std::optional<std::string>& session,
                                              const std::string& kind, std::size_t n,
                                              const std::unordered_set<std::uint64_t>& skip) {
  ensure_open();
  storage::Env::Reader reader(*env_);
  Txn& txn = reader.txn();
  std::vector<RecordOut> out;
  const std::uint32_t kid = names_->find(txn, NameKind::kind, kind);
  std::string prefix;
  MDB_dbi dbi;
  if (kid == 0 || n == 0 || !time_index(txn, ns, session, &prefix, &dbi)) return out;
  const std::size_t tpos = prefix.size();
  storage::Cursor cur(txn, dbi);
  // Newest first; only the header is decoded until a record qualifies.
  for (bool ok = seek_newest_before(cur, prefix, kForever); ok && starts_with(cur.key(), prefix) && out.size() < n;
       ok = cur.prev()) {
    const std::uint64_t id = get_be64(cur.key(), tpos + 8);
    std::string_view bytes;
    if (skip.count(id) || !txn.get(records_, id_key(id), &bytes)) continue;
    const RecordHeader h = decode_header(bytes);
    if (h.kind != kid || (h.flags & kArchived)) continue;
    hints_.remember(id, bytes);
    out.push_back(resolve(txn, decode_record(id, bytes)));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

ListPage Memory::list(const std::string& ns, const std::optional<std::string>& kind, double since, double until,
                      std::size_t limit, const std::string& cursor) {
  ensure_open();
  if (limit == 0) throw InvalidArgument("limit must be > 0");
  storage::Env::Reader reader(*env_);
  Txn& txn = reader.txn();
  ListPage page;
  const std::uint32_t nsid = names_->find(txn, NameKind::ns, ns);
  if (nsid == 0) return page;
  std::uint32_t kid = 0;
  if (kind) {
    kid = names_->find(txn, NameKind::kind, *kind);
    if (kid == 0) return page;
  }
  const std::string prefix = ns_prefix(nsid);
  std::string start;
  if (!cursor.empty()) {
    // The cursor is the hex of the last key returned; resume strictly after it.
    if (cursor.size() != 40) throw InvalidArgument("invalid cursor");
    start = prefix;
    for (std::size_t i = 0; i < 16; ++i) {
      const std::string byte = cursor.substr(8 + 2 * i, 2);
      char* end = nullptr;
      const long v = std::strtol(byte.c_str(), &end, 16);
      if (end != byte.c_str() + 2) throw InvalidArgument("invalid cursor");
      start.push_back(char(v));
    }
    start.push_back('\0');
  } else {
    start = prefix;
    put_be64(start, time_key(since));
  }
  storage::Cursor cur(txn, by_ns_);
  std::string last_key;
  for (bool ok = cur.seek(start); ok && starts_with(cur.key(), prefix); ok = cur.next()) {
    const double t = storage::time_from_key(get_be64(cur.key(), 4));
    if (t >= until) break;
    if (t < since) continue;
    const std::uint64_t id = get_be64(cur.key(), 12);
    std::string_view bytes;
    if (!txn.get(records_, id_key(id), &bytes)) continue;
    Record r = decode_record(id, bytes);
    if (kind && r.h.kind != kid) continue;
    if (page.records.size() == limit) {
      static const char* hex = "0123456789abcdef";
      for (unsigned char c : last_key) {
        page.next_cursor.push_back(hex[c >> 4]);
        page.next_cursor.push_back(hex[c & 15]);
      }
      break;
    }
    page.records.push_back(resolve(txn, std::move(r)));
    last_key = std::string(cur.key().substr(0, 20));
  }
  return page;
}

std::vector<std::uint64_t> Memory::entity_record_ids(const Txn& txn, std::uint32_t ns, const std::string& name) {
  std::string prefix = ns_prefix(ns);
  prefix.append(entity_norm(name));
  prefix.push_back('\0');
  std::vector<std::uint64_t> ids;
  storage::Cursor cur(txn, entities_);
  for (bool ok = cur.seek(prefix); ok && starts_with(cur.key(), prefix) && cur.key().size() == prefix.size() + 8;
       ok = cur.next())
    ids.push_back(get_be64(cur.key(), prefix.size()));
  return ids;
}

std::vector<RecordOut> Memory::entity(const std::string& ns, const std::string& name) {
  ensure_open();
  storage::Env::Reader reader(*env_);
  Txn& txn = reader.txn();
  std::vector<RecordOut> out;
  const std::uint32_t nsid = names_->find(txn, NameKind::ns, ns);
  if (nsid == 0) return out;
  for (auto id : entity_record_ids(txn, nsid, name)) {
    std::string_view bytes;
    if (txn.get(records_, id_key(id), &bytes)) out.push_back(resolve(txn, decode_record(id, bytes)));
  }
  std::stable_sort(out.begin(), out.end(), [](const RecordOut& a, const RecordOut& b) {
    return a.r.h.ts < b.r.h.ts || (a.r.h.ts == b.r.h.ts && a.r.id < b.r.id);
  });
  return out;
}

std::vector<RecordOut> Memory::select_kinds(const std::string& ns, const std::vector<std::string>& kinds,
                                            double valid_at, double now, bool include_history, std::size_t limit) {
  ensure_open();
  sync();
  std::shared_lock lock(state_mu_);
  storage::Env::Reader reader(*env_);
  Txn& txn = reader.txn();
  std::vector<RecordOut> out;
  const std::uint32_t nsid = names_->find(txn, NameKind::ns, ns);
  if (nsid == 0) return out;
  std::vector<std::uint32_t> kids;
  for (const auto& k : kinds)
    if (std::uint32_t id = names_->find(txn, NameKind::kind, k)) kids.push_back(id);
  auto it = ns_ids_.find(nsid);
  if (kids.empty() || it == ns_ids_.end()) return out;
  std::vector<std::pair<double, std::uint64_t>> picked;
  const Visibility vis{valid_at, now, include_history, false};
  for (auto id : it->second) {
    const Row& r = rows_[id];
    if (!r.live || std::find(kids.begin(), kids.end(), r.h.kind) == kids.end() || !vis.admits(r.h)) continue;
    picked.emplace_back(r.h.ts, id);
  }
  std::sort(picked.begin(), picked.end());
  if (picked.size() > limit) picked.erase(picked.begin(), picked.end() - long(limit));  // keep the newest
  using Picked = std::pair<double, std::uint64_t>;
  hints_.visit(picked, [](const Picked& p) { return p.second; }, [&](const Picked& p) {
    std::string_view bytes;
    if (!txn.get(records_, id_key(p.second), &bytes)) return;
    hints_.remember(p.second, bytes);
    out.push_back(resolve(txn, decode_record(p.second, bytes)));
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------
// State: small JSON values per namespace, written transactionally

std::optional<std::string> Memory::state_get(const std::string& ns, const std::string& key) {
  ensure_open();
  storage::Env::Reader reader(*env_);
  const std::uint32_t nsid = names_->find(reader.txn(), NameKind::ns, ns);
  if (nsid == 0) return std::nullopt;
  std::string_view v;
  if (!reader.txn().get(state_, state_key(nsid, key), &v)) return std::nullopt;
  return std::string(v);
}

void Memory::state_set(const std::string& ns, const std::string& key, const std::string& json) {
  ensure_open();
  check_name("namespace", ns, false);
  if (key.empty() || key.size() > 480) throw InvalidArgument("state key must be 1..480 bytes");
  if (json.size() > options_.max_text_bytes) throw InvalidArgument("state value is too large");
  std::lock_guard w(write_mu_);
  env_->write([&](Txn& txn) {
    names_->rollback();
    const std::uint32_t nsid = names_->resolve(txn, NameKind::ns, ns, true);
    txn.put(state_, state_key(nsid, key), json);
  });
  names_->commit();
}

bool Memory::state_delete(const std::string& ns, const std::string& key) {
  ensure_open();
  bool found = false;
  std::lock_guard w(write_mu_);
  env_->write([&](Txn& txn) {
    const std::uint32_t nsid = names_->find(txn, NameKind::ns, ns);
    found = nsid != 0 && txn.del(state_, state_key(nsid, key));
  });
  return found;
}

std::vector<std::pair<std::string, std::string>> Memory::state_items(const std::string& ns) {
  ensure_open();
  storage::Env::Reader reader(*env_);
  std::vector<std::pair<std::string, std::string>> out;
  const std::uint32_t nsid = names_->find(reader.txn(), NameKind::ns, ns);
  if (nsid == 0) return out;
  const std::string prefix = ns_prefix(nsid);
  storage::Cursor cur(reader.txn(), state_);
  for (bool ok = cur.seek(prefix); ok && starts_with(cur.key(), prefix); ok = cur.next())
    out.emplace_back(std::string(cur.key().substr(4)), std::string(cur.value()));
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Snapshots

void Memory::checkpoint() {
  ensure_open();
  if (options_.readonly) throw StoreError("the store is open read-only");
  write_snapshot();
}

void Memory::checkpointer_loop() {
  std::unique_lock lk(ck_mu_);
  while (!ck_stop_) {
    ck_cv_.wait_for(lk, std::chrono::seconds(5));
    if (ck_stop_) break;
    if (applied_seq_.load() - snapshot_seq_.load() < options_.checkpoint_every) continue;
    lk.unlock();
    try {
      write_snapshot();
    } catch (...) {
      // A failed background snapshot is harmless: the next open rebuilds or catches up.
    }
    lk.lock();
  }
}

Memory::Consistency Memory::verify() {
  ensure_open();
  sync();
  drain_pending();
  Consistency c;
  std::shared_lock lock(state_mu_);
  storage::Env::Reader reader(*env_);
  std::vector<char> seen(rows_.size(), 0);
  std::uint64_t with_vector = 0;
  storage::Cursor cur(reader.txn(), records_);
  for (bool ok = cur.first(); ok; ok = cur.next()) {
    const std::uint64_t id = get_be64(cur.key());
    const RecordHeader h = decode_header(cur.value());
    ++c.lmdb_records;
    if (id >= rows_.size() || !rows_[id].live) {
      ++c.missing_in_state;
      continue;
    }
    seen[id] = 1;
    if (h.flags & kHasVector) {
      ++with_vector;
      if (!vec_->contains(id) && !pend_pos_.count(id)) ++c.missing_vectors;
    }
  }
  for (std::uint64_t id = 0; id < rows_.size(); ++id)
    if (rows_[id].live && !seen[id]) ++c.extra_in_state;
  std::uint64_t in_index = pend_.size();
  for (auto id : vec_->ids())
    if (!pend_pos_.count(id)) ++in_index;
  if (in_index > with_vector - c.missing_vectors) c.extra_vectors = in_index - (with_vector - c.missing_vectors);
  if (ns_vecs_) {
    // The scan copies must hold exactly the live vectors of their namespace, as in LMDB: bit for bit,
    // or for cosine the same direction (the graph keeps cosine vectors normalised, and a copy may
    // come from there or from the write itself).
    std::unordered_map<std::uint32_t, std::size_t> held;
    std::vector<float> stored(dim_);
    ns_vecs_->visit([&](std::uint32_t ns, std::uint64_t id, const float* copy, const NamespaceVectors::Mirror& m) {
      ++held[ns];
      std::string_view vb;
      bool ok = id < rows_.size() && rows_[id].live && rows_[id].h.ns == ns && (rows_[id].h.flags & kHasVector) &&
                reader.txn().get(vectors_, id_key(id), &vb) && vb.size() == dim_ * sizeof(float);
      if (ok) {  // the mirrored header fields a plain query reads instead of the table
        const RecordHeader& h = rows_[id].h;
        ok = m.valid_from == h.valid_from && m.valid_to == h.valid_to && m.expires_at == h.expires_at &&
             m.archived == ((h.flags & kArchived) != 0);
      }
      if (ok && std::memcmp(vb.data(), copy, vb.size()) != 0) {
        std::memcpy(stored.data(), vb.data(), vb.size());
        const auto& kt = simd::active();
        ok = metric_id_ == simd::Metric::cosine &&
             kt.f32[int(simd::Metric::cosine)](stored.data(), copy, dim_) <= 1e-5f;
      }
      c.scan_copy_mismatches += !ok;
    });
    for (const auto& [ns, n] : held) {
      std::size_t want = 0;
      if (auto it = ns_ids_.find(ns); it != ns_ids_.end())
        for (auto id : it->second) want += rows_[id].live && (rows_[id].h.flags & kHasVector);
      c.scan_copy_mismatches += want > n ? want - n : 0;
    }
  }
  return c;
}

Stats Memory::stats() {
  ensure_open();
  sync();
  Stats s;
  s.dim = dim_;
  s.metric = metric_;
  s.embedder = options_.embedder;
  s.token_counter = options_.token_counter;
  s.storage = options_.storage;
  s.file_bytes = env_->file_bytes();
  s.map_bytes = env_->map_size();
  s.seq = applied_seq_.load();
  s.snapshot_seq = snapshot_seq_.load();
  std::shared_lock lock(state_mu_);
  s.pending_vectors = pend_.size();
  s.indexed_vectors = vec_->size();
  s.index_bytes = vec_->stats().memory_bytes;
  if (ns_vecs_) s.scan_cache = ns_vecs_->usage();
  s.lexical_docs = lexical().size();
  std::unordered_map<std::uint64_t, std::uint64_t> counts;  // ns << 32 | kind
  for (const auto& [ns, ids] : ns_ids_) {
    (void)ns;
    for (auto id : ids) {
      if (!rows_[id].live) continue;
      ++counts[(std::uint64_t(rows_[id].h.ns) << 32) | rows_[id].h.kind];
      s.vectors += (rows_[id].h.flags & kHasVector) != 0;
    }
  }
  storage::Env::Reader reader(*env_);
  for (const auto& [key, n] : counts) {
    s.records += n;
    s.counts[names_->name_of(reader.txn(), NameKind::ns, std::uint32_t(key >> 32))]
            [names_->name_of(reader.txn(), NameKind::kind, std::uint32_t(key))] += n;
  }
  return s;
}

}  // namespace recallcore::engine
