// recallcore.HNSWIndex: validate (dtype, shape, contiguity, dimension, finiteness) while holding the
// GIL, take raw pointers, then release the GIL in an inner scope for the work (not with call_guard,
// whose argument destructors would run without the GIL, pybind11#4748). Outputs are numpy arrays
// preallocated here and filled by the core.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common.h"
#include "common/errors.h"
#include "hnsw/filter.h"
#include "hnsw/index.h"

namespace recallcore::bindings {

namespace {

using hnsw::Index;
constexpr std::uint64_t kSentinel = std::numeric_limits<std::uint64_t>::max();

struct PyIndex {
  std::unique_ptr<Index> index;
  std::uint64_t stamp = 0;
};

// A fresh 1-D numpy array through the numpy C API directly: py::array_t's constructor builds shape and
// stride std::vectors on the heap, which is a measurable part of a ~50 us search call.
py::array new_1d(int type_num, py::ssize_t n) {
  auto& api = py::detail::npy_api::get();
  PyObject* descr = api.PyArray_DescrFromType_(type_num);
  Py_intptr_t dims[1] = {n};
  PyObject* arr = api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, 1, dims, nullptr, nullptr, 0, nullptr);
  if (arr == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::array>(arr);
}

int type_num_u64() {
  static const int n = py::dtype::of<std::uint64_t>().num();
  return n;
}
int type_num_f32() {
  static const int n = py::dtype::of<float>().num();
  return n;
}

bool is_float32(const py::array& a) { return a.dtype().kind() == 'f' && a.dtype().itemsize() == 4; }

// Ids arrive as any integer numpy array (or a sequence of ints) and leave as a C-contiguous uint64
// array; negative values are refused rather than wrapped around.
py::array_t<std::uint64_t> to_ids(const py::handle& obj, const char* name) {
  py::array a;
  if (py::isinstance<py::array>(obj)) {
    a = py::reinterpret_borrow<py::array>(obj);
  } else if (py::isinstance<py::sequence>(obj) && !py::isinstance<py::str>(obj)) {
    a = py::module_::import("numpy").attr("asarray")(obj);
    if (a.size() == 0) a = py::array_t<std::uint64_t>(0);
  } else {
    throw py::type_error(std::string(name) + " must be an array of integer ids, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  const char kind = a.dtype().kind();
  if (kind != 'u' && kind != 'i')
    throw py::type_error(std::string(name) + " must have an integer dtype (uint64), got " + std::string(py::str(a.dtype())));
  if (a.ndim() != 1) throw py::value_error(std::string(name) + " must be 1-D, got shape " + shape_str(a));
  if (kind == 'i') {
    auto s = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    const std::int64_t* p = s.data();
    for (py::ssize_t i = 0; i < s.size(); ++i)
      if (p[i] < 0) throw py::value_error(std::string(name) + " must be non-negative, got " + std::to_string(p[i]));
  }
  return py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>::ensure(a);
}

void require_finite(const float* p, std::size_t n, const char* name) {
  // Branch-free over the exponent bits so the compiler vectorises it (an early-exit isfinite loop
  // does not vectorise: ~0.1 us of a 384-d query).
  std::uint32_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t u;
    std::memcpy(&u, p + i, sizeof u);
    bad |= std::uint32_t((u & 0x7f800000u) == 0x7f800000u);
  }
  if (bad != 0) throw py::value_error(std::string(name) + " must be finite (found NaN or inf)");
}

// A filter crosses the boundary as an array: uint64/int ids (allow-list) or a boolean mask indexed by id.
struct FilterArg {
  py::array keep;  // keeps the numpy buffer alive
  std::optional<hnsw::IdListFilter> list;
  std::optional<hnsw::IdMaskFilter> mask;
  const hnsw::Filter* get() const {
    if (list) return &*list;
    if (mask) return &*mask;
    return nullptr;
  }
};

void make_filter(const py::object& obj, FilterArg& out) {
  if (obj.is_none()) return;
  if (!py::isinstance<py::array>(obj) && PyCallable_Check(obj.ptr()))
    throw py::type_error("filter must be an array of allowed ids (uint64) or a boolean mask over ids, not a "
                         "callable (a Python call per candidate is ~100x slower)");
  if (py::isinstance<py::array>(obj) && py::reinterpret_borrow<py::array>(obj).dtype().kind() == 'b') {
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (a.ndim() != 1) throw py::value_error("a boolean filter mask must be 1-D, got shape " + shape_str(a));
    require_c_contiguous(a, "filter");
    out.keep = a;
    out.mask.emplace(static_cast<const std::uint8_t*>(a.data()), std::size_t(a.shape(0)));
    return;
  }
  auto ids = to_ids(obj, "filter");
  out.keep = ids;
  out.list.emplace(ids.data(), std::size_t(ids.shape(0)));
}

std::size_t check_threads(long threads) {
  if (threads < 0) throw py::value_error("threads must be >= 0 (0 = all cores), got " + std::to_string(threads));
  return std::size_t(threads);
}

py::tuple search(const PyIndex& self, const py::handle& qobj, long k, const py::object& ef_obj,
                 const py::object& filter_obj, long threads) {
  const Index& idx = *self.index;
  const std::size_t dim = idx.config().dim;
  if (!py::isinstance<py::array>(qobj))
    throw py::type_error("queries must be a numpy float32 array, got " +
                         std::string(py::str(py::type::of(qobj).attr("__name__"))));
  auto q = py::reinterpret_borrow<py::array>(qobj);
  if (!is_float32(q)) throw py::type_error("queries must have dtype float32, got " + std::string(py::str(q.dtype())));
  if (q.ndim() != 1 && q.ndim() != 2)
    throw py::value_error("queries must be 1-D (one query) or 2-D (a batch), got shape " + shape_str(q));
  require_c_contiguous(q, "queries");
  if (std::size_t(q.shape(q.ndim() - 1)) != dim)
    throw py::value_error("queries must have " + std::to_string(dim) + " columns (the index dim), got shape " + shape_str(q));
  if (k <= 0) throw py::value_error("k must be >= 1, got " + std::to_string(k));
  std::size_t ef = 0;
  if (!ef_obj.is_none()) {
    const long e = ef_obj.cast<long>();
    if (e < k) throw py::value_error("ef must be >= k (ef=" + std::to_string(e) + ", k=" + std::to_string(k) + ")");
    ef = std::size_t(e);
  }
  const std::size_t nthreads = check_threads(threads);
  const std::size_t nq = q.ndim() == 1 ? 1 : std::size_t(q.shape(0));
  const float* qp = static_cast<const float*>(q.data());
  require_finite(qp, nq * dim, "queries");
  FilterArg filter;
  make_filter(filter_obj, filter);
  const std::size_t kk = std::size_t(k);

  if (q.ndim() == 1) {
    py::array ids = new_1d(type_num_u64(), static_cast<py::ssize_t>(kk));
    py::array dist = new_1d(type_num_f32(), static_cast<py::ssize_t>(kk));
    auto* ip = static_cast<std::uint64_t*>(ids.mutable_data());
    auto* dp = static_cast<float*>(dist.mutable_data());
    auto run = [&] {
      const std::size_t n = idx.search_into(qp, kk, ef, filter.get(), ip, dp);
      for (std::size_t j = n; j < kk; ++j) {
        ip[j] = kSentinel;
        dp[j] = std::numeric_limits<float>::infinity();
      }
    };
    // Releasing and re-taking the GIL costs ~0.2 us (measured, RESULTS.md "Per-call floor"); a
    // search over at most kTinyWork vector elements takes a few us, shorter than the GIL hand-off
    // is worth, so it runs holding the GIL. Anything larger releases it.
    constexpr std::size_t kTinyWork = std::size_t(1) << 16;  // e.g. 170 x 384-d vectors
    if (idx.size() * dim <= kTinyWork) {
      run();
    } else {
      py::gil_scoped_release release;
      run();
    }
    return py::make_tuple(std::move(ids), std::move(dist));
  }
  py::array_t<std::uint64_t> ids({static_cast<py::ssize_t>(nq), static_cast<py::ssize_t>(kk)});
  py::array_t<float> dist({static_cast<py::ssize_t>(nq), static_cast<py::ssize_t>(kk)});
  std::uint64_t* ip = ids.mutable_data();
  float* dp = dist.mutable_data();
  {
    py::gil_scoped_release release;
    idx.search_batch(qp, nq, kk, ef, filter.get(), nthreads, ip, dp);
  }
  return py::make_tuple(std::move(ids), std::move(dist));
}

// search() is the hot path of a service, so it bypasses pybind11's generic dispatcher: a METH_FASTCALL
// method reads its positional and keyword arguments straight from the vector call (pybind11 builds a
// str per argument name to look up keywords, ~0.5 us a call). Errors go through the same translators
// as every other entry point.
PyObject* search_fastcall(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  try {
    static PyObject* const s_k = PyUnicode_InternFromString("k");
    static PyObject* const s_ef = PyUnicode_InternFromString("ef");
    static PyObject* const s_filter = PyUnicode_InternFromString("filter");
    static PyObject* const s_threads = PyUnicode_InternFromString("threads");
    static PyObject* const s_queries = PyUnicode_InternFromString("queries");
    if (nargs < 1 && kwnames == nullptr) throw py::type_error("search() missing required argument 'queries'");
    if (nargs > 2) throw py::type_error("search() takes at most 2 positional arguments (queries, k)");
    py::handle q = nargs >= 1 ? py::handle(args[0]) : py::handle();
    py::handle k_obj = nargs >= 2 ? py::handle(args[1]) : py::handle();
    py::object ef = py::none(), filter = py::none();
    long threads = 0;
    const Py_ssize_t nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nk; ++i) {
      PyObject* key = PyTuple_GET_ITEM(kwnames, i);
      PyObject* val = args[nargs + i];
      auto is = [key](PyObject* name) { return key == name || PyUnicode_Compare(key, name) == 0; };
      if (is(s_ef)) ef = py::reinterpret_borrow<py::object>(val);
      else if (is(s_filter)) filter = py::reinterpret_borrow<py::object>(val);
      else if (is(s_threads)) threads = py::cast<long>(py::handle(val));
      else if (is(s_k) && !k_obj) k_obj = val;
      else if (is(s_queries) && !q) q = val;
      else throw py::type_error("search() got an unexpected or repeated keyword argument '" +
                                std::string(py::str(py::handle(key))) + "'");
    }
    if (!q) throw py::type_error("search() missing required argument 'queries'");
    const long k = k_obj ? py::cast<long>(k_obj) : 10;
    const PyIndex& ix = py::cast<const PyIndex&>(py::handle(self));
    return search(ix, q, k, ef, filter, threads).release().ptr();
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (...) {
    py::detail::try_translate_exceptions();
  }
  return nullptr;
}

PyMethodDef search_def = {
    "search", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(search_fastcall)), METH_FASTCALL | METH_KEYWORDS,
    "search($self, queries, k=10, *, ef=None, filter=None, threads=0)\n--\n\n"
    "k nearest of one query (1-D -> 1-D results) or a batch (2-D -> 2-D results).\n\n"
    "ef: search breadth (>= k; default max(k, 64)). filter: allowed ids (uint64 array) or a boolean mask\n"
    "indexed by id, applied during the graph walk (small sets are scanned exactly). threads: for a batch,\n"
    "0 = all cores. Returns (ids uint64, distances float32), padded with (2**64-1, inf)."};

py::array_t<std::uint64_t> add(PyIndex& self, const py::handle& vobj, const py::object& ids_obj, long threads) {
  Index& idx = *self.index;
  const std::size_t dim = idx.config().dim;
  py::array v = require_array(vobj, "vectors");
  if (!is_float32(v)) throw py::type_error("vectors must have dtype float32, got " + std::string(py::str(v.dtype())));
  if (v.ndim() != 2) throw py::value_error("vectors must be 2-D (n, " + std::to_string(dim) + "), got shape " + shape_str(v));
  require_c_contiguous(v, "vectors");
  if (std::size_t(v.shape(1)) != dim)
    throw py::value_error("vectors must have " + std::to_string(dim) + " columns (the index dim), got shape " + shape_str(v));
  const std::size_t n = std::size_t(v.shape(0));
  const std::size_t nthreads = check_threads(threads);
  const float* vp = static_cast<const float*>(v.data());
  py::array_t<std::uint64_t> given;
  if (!ids_obj.is_none()) {
    given = to_ids(ids_obj, "ids");
    if (std::size_t(given.shape(0)) != n)
      throw py::value_error("ids must have one entry per vector (" + std::to_string(n) + "), got " +
                            std::to_string(given.shape(0)));
  }
  py::array_t<std::uint64_t> out(static_cast<py::ssize_t>(n));
  const std::uint64_t* gp = ids_obj.is_none() ? nullptr : given.data();
  std::uint64_t* op = out.mutable_data();
  {
    py::gil_scoped_release release;
    idx.add(vp, gp, n, nthreads, op);
  }
  return out;
}

py::dict stats(const PyIndex& self) {
  hnsw::Stats st;
  {
    py::gil_scoped_release release;
    st = self.index->stats();
  }
  const auto& c = self.index->config();
  py::dict d;
  d["size"] = st.size;
  d["dim"] = c.dim;
  d["metric"] = st.metric;
  d["storage"] = st.storage;
  d["M"] = c.M;
  d["ef_construction"] = c.ef_construction;
  d["levels"] = st.levels;
  d["slots"] = st.slots;
  d["capacity"] = st.capacity;
  d["tombstones"] = st.tombstones;
  d["keep_originals"] = c.keep_originals;
  d["memory_bytes"] = st.memory_bytes;
  d["mapped_bytes"] = st.mapped_bytes;
  d["traversal_bytes"] = st.traversal_bytes;
  d["bytes_per_vector"] = st.size ? double(st.memory_bytes) / double(st.size) : 0.0;
  d["exact_scan_threshold"] = st.exact_scan_threshold;
  d["mapped"] = st.mapped;
  d["simd_level"] = st.simd_level;
  d["stamp"] = self.stamp;
  return d;
}

}  // namespace

void register_hnsw(py::module_& m) {
  auto cls = py::class_<PyIndex>(m, "HNSWIndex", R"doc(
HNSW approximate nearest-neighbour index over float32 vectors with uint64 ids.

Distances (smaller is closer): l2 = squared L2, ip = 1 - a.b, cosine = 1 - cos (vectors are
normalised at insert). ``storage="f16"|"i8"`` keeps compressed copies for the graph walk and
re-ranks the final candidates with the f32 vectors. ``keep_originals=False`` (f16/i8 only) drops the
f32 vectors: i8 then takes ~655 bytes per 384-d vector instead of ~2,170, and every distance (walk,
final ranking, exact filtered scans, ``get_vectors``) comes from the codes, so results are estimates
(recall at equal ef within 0.003 of f32 on the 384-d benchmark sets, 0.008 below on sift10k; see
benchmarks/RESULTS.md). Searches
pad missing results with id ``np.iinfo(np.uint64).max`` and distance ``inf``.

>>> import numpy as np, recallcore
>>> index = recallcore.HNSWIndex(4, metric="l2")
>>> ids = index.add(np.eye(4, dtype=np.float32), np.array([10, 11, 12, 13], dtype=np.uint64))
>>> found, dist = index.search(np.array([1, 0, 0, 0], dtype=np.float32), k=2)
>>> int(found[0]), float(dist[0])
(10, 0.0)
)doc")
      .def(py::init([](long dim, const std::string& metric, long M, long ef_construction, const std::string& storage,
                       std::uint64_t seed, const std::optional<long>& capacity, bool keep_originals) {
             if (dim <= 0) throw py::value_error("dim must be >= 1, got " + std::to_string(dim));
             if (M <= 0 || ef_construction <= 0) throw py::value_error("M and ef_construction must be >= 1");
             if (capacity && *capacity < 0) throw py::value_error("capacity must be >= 0");
             hnsw::Config c;
             c.dim = std::size_t(dim);
             c.metric = hnsw::parse_metric(metric);
             c.M = std::size_t(M);
             c.ef_construction = std::size_t(ef_construction);
             c.storage = hnsw::parse_storage(storage);
             c.seed = seed;
             c.capacity = capacity ? std::size_t(*capacity) : 0;
             c.keep_originals = keep_originals;
             c.validate();
             auto p = std::make_unique<PyIndex>();
             p->index = std::make_unique<Index>(c);
             return p;
           }),
           py::arg("dim"), py::kw_only(), py::arg("metric") = "cosine", py::arg("M") = 16,
           py::arg("ef_construction") = 200, py::arg("storage") = "f32", py::arg("seed") = 0,
           py::arg("capacity") = py::none(), py::arg("keep_originals") = true)
      .def("add", &add, py::arg("vectors"), py::arg("ids") = py::none(), py::kw_only(), py::arg("threads") = 0,
           "Adds float32 vectors (n, dim); returns their uint64 ids (assigned when ids is None). An existing "
           "id is replaced. threads=0 uses all cores.")
      .def("remove", [](PyIndex& self, const py::handle& ids_obj) {
             auto ids = to_ids(ids_obj, "ids");
             const std::uint64_t* p = ids.data();
             const std::size_t n = std::size_t(ids.shape(0));
             py::gil_scoped_release release;
             self.index->remove(p, n);
           }, py::arg("ids"), "Removes ids (ValueError on an unknown id; then nothing is removed).")
      .def("__len__", [](const PyIndex& self) { return self.index->size(); })
      .def("__contains__", [](const PyIndex& self, const py::object& id) {
             // Python ints and numpy integers (anything with __index__); other objects are never ids.
             if (PyBool_Check(id.ptr()) || !PyIndex_Check(id.ptr())) return false;
             const auto v = py::reinterpret_steal<py::int_>(PyNumber_Index(id.ptr()));
             if (!v) throw py::error_already_set();
             if (v < py::int_(0) || v > py::int_(kSentinel)) return false;
             return self.index->contains(v.cast<std::uint64_t>());
           }, py::arg("id"))
      .def("get_vectors", [](const PyIndex& self, const py::handle& ids_obj) {
             auto ids = to_ids(ids_obj, "ids");
             const std::size_t n = std::size_t(ids.shape(0)), dim = self.index->config().dim;
             py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(dim)});
             const std::uint64_t* p = ids.data();
             float* o = out.mutable_data();
             std::size_t missing = n;
             {
               py::gil_scoped_release release;
               for (std::size_t i = 0; i < n && missing == n; ++i)
                 if (!self.index->get_vector(p[i], o + i * dim)) missing = i;
             }
             if (missing != n) throw py::value_error("unknown id " + std::to_string(p[missing]));
             return out;
           }, py::arg("ids"), "The stored float32 vectors (normalised for cosine) of ids, shape (n, dim).")
      .def("ids", [](const PyIndex& self) {
             std::vector<std::uint64_t> v;
             {
               py::gil_scoped_release release;
               v = self.index->ids();
             }
             py::array_t<std::uint64_t> out(static_cast<py::ssize_t>(v.size()));
             std::copy(v.begin(), v.end(), out.mutable_data());
             return out;
           }, "The live ids.")
      .def("stats", &stats, "A dict: size, levels, memory_bytes, bytes_per_vector, tombstones, storage, simd_level, ...")
      .def("save", [](const PyIndex& self, const std::string& path, std::uint64_t stamp) {
             py::gil_scoped_release release;
             self.index->save(path, stamp);
           }, py::arg("path"), py::kw_only(), py::arg("stamp") = 0,
           "Writes a checksummed snapshot (atomically, via a temporary file and rename).")
      .def_static("load", [](const std::string& path, bool mmap) {
             auto p = std::make_unique<PyIndex>();
             {
               py::gil_scoped_release release;
               p->index = Index::load(path, mmap, &p->stamp);
             }
             return p;
           }, py::arg("path"), py::arg("mmap") = false,
           "Opens a snapshot; raises recallcore.CorruptionError for a damaged or mismatched file.")
      .def("compact", [](PyIndex& self) {
             py::gil_scoped_release release;
             self.index->compact();
           }, "Rebuilds the graph from the live vectors (drops tombstones).")
      .def_property("exact_scan_threshold",
                    [](const PyIndex& s) { return s.index->exact_scan_threshold(); },
                    [](PyIndex& s, const std::optional<std::int64_t>& n) { s.index->set_exact_scan_threshold(n ? *n : -1); },
                    "Allow-lists/masks admitting at most this many ids are scanned exactly instead of walked "
                    "(default: max(2048, size / 20)); assign None to restore the default, 0 to always walk.")
      .def_property_readonly("dim", [](const PyIndex& s) { return s.index->config().dim; })
      .def_property_readonly("metric", [](const PyIndex& s) { return hnsw::metric_name(s.index->config().metric); })
      .def_property_readonly("storage", [](const PyIndex& s) { return hnsw::storage_name(s.index->config().storage); })
      .def_property_readonly("M", [](const PyIndex& s) { return s.index->config().M; })
      .def_property_readonly("keep_originals", [](const PyIndex& s) { return s.index->config().keep_originals; },
                             "False when the index keeps no f32 copies (compressed codes only).")
      .def_property_readonly("ef_construction", [](const PyIndex& s) { return s.index->config().ef_construction; })
      .def_property_readonly("stamp", [](const PyIndex& s) { return s.stamp; },
                             "The stamp stored in the snapshot this index was loaded from (0 otherwise).")
      .def("__repr__", [](const PyIndex& s) {
        const auto& c = s.index->config();
        return "HNSWIndex(dim=" + std::to_string(c.dim) + ", metric='" + hnsw::metric_name(c.metric) + "', M=" +
               std::to_string(c.M) + ", storage='" + hnsw::storage_name(c.storage) + "', size=" +
               std::to_string(s.index->size()) + ")";
      });
  PyObject* descr = PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(cls.ptr()), &search_def);
  if (descr == nullptr) throw py::error_already_set();
  cls.attr("search") = py::reinterpret_steal<py::object>(descr);
}

}  // namespace recallcore::bindings
