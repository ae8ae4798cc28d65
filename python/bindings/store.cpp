// recallcore._core.Store: the binding of engine::Memory. Python-side conveniences (embedders, token
// counters, JSON, datetimes, typed Record objects) live in python/recallcore/memory.py; this file
// only converts, validates shapes, and releases the GIL around every call that touches LMDB.
#include <cmath>
#include <cstring>
#include <limits>

#include "common.h"
#include "common/errors.h"
#include "context/packer.h"
#include "engine/context_assembly.h"
#include "engine/memory.h"
#include "text/token_estimator.h"

namespace recallcore::bindings {

namespace {

using engine::Memory;
using engine::MemoryOptions;
using engine::NewRecord;
using engine::RecordOut;

py::tuple record_tuple(const RecordOut& o) {
  const auto& r = o.r;
  const auto& h = r.h;
  py::list entities, sources;
  for (const auto& e : r.entities) entities.append(py::str(e));
  for (auto s : r.sources) sources.append(s);
  return py::make_tuple(r.id, py::str(r.text), py::str(r.summary), py::str(o.ns), py::str(o.session), py::str(o.kind),
                        py::str(o.role), h.ts, h.importance, py::str(r.metadata), entities, h.tokens_text,
                        h.tokens_summary, h.created, h.updated, h.valid_from, h.valid_to, h.expires_at,
                        bool(h.flags & engine::kArchived), h.repeats, h.supersedes, h.superseded_by, sources,
                        bool(h.flags & engine::kHasVector));
}

py::list records_list(const std::vector<RecordOut>& rs) {
  py::list out;
  for (const auto& r : rs) out.append(record_tuple(r));
  return out;
}

// What Store.recall returns, kept in C++: the hits and their texts are read at once (what nearly
// every caller uses), a hit's record tuple only on request (24 Python objects per hit: ~0.5 us for
// each hit, measured on a 1k-record recall of 10).
struct RecallResults {
  std::vector<engine::RecallResult> rs;
};

const float* vector_arg(const py::handle& obj, std::size_t dim, py::array& keep) {
  if (obj.is_none()) return nullptr;
  keep = require_array(obj, "vector");
  require_dtype<float>(keep, "vector");
  require_ndim(keep, "vector", 1);
  require_c_contiguous(keep, "vector");
  if (std::size_t(keep.shape(0)) != dim)
    throw py::value_error("vector has " + std::to_string(keep.shape(0)) + " dimensions; this store's dim is " +
                          std::to_string(dim));
  return static_cast<const float*>(keep.data());
}

// The recall arguments (the dict Memory.recall builds) as an engine query; `keep` holds the vector.
engine::RecallQuery recall_query(const py::dict& a, const Memory& mem, py::array& keep) {
  engine::RecallQuery q;
  q.ns = a["namespace"].cast<std::string>();
  q.text = a["text"].cast<std::string>();
  q.vector = vector_arg(a["vector"], mem.dim(), keep);
  q.k = a["k"].cast<std::size_t>();
  const auto mode = a["mode"].cast<std::string>();
  if (mode == "hybrid") q.mode = engine::RecallMode::hybrid;
  else if (mode == "vector") q.mode = engine::RecallMode::vector;
  else if (mode == "lexical") q.mode = engine::RecallMode::lexical;
  else throw py::value_error("mode must be 'hybrid', 'vector' or 'lexical', got '" + mode + "'");
  q.kinds = a["kinds"].cast<std::vector<std::string>>();
  if (!a["session"].is_none()) q.session = a["session"].cast<std::string>();
  q.since = a["since"].cast<double>();
  q.until = a["until"].cast<double>();
  q.entities = a["entities"].cast<std::vector<std::string>>();
  q.now = a["now"].cast<double>();
  if (!a["as_of"].is_none()) q.as_of = a["as_of"].cast<double>();
  q.include_history = a["include_history"].cast<bool>();
  q.include_archived = a["include_archived"].cast<bool>();
  q.recency_half_life = a["recency_half_life"].cast<double>();
  q.recency_weight = a["recency_weight"].cast<float>();
  q.importance_weight = a["importance_weight"].cast<float>();
  q.diversity = a["diversity"].cast<float>();
  q.vector_weight = a["vector_weight"].cast<float>();
  q.lexical_weight = a["lexical_weight"].cast<float>();
  // Tuning keys are optional: absent ones keep the engine's defaults (documented in recall.h).
  if (a.contains("fusion")) {
    const auto fusion = a["fusion"].cast<std::string>();
    if (fusion == "rrf") q.fusion = engine::Fusion::rrf;
    else if (fusion == "relative") q.fusion = engine::Fusion::relative;
    else throw py::value_error("fusion must be 'rrf' or 'relative', got '" + fusion + "'");
  }
  if (a.contains("rrf_k") && !a["rrf_k"].is_none()) q.rrf_k = a["rrf_k"].cast<std::size_t>();
  if (a.contains("candidates") && !a["candidates"].is_none()) q.candidates = a["candidates"].cast<std::size_t>();
  if (a.contains("ef") && !a["ef"].is_none()) q.ef = a["ef"].cast<std::size_t>();
  return q;
}

class Store {
 public:
  explicit Store(const MemoryOptions& o) {
    py::gil_scoped_release release;
    m_ = std::make_unique<Memory>(o);
  }

  ~Store() {
    // In a child of fork() the parent's store must be neither closed nor destroyed (its threads do
    // not exist here and its locks and condition variables may be held forever): leak it.
    if (m_ && m_->forked()) (void)m_.release();
  }
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  Memory& m() {
    if (!m_) throw StoreError("the store is closed");
    return *m_;
  }

  // items: list of tuples (text, summary, ns, session, kind, role, metadata, entities, ts, importance,
  // ttl, tokens_text, tokens_summary, vector_row, supersedes); vectors: float32 [n_vec, dim] or None.
  std::vector<std::uint64_t> add_batch(const py::list& items, const py::object& vectors_obj,
                                       const std::string& dedupe = "keep", float dedupe_threshold = 0.95f) {
    NewRecord::Dedupe mode = NewRecord::Dedupe::keep;
    if (dedupe == "skip") mode = NewRecord::Dedupe::skip;
    else if (dedupe == "merge") mode = NewRecord::Dedupe::merge;
    else if (dedupe != "keep") throw py::value_error("dedupe must be 'keep', 'skip' or 'merge', got '" + dedupe + "'");
    if (!(dedupe_threshold > 0.0f && dedupe_threshold <= 1.0f))
      throw py::value_error("dedupe_threshold must be within (0, 1]");
    Memory& mem = m();
    py::array vectors;
    const float* vbase = nullptr;
    std::size_t nvec = 0;
    if (!vectors_obj.is_none()) {
      vectors = require_array(vectors_obj, "vectors");
      require_dtype<float>(vectors, "vectors");
      require_ndim(vectors, "vectors", 2);
      require_c_contiguous(vectors, "vectors");
      if (std::size_t(vectors.shape(1)) != mem.dim())
        throw py::value_error("vectors have " + std::to_string(vectors.shape(1)) + " dimensions; this store's dim is " +
                              std::to_string(mem.dim()));
      vbase = static_cast<const float*>(vectors.data());
      nvec = std::size_t(vectors.shape(0));
    }
    std::vector<NewRecord> recs;
    recs.reserve(items.size());
    for (const auto& item : items) {
      auto t = item.cast<py::tuple>();
      if (t.size() != 15) throw py::value_error("internal: malformed record tuple");
      NewRecord r;
      r.text = t[0].cast<std::string>();
      r.summary = t[1].cast<std::string>();
      r.ns = t[2].cast<std::string>();
      r.session = t[3].cast<std::string>();
      r.kind = t[4].cast<std::string>();
      r.role = t[5].cast<std::string>();
      r.metadata = t[6].cast<std::string>();
      r.entities = t[7].cast<std::vector<std::string>>();
      r.ts = t[8].cast<double>();
      r.importance = t[9].cast<float>();
      r.ttl = t[10].cast<double>();
      r.tokens_text = t[11].cast<std::uint32_t>();
      r.tokens_summary = t[12].cast<std::uint32_t>();
      const auto row = t[13].cast<long long>();
      if (row >= 0) {
        if (std::size_t(row) >= nvec) throw py::value_error("internal: vector row out of range");
        r.vector = vbase + std::size_t(row) * mem.dim();
      }
      r.supersedes = t[14].cast<std::uint64_t>();
      r.dedupe = mode;
      r.dedupe_threshold = dedupe_threshold;
      recs.push_back(std::move(r));
    }
    py::gil_scoped_release release;
    return mem.add(recs);
  }

  void update(std::uint64_t id, const py::dict& p) {
    Memory& mem = m();
    engine::RecordPatch patch;
    py::array keep;
    for (auto [k, v] : p) {
      const auto key = k.cast<std::string>();
      if (key == "text") patch.text = v.cast<std::string>();
      else if (key == "summary") patch.summary = v.cast<std::string>();
      else if (key == "metadata") patch.metadata = v.cast<std::string>();
      else if (key == "kind") patch.kind = v.cast<std::string>();
      else if (key == "role") patch.role = v.cast<std::string>();
      else if (key == "entities") patch.entities = v.cast<std::vector<std::string>>();
      else if (key == "ts") patch.ts = v.cast<double>();
      else if (key == "ttl") patch.ttl = v.cast<double>();
      else if (key == "importance") patch.importance = v.cast<float>();
      else if (key == "tokens_text") patch.tokens_text = v.cast<std::uint32_t>();
      else if (key == "tokens_summary") patch.tokens_summary = v.cast<std::uint32_t>();
      else if (key == "archived") patch.archived = v.cast<bool>();
      else if (key == "vector") patch.vector = vector_arg(v, mem.dim(), keep);
      else throw py::value_error("update: unknown field '" + key + "'");
    }
    py::gil_scoped_release release;
    mem.update(id, patch);
  }

  void remove(const std::vector<std::uint64_t>& ids) {
    Memory& mem = m();
    py::gil_scoped_release release;
    mem.remove(ids);
  }

  py::object get(std::uint64_t id) {
    Memory& mem = m();
    std::optional<RecordOut> r;
    {
      py::gil_scoped_release release;
      r = mem.get(id);
    }
    if (!r) return py::none();
    return record_tuple(*r);
  }

  py::list get_many(const std::vector<std::uint64_t>& ids) {
    Memory& mem = m();
    std::vector<RecordOut> rs;
    {
      py::gil_scoped_release release;
      rs = mem.get_many(ids);
    }
    return records_list(rs);
  }

  // [n] list: a float32 array per record, or None when it has no vector.
  py::list get_vectors(const std::vector<std::uint64_t>& ids) {
    Memory& mem = m();
    std::vector<std::vector<float>> vs;
    {
      py::gil_scoped_release release;
      vs = mem.get_vectors(ids);
    }
    py::list out;
    for (auto& v : vs) {
      if (v.empty()) {
        out.append(py::none());
      } else {
        py::array_t<float> a(py::ssize_t(v.size()));
        std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(float));
        out.append(a);
      }
    }
    return out;
  }

  py::list history(const std::string& ns, const std::optional<std::string>& session, std::size_t last, double since,
                   double until) {
    Memory& mem = m();
    std::vector<RecordOut> rs;
    {
      py::gil_scoped_release release;
      rs = mem.history(ns, session, last, since, until);
    }
    return records_list(rs);
  }

  py::tuple list(const std::string& ns, const std::optional<std::string>& kind, double since, double until,
                 std::size_t limit, const std::string& cursor) {
    Memory& mem = m();
    engine::ListPage page;
    {
      py::gil_scoped_release release;
      page = mem.list(ns, kind, since, until, limit, cursor);
    }
    return py::make_tuple(records_list(page.records), page.next_cursor);
  }

  py::list entity(const std::string& ns, const std::string& name) {
    Memory& mem = m();
    std::vector<RecordOut> rs;
    {
      py::gil_scoped_release release;
      rs = mem.entity(ns, name);
    }
    return records_list(rs);
  }

  RecallResults recall(const py::dict& a) {
    Memory& mem = m();
    py::array keep;
    const engine::RecallQuery q = recall_query(a, mem, keep);
    RecallResults out;
    {
      py::gil_scoped_release release;
      out.rs = mem.recall(q);
    }
    return out;
  }

  // Memory.context in one call (engine/context_assembly.h). `count` is None for the built-in
  // estimator (counted in C++) or the store's counter as a callable (called with the GIL); `render`
  // is None for the default item prefix or a callable (record tuple, section, body, date) -> str.
  engine::ContextResult context(const py::dict& a, const py::object& count, const py::object& render) {
    Memory& mem = m();
    py::array keep;
    engine::ContextRequest req;
    req.recall = recall_query(a, mem, keep);
    if (!a["context_session"].is_none()) req.session = a["context_session"].cast<std::string>();
    req.budget = a["budget"].cast<std::uint32_t>();
    req.recent_turns = a["recent_turns"].cast<std::size_t>();
    req.include_state = a["include_state"].cast<bool>();
    req.pinned_kinds = a["pinned_kinds"].cast<std::vector<std::string>>();
    req.order = context::parse_order(a["order"].cast<std::string>());
    req.separator = a["separator"].cast<std::string>();
    if (count.is_none()) {
      req.count = [](std::string_view t) { return text::estimate_tokens(t); };
    } else {
      req.count = [&count](std::string_view t) {
        py::gil_scoped_acquire gil;
        return count(py::str(t.data(), t.size())).cast<std::size_t>();
      };
    }
    if (!render.is_none()) {
      req.render = [&render](const RecordOut& r, std::string_view section, std::string_view body,
                             std::string_view date) {
        py::gil_scoped_acquire gil;
        return render(record_tuple(r), py::str(section.data(), section.size()), py::str(body.data(), body.size()),
                      py::str(date.data(), date.size()))
            .cast<std::string>();
      };
    }
    py::gil_scoped_release release;
    return engine::assemble_context(mem, req);
  }

  py::dict stats() {
    Memory& mem = m();
    engine::Stats s;
    {
      py::gil_scoped_release release;
      s = mem.stats();
    }
    py::dict d, counts;
    for (const auto& [ns, kinds] : s.counts) {
      py::dict kd;
      for (const auto& [kind, n] : kinds) kd[py::str(kind)] = n;
      counts[py::str(ns)] = kd;
    }
    d["records"] = s.records;
    d["vectors"] = s.vectors;
    d["pending_vectors"] = s.pending_vectors;
    d["indexed_vectors"] = s.indexed_vectors;
    d["counts"] = counts;
    d["seq"] = s.seq;
    d["snapshot_seq"] = s.snapshot_seq;
    d["file_bytes"] = s.file_bytes;
    d["map_bytes"] = s.map_bytes;
    d["index_bytes"] = s.index_bytes;
    d["lexical_docs"] = s.lexical_docs;
    py::dict sc;
    sc["namespaces"] = s.scan_cache.namespaces, sc["bytes"] = s.scan_cache.bytes, sc["budget"] = s.scan_cache.budget;
    sc["evictions"] = s.scan_cache.evictions;
    d["scan_cache"] = sc;
    d["dim"] = s.dim;
    d["metric"] = s.metric;
    d["embedder"] = s.embedder;
    d["token_counter"] = s.token_counter;
    d["storage"] = s.storage;
    return d;
  }

  void close() {
    if (!m_) return;
    if (m_->forked()) {
      (void)m_.release();  // see ~Store
      return;
    }
    py::gil_scoped_release release;
    std::unique_ptr<Memory> m = std::move(m_);
    m->close();
  }

  std::unique_ptr<Memory> m_;
};

template <class F>
auto no_gil(F&& f) {
  py::gil_scoped_release release;
  return f();
}

}  // namespace

void register_store(py::module_& m) {
  // What Store.context returns: kept in C++ so a caller who reads only `text` pays for no Python
  // objects per item; recallcore.Context builds its manifest from items() on first access.
  py::class_<engine::ContextResult>(m, "ContextResult", "A packed context from Store.context (see recallcore.Context).")
      .def_property_readonly("text", [](const engine::ContextResult& c) { return c.text; })
      .def_property_readonly("tokens", [](const engine::ContextResult& c) { return c.tokens; })
      .def("__len__", [](const engine::ContextResult& c) { return c.items.size(); })
      .def("items", [](const engine::ContextResult& c) {
        // (id or "state:<key>", section, fidelity, tokens, score, text, role, record tuple or None)
        py::list out;
        for (const auto& it : c.items) {
          py::object id = it.record ? py::object(py::int_(it.record->r.id)) : py::object(py::str("state:" + it.key));
          out.append(py::make_tuple(id, it.section, it.summary ? "summary" : "full", it.tokens, it.score,
                                    py::str(it.text), it.record ? py::object(py::str(it.record->role)) : py::none(),
                                    it.record ? py::object(record_tuple(*it.record)) : py::none()));
        }
        return out;
      })
      .def("dropped", [](const engine::ContextResult& c) {
        py::list out;
        for (const auto& d : c.dropped) {
          py::object id = d.section == "state" ? py::object(py::str("state:" + d.key)) : py::object(py::int_(d.id));
          out.append(py::make_tuple(id, d.section, d.reason, d.score));
        }
        return out;
      });
  py::class_<RecallResults>(m, "RecallResults", "Hits from Store.recall (see recallcore.Memory.recall).")
      .def("__len__", [](const RecallResults& r) { return r.rs.size(); })
      .def("hits", [](const RecallResults& r) {
        // (id, score, vector rank, similarity, lexical rank, bm25, recency, importance, text) per hit
        py::list out;
        for (const auto& x : r.rs) {
          const auto& h = x.hit;
          out.append(py::make_tuple(h.id, h.score, h.vector_rank, h.vector_similarity, h.lexical_rank, h.bm25,
                                    h.recency, h.importance, py::str(x.record.r.text)));
        }
        return out;
      })
      .def("record", [](const RecallResults& r, std::size_t i) {
        if (i >= r.rs.size()) throw py::index_error("hit index out of range");
        return record_tuple(r.rs[i].record);
      });
  py::class_<Store>(m, "Store", "Low-level durable store (use recallcore.Memory).")
      .def(py::init([](const std::string& path, std::size_t dim, const std::string& metric, const std::string& embedder,
                       const std::string& token_counter, bool readonly, bool durable, std::size_t map_size,
                       std::size_t max_text_bytes, std::size_t M, std::size_t ef_construction, std::size_t ef_search,
                       const std::string& storage, std::size_t checkpoint_every, std::size_t scan_cache_bytes) {
             MemoryOptions o;
             o.path = path, o.dim = dim, o.metric = metric, o.embedder = embedder, o.token_counter = token_counter;
             o.readonly = readonly, o.durable = durable, o.map_size = map_size, o.max_text_bytes = max_text_bytes;
             o.M = M, o.ef_construction = ef_construction, o.ef_search = ef_search, o.storage = storage;
             o.checkpoint_every = checkpoint_every, o.scan_cache_bytes = scan_cache_bytes;
             return std::make_unique<Store>(o);
           }),
           py::arg("path"), py::kw_only(), py::arg("dim") = 0, py::arg("metric") = "", py::arg("embedder") = "",
           py::arg("token_counter") = "", py::arg("readonly") = false, py::arg("durable") = true,
           py::arg("map_size") = std::size_t(64) << 20, py::arg("max_text_bytes") = std::size_t(1) << 20,
           py::arg("M") = 16, py::arg("ef_construction") = 200, py::arg("ef_search") = 64,
           py::arg("storage") = "f32", py::arg("checkpoint_every") = 50000,
           py::arg("scan_cache_bytes") = MemoryOptions{}.scan_cache_bytes)
      .def("add_batch", &Store::add_batch, py::arg("items"), py::arg("vectors"), py::arg("dedupe") = "keep",
           py::arg("dedupe_threshold") = 0.95f)
      .def("update", &Store::update)
      .def("remove", &Store::remove)
      .def("get", &Store::get)
      .def("get_many", &Store::get_many)
      .def("get_vectors", &Store::get_vectors)
      .def("namespaces", [](Store& s) { return no_gil([&] { return s.m().namespaces(); }); })
      .def("history", &Store::history)
      .def("list", &Store::list)
      .def("entity", &Store::entity)
      .def("select_kinds", [](Store& s, const std::string& ns, const std::vector<std::string>& kinds, double valid_at,
                              double now, bool include_history, std::size_t limit) {
        auto rs = no_gil([&] { return s.m().select_kinds(ns, kinds, valid_at, now, include_history, limit); });
        return records_list(rs);
      })
      .def("recall", &Store::recall)
      .def("context", &Store::context)
      .def("state_get", [](Store& s, const std::string& ns, const std::string& key) -> py::object {
        std::optional<std::string> v = no_gil([&] { return s.m().state_get(ns, key); });
        if (!v) return py::none();
        return py::str(*v);
      })
      .def("state_set", [](Store& s, const std::string& ns, const std::string& key, const std::string& json) {
        no_gil([&] { s.m().state_set(ns, key, json); return 0; });
      })
      .def("state_delete", [](Store& s, const std::string& ns, const std::string& key) {
        return no_gil([&] { return s.m().state_delete(ns, key); });
      })
      .def("state_items", [](Store& s, const std::string& ns) {
        return no_gil([&] { return s.m().state_items(ns); });
      })
      .def("checkpoint", [](Store& s) { no_gil([&] { s.m().checkpoint(); return 0; }); })
      .def("sync", [](Store& s) { no_gil([&] { s.m().sync(); return 0; }); })
      .def("stats", &Store::stats)
      .def("verify", [](Store& s) {
        auto c = no_gil([&] { return s.m().verify(); });
        py::dict d;
        d["lmdb_records"] = c.lmdb_records;
        d["missing_in_state"] = c.missing_in_state;
        d["extra_in_state"] = c.extra_in_state;
        d["missing_vectors"] = c.missing_vectors;
        d["extra_vectors"] = c.extra_vectors;
        d["scan_copy_mismatches"] = c.scan_copy_mismatches;
        return d;
      })
      // ---- Forgetting (issue 7) -----------------------------------------------------------------
      .def("forget", [](Store& s, const std::optional<std::string>& ns, const std::vector<std::uint64_t>& ids,
                        const std::optional<std::string>& session, const std::optional<double>& before,
                        const std::vector<std::string>& kinds) {
             engine::Memory::ForgetQuery q{ns, session, ids, before, kinds};
             return no_gil([&] { return s.m().forget(q); });
           })
      .def("verify_forgotten", [](Store& s, const std::string& ns) {
             return no_gil([&] { return s.m().verify_forgotten(ns); });
           })
      .def("vacuum", [](Store& s, const std::string& dest) { no_gil([&] { s.m().vacuum(dest); return 0; }); })
      .def("set_archived", [](Store& s, const std::vector<std::uint64_t>& ids, bool archived) {
             no_gil([&] { s.m().set_archived(ids, archived); return 0; });
           })
      .def("compact_commit", [](Store& s, const py::list& groups, const py::object& vectors_obj, bool drop) {
             // groups: (summary tuple as in add_batch, source ids); vectors as in add_batch.
             Memory& mem = s.m();
             py::list items;
             for (const auto& g : groups) items.append(g.cast<py::tuple>()[0]);
             std::vector<engine::Memory::CompactGroup> gs;
             py::array vectors;
             const float* vbase = nullptr;
             if (!vectors_obj.is_none()) {
               vectors = require_array(vectors_obj, "vectors");
               require_dtype<float>(vectors, "vectors");
               require_ndim(vectors, "vectors", 2);
               require_c_contiguous(vectors, "vectors");
               if (std::size_t(vectors.shape(1)) != mem.dim()) throw py::value_error("vectors have the wrong dimension");
               vbase = static_cast<const float*>(vectors.data());
             }
             for (const auto& g : groups) {
               auto t = g.cast<py::tuple>();
               auto it = t[0].cast<py::tuple>();
               if (it.size() != 15) throw py::value_error("internal: malformed record tuple");
               NewRecord r;
               r.text = it[0].cast<std::string>();
               r.summary = it[1].cast<std::string>();
               r.ns = it[2].cast<std::string>();
               r.session = it[3].cast<std::string>();
               r.kind = it[4].cast<std::string>();
               r.role = it[5].cast<std::string>();
               r.metadata = it[6].cast<std::string>();
               r.entities = it[7].cast<std::vector<std::string>>();
               r.ts = it[8].cast<double>();
               r.importance = it[9].cast<float>();
               r.ttl = it[10].cast<double>();
               r.tokens_text = it[11].cast<std::uint32_t>();
               r.tokens_summary = it[12].cast<std::uint32_t>();
               const auto row = it[13].cast<long long>();
               if (row >= 0) {
                 if (vbase == nullptr || row >= vectors.shape(0)) throw py::value_error("internal: vector row out of range");
                 r.vector = vbase + std::size_t(row) * mem.dim();
               }
               gs.push_back({std::move(r), t[1].cast<std::vector<std::uint64_t>>()});
             }
             return no_gil([&] { return mem.compact_commit(gs, drop); });
           })
      .def("policy_put", [](Store& s, const std::string& ns, const std::string& kind, const std::string& value) {
             no_gil([&] { s.m().policy_put(ns, kind, value); return 0; });
           })
      .def("policy_items", [](Store& s) { return no_gil([&] { return s.m().policy_items(); }); })
      .def("expire", [](Store& s, double now, const py::list& policies) {
             // policies: (namespace, kind, ttl, max_items, max_tokens, half_life); "" = any.
             std::vector<engine::Memory::RetentionPolicy> ps;
             for (const auto& p : policies) {
               auto t = p.cast<py::tuple>();
               engine::Memory::RetentionPolicy r;
               r.ns = t[0].cast<std::string>();
               r.kind = t[1].cast<std::string>();
               r.ttl = t[2].cast<double>();
               r.max_items = t[3].cast<std::uint64_t>();
               r.max_tokens = t[4].cast<std::uint64_t>();
               r.half_life = t[5].cast<double>();
               ps.push_back(std::move(r));
             }
             auto rep = no_gil([&] { return s.m().expire(now, ps); });
             return py::make_tuple(rep.expired, rep.evicted, rep.ids);
           })
      .def("prune_log", [](Store& s) { return no_gil([&] { return s.m().prune_log(); }); })
      .def("retention_score", [](Store& s, std::uint64_t id, double now, double half_life) {
             return no_gil([&] { return s.m().retention_score(id, now, half_life); });
           })
      .def("close", &Store::close)
      .def_property_readonly("closed", [](Store& s) { return !s.m_; })
      .def_property_readonly("dim", [](Store& s) { return s.m().dim(); })
      .def_property_readonly("metric", [](Store& s) { return s.m().metric_name(); })
      .def_property_readonly("token_counter", [](Store& s) { return s.m().token_counter_name(); })
      .def_property_readonly("embedder", [](Store& s) { return s.m().embedder_name(); })
      .def_property_readonly("path", [](Store& s) { return s.m().path(); });
}

}  // namespace recallcore::bindings
