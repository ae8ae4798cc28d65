// Forgetting on purpose and deleting for real (issue 7): right-to-be-forgotten deletes, its
// verification, vacuuming, archiving, compaction commits, retention policies and expiry.
//
// A forget is one LMDB transaction that removes the records and every key derived from them, and
// truncates the change log: log entries carry only ids, but an id still says "this existed", and a
// process that missed the forget must rebuild anyway (its indexes hold the forgotten data), which the
// missing log prefix forces (catch_up_locked rebuilds when the log does not reach back far enough).
// The in-memory indexes are then rebuilt from LMDB rather than patched, because both leave traces
// when patched: HNSW tombstones keep a removed vector's bytes until the slot is reused, and the BM25
// term dictionary keeps every term ever seen. A fresh snapshot then replaces every snapshot file.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <unordered_set>

#include "common/errors.h"
#include "engine/keys.h"
#include "engine/memory.h"
#include "engine/retention.h"
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

// Deletes every key of `dbi` that starts with `prefix`; returns how many.
std::uint64_t del_prefix(Txn& txn, MDB_dbi dbi, std::string_view prefix) {
  std::uint64_t n = 0;
  storage::Cursor cur(txn, dbi);
  // An empty prefix (LMDB rejects empty keys) means the whole table.
  auto start = [&] { return prefix.empty() ? cur.first() : cur.seek(prefix); };
  bool ok = start();
  while (ok && cur.key().substr(0, prefix.size()) == prefix) {
    cur.del();
    ++n;
    // Re-position rather than rely on where MDB_cursor_del leaves the cursor.
    ok = start();
  }
  return n;
}

std::string policy_key(const std::string& ns, const std::string& kind) { return ns + std::string(1, '\0') + kind; }

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Right to be forgotten

std::uint64_t Memory::forget(const ForgetQuery& q) {
  ensure_open();
  if (options_.readonly) throw StoreError("the store is open read-only");
  if (!q.ns && q.ids.empty()) throw InvalidArgument("forget needs a namespace or ids (refusing to forget everything)");
  if (q.before && !std::isfinite(*q.before)) throw InvalidArgument("before must be a finite time");
  const bool whole_ns = q.ns && q.ids.empty() && !q.session && !q.before && q.kinds.empty();
  std::lock_guard w(write_mu_);
  // Held until the indexes are rebuilt: no snapshot of the pre-forget state may be written once the
  // old snapshot files are gone (the background checkpointer takes this lock too).
  std::unique_lock sync(sync_mu_);
  std::uint64_t removed = 0;
  bool changed = false;
  std::vector<std::pair<NameKind, std::uint32_t>> dropped_names;
  env_->write([&](Txn& txn) {
    removed = 0;
    changed = false;
    dropped_names.clear();
    const std::uint32_t nsid = q.ns ? names_->find(txn, NameKind::ns, *q.ns) : 0;
    if (q.ns && nsid == 0) {
      // Nothing stored under that name, but a policy may still name it.
      if (whole_ns) {
        std::vector<std::string> keys;
        storage::Cursor cur(txn, policies_);
        const std::string p = *q.ns + std::string(1, '\0');
        for (bool ok = cur.seek(p); ok && cur.key().substr(0, p.size()) == p; ok = cur.next())
          keys.emplace_back(cur.key());
        for (const auto& k : keys) txn.del(policies_, k);
        changed = !keys.empty();
      }
      return;
    }
    std::uint32_t sid = 0;
    if (q.session) {
      sid = names_->find(txn, NameKind::session, *q.session);
      if (sid == 0) return;
    }
    std::vector<std::uint32_t> kinds;
    for (const auto& k : q.kinds)
      if (const auto kid = names_->find(txn, NameKind::kind, k); kid != 0) kinds.push_back(kid);
    if (!q.kinds.empty() && kinds.empty()) return;

    std::vector<std::uint64_t> targets;
    if (!q.ids.empty()) {
      targets = q.ids;
    } else {
      std::string prefix = ns_prefix(nsid);
      MDB_dbi dbi = by_ns_;
      if (sid != 0) {
        put_be32(prefix, sid);
        dbi = by_session_;
      }
      storage::Cursor cur(txn, dbi);
      for (bool ok = cur.seek(prefix); ok && cur.key().substr(0, prefix.size()) == prefix; ok = cur.next())
        targets.push_back(get_be64(cur.key(), prefix.size() + 8));
    }
    std::sort(targets.begin(), targets.end());
    targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
    std::set<std::uint32_t> sessions;
    for (const auto id : targets) {
      std::string_view bytes;
      if (!txn.get(records_, id_key(id), &bytes)) continue;  // unknown ids are ignored: forgetting is idempotent
      const Record r = decode_record(id, bytes);
      if (q.ns && r.h.ns != nsid) continue;
      if (sid != 0 && r.h.session != sid) continue;
      if (q.before && !(r.h.ts < *q.before)) continue;
      if (!kinds.empty() && std::find(kinds.begin(), kinds.end(), r.h.kind) == kinds.end()) continue;
      del_secondary(txn, r);
      txn.del(records_, id_key(id));
      txn.del(vectors_, id_key(id));
      if (r.h.session != 0) sessions.insert(r.h.session);
      ++removed;
    }
    if (whole_ns) {
      // Stragglers of any kind (keys whose record is gone) and the namespace's state and policies.
      const std::string p = ns_prefix(nsid);
      for (MDB_dbi dbi : {by_ns_, by_session_, entities_, state_, dedupe_}) del_prefix(txn, dbi, p);
      del_prefix(txn, policies_, *q.ns + std::string(1, '\0'));
      // Session names used by no other namespace go too (by_session keys are namespace · session · ...).
      storage::Cursor cur(txn, by_session_);
      for (bool ok = cur.first(); ok; ok = cur.next()) sessions.erase(get_be32(cur.key(), 4));
      for (auto s : sessions) {
        names_->forget(txn, NameKind::session, s);
        dropped_names.emplace_back(NameKind::session, s);
      }
      names_->forget(txn, NameKind::ns, nsid);
      dropped_names.emplace_back(NameKind::ns, nsid);
      changed = true;
    }
    if (removed == 0 && !changed) return;
    changed = true;
    // Truncate the change log (see the file comment), then move the sequence on so other processes
    // notice; `forget_seq` records where the truncated log ended, for verify_forgotten.
    del_prefix(txn, changes_, {});
    const std::uint64_t seq = meta_u64(txn, "seq", 0) + 1;
    put_meta_u64(txn, "seq", seq);
    put_meta_u64(txn, "forget_seq", seq);
    // The snapshot files hold the forgotten rows, vectors and terms: they go before the commit, so a
    // crash right after it leaves no stale snapshot (the next open rebuilds from LMDB).
    for (const char* f : {"snapshot.rc", "vectors.idx", "lexical.idx", "snapshot.rc.tmp", "vectors.idx.tmp",
                          "lexical.idx.tmp"}) {
      std::error_code ec;
      std::filesystem::remove(std::filesystem::path(options_.path) / f, ec);
    }
  });
  for (const auto& [kind, id] : dropped_names) names_->drop_cached(kind, id);
  if (!changed) return removed;
  {
    std::unique_lock lock(state_mu_);
    rebuild_locked();
  }
  sync.unlock();
  write_snapshot();
  return removed;
}

std::uint64_t Memory::verify_forgotten(const std::string& ns) {
  ensure_open();
  // Snapshot first (it catches up): the files then describe the same state as LMDB, so a row or vector
  // in them without a record is a real leftover, not just a snapshot older than some later delete.
  sync();
  drain_pending();  // deleted ids leave the graph lazily (the indexer); settle that first
  if (!options_.readonly) write_snapshot();
  std::uint64_t refs = 0;
  storage::Env::Reader reader(*env_);
  Txn& txn = reader.txn();
  // From the table itself, not the cache: the point is what is on disk.
  std::uint32_t nsid = 0;
  std::unordered_set<std::uint32_t> named;
  for (const auto& [id, name] : names_->all(txn, NameKind::ns)) {
    named.insert(id);
    if (name == ns) nsid = id;
  }
  refs += nsid != 0;
  // A reference is anything under the namespace's id, or under a namespace id that has no name any
  // more (what a forgotten namespace's leftovers would look like once its name is gone).
  auto bad = [&](std::uint32_t id) { return (nsid != 0 && id == nsid) || named.count(id) == 0; };
  std::unordered_set<std::uint64_t> records;
  {
    storage::Cursor cur(txn, records_);
    for (bool ok = cur.first(); ok; ok = cur.next()) {
      const RecordHeader h = decode_header(cur.value());
      if (bad(h.ns)) ++refs;
      records.insert(get_be64(cur.key()));
    }
  }
  {
    storage::Cursor cur(txn, vectors_);
    for (bool ok = cur.first(); ok; ok = cur.next()) refs += records.count(get_be64(cur.key())) == 0;
  }
  for (MDB_dbi dbi : {by_ns_, by_session_, entities_, state_, dedupe_}) {
    storage::Cursor cur(txn, dbi);
    for (bool ok = cur.first(); ok; ok = cur.next()) refs += bad(get_be32(cur.key()));
  }
  {
    const std::string p = ns + std::string(1, '\0');
    storage::Cursor cur(txn, policies_);
    for (bool ok = cur.seek(p); ok && cur.key().substr(0, p.size()) == p; ok = cur.next()) ++refs;
  }
  {
    // The log before the last forget must be gone.
    const std::uint64_t fseq = meta_u64(txn, "forget_seq", 0);
    storage::Cursor cur(txn, changes_);
    for (bool ok = cur.first(); ok && get_be64(cur.key()) <= fseq; ok = cur.next()) ++refs;
  }
  {
    std::shared_lock lock(state_mu_);
    for (std::uint64_t id = 0; id < rows_.size(); ++id)
      if (rows_[id].live && (bad(rows_[id].h.ns) || records.count(id) == 0)) ++refs;
    // Tombstones are not counted: forget rebuilds the index, so any left are from later deletes.
    for (auto id : vec_->ids()) refs += records.count(id) == 0;
    for (const auto& p : pend_) refs += records.count(p.id) == 0;
    text::Bm25Index& lex = lexical();
    for (auto p : lex.partitions())
      if (bad(p)) refs += lex.partition_size(p);
  }
  // The snapshot files (each checked by what it is: rows by namespace, vectors by id).
  const std::filesystem::path dir(options_.path);
  snapshot_refs([&](std::uint64_t id, std::optional<std::uint32_t> in_ns) {
    refs += (in_ns && bad(*in_ns)) || records.count(id) == 0;
  });
  {
    std::ifstream f(dir / "lexical.idx", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (bytes.size() > 8) {
      try {
        const auto lex = text::Bm25Index::deserialize(std::string_view(bytes).substr(8));
        for (auto p : lex.partitions())
          if (bad(p)) refs += lex.partition_size(p);
      } catch (const std::exception&) {
        ++refs;  // unreadable: cannot be shown clean
      }
    }
  }
  if (dim_ > 0 && std::filesystem::exists(dir / "vectors.idx")) {
    try {
      const auto idx = hnsw::Index::load((dir / "vectors.idx").string());
      for (auto id : idx->ids()) refs += records.count(id) == 0;
    } catch (const std::exception&) {
      ++refs;
    }
  }
  return refs;
}

void Memory::vacuum(const std::string& dest_dir) {
  ensure_open();
  if (dest_dir.empty()) throw InvalidArgument("vacuum needs a destination directory");
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::path(dest_dir) / "data.mdb", ec))
    throw InvalidArgument("vacuum destination " + dest_dir + " already holds a store");
  if (std::filesystem::equivalent(dest_dir, options_.path, ec))
    throw InvalidArgument("vacuum destination must differ from the store's own directory");
  env_->copy_compacted(dest_dir);
}

// ---------------------------------------------------------------------------------------------------
// Archiving and compaction

void Memory::set_archived(const std::vector<std::uint64_t>& ids, bool archived) {
  ensure_open();
  const double now = now_seconds();
  write_changes([&](Txn& txn, std::uint64_t& seq, std::vector<Pending>& changes) {
    for (auto id : ids) {
      std::string_view bytes;
      if (!txn.get(records_, id_key(id), &bytes)) throw InvalidArgument("unknown record id " + std::to_string(id));
      Record r = decode_record(id, bytes);
      r.h.flags = archived ? (r.h.flags | kArchived) : (r.h.flags & ~kArchived);
      r.h.updated = now;
      txn.put(records_, id_key(id), encode_record(r));
      log_change(txn, ++seq, kOpUpdate, id);
      changes.push_back(Pending{seq, id, false, r.h, lexical_text(r), {}});  // the indexed vector is unchanged
    }
  });
}

std::vector<std::uint64_t> Memory::compact_commit(const std::vector<CompactGroup>& groups, bool drop) {
  ensure_open();
  for (const auto& g : groups) {
    validate(g.summary);
    if (g.sources.empty()) throw InvalidArgument("a compaction group needs at least one source");
  }
  std::vector<std::uint64_t> out;
  const double now = now_seconds();
  write_changes([&](Txn& txn, std::uint64_t& seq, std::vector<Pending>& changes) {
    out.clear();
    std::uint64_t next_id = meta_u64(txn, "next_id", 1);
    for (const auto& g : groups) {
      const NewRecord& it = g.summary;
      Record r = new_record(txn, it, next_id++, now);
      r.sources = g.sources;
      for (auto sid : g.sources) {
        std::string_view bytes;
        if (!txn.get(records_, id_key(sid), &bytes)) throw InvalidArgument("unknown source id " + std::to_string(sid));
        Record s = decode_record(sid, bytes);
        if (s.h.ns != r.h.ns) throw InvalidArgument("source " + std::to_string(sid) + " is in another namespace");
        if (drop) {
          drop_record(txn, s, seq, changes);
        } else {
          s.h.flags |= kArchived;
          s.h.updated = now;
          txn.put(records_, id_key(sid), encode_record(s));
          log_change(txn, ++seq, kOpUpdate, sid);
          changes.push_back(Pending{seq, sid, false, s.h, lexical_text(s), {}});
        }
      }
      put_new_record(txn, r, it.vector, ++seq, changes);
      out.push_back(r.id);
    }
    put_meta_u64(txn, "next_id", next_id);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Retention

void Memory::policy_put(const std::string& ns, const std::string& kind, const std::string& value) {
  ensure_open();
  if (ns.find('\0') != std::string::npos || kind.find('\0') != std::string::npos)
    throw InvalidArgument("policy namespace and kind must not contain NUL characters");
  if (ns.size() + kind.size() + 1 > 480) throw InvalidArgument("policy namespace/kind are too long");
  std::lock_guard w(write_mu_);
  env_->write([&](Txn& txn) {
    if (value.empty()) txn.del(policies_, policy_key(ns, kind));
    else txn.put(policies_, policy_key(ns, kind), value);
  });
}

std::vector<std::pair<std::string, std::string>> Memory::policy_items() {
  ensure_open();
  storage::Env::Reader reader(*env_);
  std::vector<std::pair<std::string, std::string>> out;
  storage::Cursor cur(reader.txn(), policies_);
  for (bool ok = cur.first(); ok; ok = cur.next()) out.emplace_back(std::string(cur.key()), std::string(cur.value()));
  return out;
}

std::uint64_t Memory::prune_log() {
  ensure_open();
  if (options_.readonly) throw StoreError("the store is open read-only");
  write_snapshot();
  const std::uint64_t upto = snapshot_seq_.load();
  std::uint64_t n = 0;
  std::lock_guard w(write_mu_);
  env_->write([&](Txn& txn) {
    n = 0;
    storage::Cursor cur(txn, changes_);
    while (cur.first() && get_be64(cur.key()) <= upto) {
      cur.del();
      ++n;
    }
  });
  return n;
}

double Memory::retention_score(std::uint64_t id, double now, double half_life) {
  ensure_open();
  std::shared_lock lock(state_mu_);
  if (id >= rows_.size() || !rows_[id].live) return std::nan("");
  auto& row = const_cast<Row&>(rows_[id]);
  return engine::retention_score(row.h, std::atomic_ref<std::uint32_t>(row.accesses).load(std::memory_order_relaxed),
                                 std::atomic_ref<double>(row.last_access).load(std::memory_order_relaxed), now,
                                 half_life);
}

Memory::ExpireReport Memory::expire(double now, const std::vector<RetentionPolicy>& policies) {
  ensure_open();
  if (!std::isfinite(now)) throw InvalidArgument("now must be a finite time");
  sync();
  // Resolve policy names to ids; a policy for a name the store has never seen selects nothing.
  struct P {
    std::int64_t ns = -1, kind = -1;  // -1 = any; 0 = unknown name (matches nothing)
    const RetentionPolicy* p;
  };
  std::vector<P> ps;
  {
    storage::Env::Reader reader(*env_);
    for (const auto& p : policies) {
      P r{-1, -1, &p};
      if (!p.ns.empty()) r.ns = names_->find(reader.txn(), NameKind::ns, p.ns);
      if (!p.kind.empty()) r.kind = names_->find(reader.txn(), NameKind::kind, p.kind);
      if (r.ns != 0 && r.kind != 0) ps.push_back(r);
    }
  }
  auto matches = [](const P& p, const RecordHeader& h) {
    return (p.ns < 0 || std::uint32_t(p.ns) == h.ns) && (p.kind < 0 || std::uint32_t(p.kind) == h.kind);
  };
  // The most specific policy with a setting wins: namespace+kind, namespace, kind, store-wide.
  auto specificity = [](const P& p) { return (p.ns >= 0 ? 2 : 0) + (p.kind >= 0 ? 1 : 0); };
  std::sort(ps.begin(), ps.end(), [&](const P& a, const P& b) { return specificity(a) > specificity(b); });

  ExpireReport rep;
  std::map<std::uint32_t, std::vector<std::uint64_t>> doomed;  // namespace -> ids
  {
    std::shared_lock lock(state_mu_);
    std::vector<char> gone(rows_.size(), 0);
    for (std::uint64_t id = 0; id < rows_.size(); ++id) {
      const Row& row = rows_[id];
      if (!row.live) continue;
      bool expired = row.h.expires_at <= now;
      for (const auto& p : ps) {
        if (p.p->ttl > 0 && matches(p, row.h)) {
          expired = expired || row.h.ts + p.p->ttl <= now;
          break;
        }
      }
      if (expired) {
        gone[id] = 1;
        ++rep.expired;
        doomed[row.h.ns].push_back(id);
      }
    }
    // Caps: each capped policy applies per namespace over the records it matches; the lowest
    // retention scores go first (ties: older, then smaller id).
    for (const auto& p : ps) {
      if (p.p->max_items == 0 && p.p->max_tokens == 0) continue;
      double half_life = p.p->half_life;
      if (!(half_life > 0))
        for (const auto& q : ps)
          if (q.p->half_life > 0 && (q.ns < 0 || q.ns == p.ns) && (q.kind < 0 || q.kind == p.kind)) {
            half_life = q.p->half_life;
            break;
          }
      struct C {
        double score, ts;
        std::uint64_t id;
        std::uint32_t tokens;
      };
      std::map<std::uint32_t, std::vector<C>> by_ns;
      for (std::uint64_t id = 0; id < rows_.size(); ++id) {
        auto& row = const_cast<Row&>(rows_[id]);
        if (!row.live || gone[id] || !matches(p, row.h)) continue;
        const double s = engine::retention_score(
            row.h, std::atomic_ref<std::uint32_t>(row.accesses).load(std::memory_order_relaxed),
            std::atomic_ref<double>(row.last_access).load(std::memory_order_relaxed), now, half_life);
        by_ns[row.h.ns].push_back(C{s, row.h.ts, id, row.h.tokens_text});
      }
      for (auto& [ns, cs] : by_ns) {
        std::sort(cs.begin(), cs.end(), [](const C& a, const C& b) {
          return a.score != b.score ? a.score < b.score : a.ts != b.ts ? a.ts < b.ts : a.id < b.id;
        });
        std::uint64_t items = cs.size(), tokens = 0;
        for (const auto& c : cs) tokens += c.tokens;
        for (const auto& c : cs) {
          const bool over = (p.p->max_items > 0 && items > p.p->max_items) ||
                            (p.p->max_tokens > 0 && tokens > p.p->max_tokens);
          if (!over) break;
          gone[c.id] = 1;
          ++rep.evicted;
          --items;
          tokens -= c.tokens;
          doomed[ns].push_back(c.id);
        }
      }
    }
  }
  // One transaction per namespace: a namespace is trimmed whole or not at all.
  for (auto& [ns, ids] : doomed) {
    (void)ns;
    std::vector<std::uint64_t> done;
    write_changes([&](Txn& txn, std::uint64_t& seq, std::vector<Pending>& changes) {
      done.clear();
      for (auto id : ids) {
        std::string_view bytes;
        if (!txn.get(records_, id_key(id), &bytes)) continue;  // removed meanwhile
        drop_record(txn, decode_record(id, bytes), seq, changes);
        done.push_back(id);
      }
    });
    rep.ids.insert(rep.ids.end(), done.begin(), done.end());
  }
  return rep;
}

}  // namespace recallcore::engine
