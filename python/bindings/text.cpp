// Text layer bindings: tokenizer, token estimator and the BM25 index.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common.h"
#include "common/errors.h"
#include "text/bm25.h"
#include "text/token_estimator.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace recallcore::bindings {

namespace {

// A str argument as UTF-8 bytes. Rejects bytes (TypeError) and lone surrogates (ValueError naming the
// position): PyUnicode_AsUTF8AndSize refuses surrogates, so no ill-formed UTF-8 reaches the core.
std::string_view utf8_of(const py::handle& obj, const char* name) {
  if (!PyUnicode_Check(obj.ptr())) {
    throw py::type_error(std::string(name) + " must be str, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))) +
                         (PyBytes_Check(obj.ptr()) ? " (decode bytes to str first)" : ""));
  }
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(obj.ptr(), &size);
  if (!data) {
    PyErr_Clear();
    throw py::value_error(std::string(name) + " is not valid Unicode text (it contains a lone surrogate)");
  }
  return {data, std::size_t(size)};
}

// The ids of a 1-D uint64 array (any integer array of non-negative values is accepted by value).
std::vector<std::uint64_t> ids_of(const py::handle& obj, const char* name) {
  py::array arr = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj)
                                                 : py::array(py::module_::import("numpy").attr("asarray")(obj));
  if (arr.ndim() != 1) throw py::value_error(std::string(name) + " must be 1-D, got shape " + shape_str(arr));
  if (arr.dtype().kind() != 'u' && arr.dtype().kind() != 'i' && !(arr.size() == 0))
    throw py::type_error(std::string(name) + " must hold integers, got dtype " + std::string(py::str(arr.dtype())));
  if (arr.dtype().kind() == 'i' && arr.size() > 0 &&
      py::module_::import("numpy").attr("any")(arr.attr("__lt__")(0)).cast<bool>())
    throw py::value_error(std::string(name) + " must not contain negative ids");
  auto u = py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>::ensure(arr);
  return {u.data(), u.data() + u.size()};
}

// A list holding the items of any iterable (keeps every item alive while views into them are used).
py::list as_list(const py::handle& obj, const char* name) {
  if (!PyObject_HasAttrString(obj.ptr(), "__iter__"))
    throw py::type_error(std::string(name) + " must be an iterable of str, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  return py::list(py::reinterpret_borrow<py::object>(obj));
}

std::uint64_t id_of(const py::handle& obj) {
  if (PyBool_Check(obj.ptr()) || !PyLong_Check(obj.ptr()))
    throw py::type_error("id must be int, got " + std::string(py::str(py::type::of(obj).attr("__name__"))));
  const unsigned long long v = PyLong_AsUnsignedLongLong(obj.ptr());
  if (PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error("id must be in [0, 2**64), got " + std::string(py::str(obj)));
  }
  return v;
}

std::uint32_t partition_of(const py::handle& obj) {
  if (PyBool_Check(obj.ptr()) || !PyLong_Check(obj.ptr()))
    throw py::type_error("partition must be int, got " + std::string(py::str(py::type::of(obj).attr("__name__"))));
  const long long v = PyLong_AsLongLong(obj.ptr());
  if (PyErr_Occurred() || v < 0 || v > 0xFFFFFFFFll) {
    PyErr_Clear();
    throw py::value_error("partition must be in [0, 2**32), got " + std::string(py::str(obj)));
  }
  return std::uint32_t(v);
}

py::list tokenize(const py::handle& text, bool stopwords, bool stem) {
  const std::string_view s = utf8_of(text, "text");
  std::vector<std::string> toks;
  {
    py::gil_scoped_release release;
    toks = text::tokenize(s, text::TokenizerOptions{stopwords, stem});
  }
  py::list out(toks.size());
  for (std::size_t i = 0; i < toks.size(); ++i) out[i] = py::str(toks[i]);
  return out;
}

std::size_t estimate_tokens(const py::handle& text) {
  const std::string_view s = utf8_of(text, "text");
  return maybe_without_gil(s.size(), [&] { return text::estimate_tokens(s); });
}

py::array_t<std::int64_t> estimate_tokens_many(const py::handle& texts_obj) {
  if (PyUnicode_Check(texts_obj.ptr()) || PyBytes_Check(texts_obj.ptr()))
    throw py::type_error("texts must be a sequence of str, not a single string");
  const py::list texts = as_list(texts_obj, "texts");
  std::vector<std::string_view> views;
  views.reserve(texts.size());
  std::size_t total = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const std::string name = "texts[" + std::to_string(i) + "]";
    views.push_back(utf8_of(texts[i], name.c_str()));  // str objects stay alive in `texts`
    total += views.back().size();
  }
  py::array_t<std::int64_t> out(py::ssize_t(views.size()));
  std::int64_t* o = out.mutable_data();
  maybe_without_gil(total, [&] {
    for (std::size_t i = 0; i < views.size(); ++i) o[i] = std::int64_t(text::estimate_tokens(views[i]));
    return 0;
  });
  return out;
}

class PyBm25 {
 public:
  PyBm25(float k1, float b, bool stopwords, bool stem) : index_(text::Bm25Params{k1, b}, {stopwords, stem}) {}
  explicit PyBm25(text::Bm25Index index) : index_(std::move(index)) {}

  void add(const py::handle& partition, const py::handle& id, const py::handle& text) {
    const std::uint32_t p = partition_of(partition);
    const std::uint64_t i = id_of(id);
    const std::string_view s = utf8_of(text, "text");
    py::gil_scoped_release release;
    index_.add(p, i, s);
  }

  void add_many(const py::handle& partition, const py::handle& ids_obj, const py::handle& texts_obj) {
    const std::uint32_t p = partition_of(partition);
    const std::vector<std::uint64_t> ids = ids_of(ids_obj, "ids");
    if (PyUnicode_Check(texts_obj.ptr())) throw py::type_error("texts must be a sequence of str, not a single string");
    const py::list texts = as_list(texts_obj, "texts");
    if (texts.size() != ids.size())
      throw py::value_error("ids and texts must have the same length, got " + std::to_string(ids.size()) + " and " +
                            std::to_string(texts.size()));
    std::vector<std::string_view> views;
    views.reserve(texts.size());
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const std::string name = "texts[" + std::to_string(i) + "]";
      views.push_back(utf8_of(texts[i], name.c_str()));
    }
    py::gil_scoped_release release;
    for (std::size_t i = 0; i < views.size(); ++i) index_.add(p, ids[i], views[i]);
  }

  bool remove(const py::handle& id) { return index_.remove(id_of(id)); }
  void drop_partition(const py::handle& partition) { index_.drop_partition(partition_of(partition)); }

  py::tuple search(const py::handle& partition, const py::handle& query, const py::handle& k_obj,
                   const py::handle& allowed) const {
    const std::uint32_t p = partition_of(partition);
    const std::string_view q = utf8_of(query, "query");
    if (PyBool_Check(k_obj.ptr()) || !PyLong_Check(k_obj.ptr()))
      throw py::type_error("k must be int, got " + std::string(py::str(py::type::of(k_obj).attr("__name__"))));
    const long long k = k_obj.cast<long long>();
    if (k < 0) throw py::value_error("k must be >= 0, got " + std::to_string(k));
    std::unique_ptr<text::AllowListFilter> filter;
    if (!allowed.is_none()) filter = std::make_unique<text::AllowListFilter>(ids_of(allowed, "allowed_ids"));
    std::vector<text::LexHit> hits;
    {
      py::gil_scoped_release release;
      hits = index_.search(p, q, std::size_t(k), filter.get());
    }
    py::array_t<std::uint64_t> ids(py::ssize_t(hits.size()));
    py::array_t<float> scores(py::ssize_t(hits.size()));
    auto* io = ids.mutable_data();
    auto* so = scores.mutable_data();
    for (std::size_t i = 0; i < hits.size(); ++i) {
      io[i] = hits[i].id;
      so[i] = hits[i].score;
    }
    return py::make_tuple(ids, scores);
  }

  py::bytes serialize() const {
    std::string s;
    {
      py::gil_scoped_release release;
      s = index_.serialize();
    }
    return py::bytes(s);
  }

  static PyBm25 deserialize(const py::handle& data) {
    if (!PyBytes_Check(data.ptr()) && !PyByteArray_Check(data.ptr()) && !PyMemoryView_Check(data.ptr()))
      throw py::type_error("data must be bytes, bytearray or memoryview, got " +
                           std::string(py::str(py::type::of(data).attr("__name__"))));
    // A simple (contiguous) buffer view, held while the GIL is released: an exporter such as a
    // bytearray cannot be resized while a view exists, so no copy is needed.
    struct View {
      Py_buffer b{};
      explicit View(PyObject* o) {
        if (PyObject_GetBuffer(o, &b, PyBUF_SIMPLE) != 0) throw py::error_already_set();
      }
      ~View() { PyBuffer_Release(&b); }
      View(const View&) = delete;
      View& operator=(const View&) = delete;
    } view(data.ptr());
    const std::string_view bytes(static_cast<const char*>(view.b.buf), std::size_t(view.b.len));
    py::gil_scoped_release release;
    return PyBm25(text::Bm25Index::deserialize(bytes));
  }

  const text::Bm25Index& index() const { return index_; }

 private:
  text::Bm25Index index_;
};

}  // namespace

void register_text(py::module_& m) {
  m.def("tokenize", &tokenize, py::arg("text"), py::kw_only(), py::arg("stopwords") = true, py::arg("stem") = true,
        "Word tokens of text for lexical search: lowercased, English stopwords removed, lightly stemmed.");
  m.def("valid_utf8", [](const py::bytes& b) { return text::valid_utf8(std::string_view(b)); }, py::arg("data"),
        "True when the bytes are well-formed UTF-8.");
  m.def("is_stopword", [](const std::string& w) { return text::is_stopword(w); }, py::arg("word"),
        "True for a word of the built-in English stopword list (lowercase, apostrophes removed).");
  m.def("estimate_tokens", &estimate_tokens, py::arg("text"),
        "Estimated number of cl100k_base tokens of text (no vocabulary; about ±10% in aggregate on English).");
  m.def("_cl100k_pieces", [](const py::handle& t) {
    const auto pieces = text::cl100k_pieces(utf8_of(t, "text"));
    py::list out;
    for (auto p : pieces) out.append(py::str(p.data(), p.size()));
    return out;
  }, py::arg("text"), "The estimator's cl100k pre-tokenisation pieces (for tests).");
  m.def("_estimate_tokens_decoding", [](const py::handle& t) { return text::estimate_tokens_decoding(utf8_of(t, "text")); },
        py::arg("text"), "estimate_tokens through the decoding path even for ASCII text (for tests).");
  m.def("estimate_tokens_many", &estimate_tokens_many, py::arg("texts"),
        "estimate_tokens for each text, as an int64 numpy array (the GIL is released).");

  py::class_<PyBm25>(m, "Bm25Index", "Partitioned in-memory BM25 index (one partition per namespace).")
      .def(py::init<float, float, bool, bool>(), py::kw_only(), py::arg("k1") = 1.2f, py::arg("b") = 0.75f,
           py::arg("stopwords") = true, py::arg("stem") = true)
      .def("add", &PyBm25::add, py::arg("partition"), py::arg("id"), py::arg("text"),
           "Index text under id in partition (replaces an existing id).")
      .def("add_many", &PyBm25::add_many, py::arg("partition"), py::arg("ids"), py::arg("texts"),
           "Index many texts in one partition (the GIL is released).")
      .def("remove", &PyBm25::remove, py::arg("id"), "Remove a document; False if the id is unknown.")
      .def("drop_partition", &PyBm25::drop_partition, py::arg("partition"), "Remove every document of a partition.")
      .def("search", &PyBm25::search, py::arg("partition"), py::arg("query"), py::arg("k"), py::kw_only(),
           py::arg("allowed_ids") = py::none(),
           "Top-k (ids uint64, scores float32) for query in partition, best first; allowed_ids restricts the hits.")
      .def("partition_size", [](const PyBm25& s, const py::handle& p) { return s.index().partition_size(partition_of(p)); },
           py::arg("partition"))
      .def("partitions", [](const PyBm25& s) { return s.index().partitions(); })
      .def("__contains__", [](const PyBm25& s, const py::handle& id) {
        return PyLong_Check(id.ptr()) && !PyBool_Check(id.ptr()) && s.index().contains(id_of(id));
      })
      .def("__len__", [](const PyBm25& s) { return s.index().size(); })
      .def_property_readonly("k1", [](const PyBm25& s) { return s.index().params().k1; })
      .def_property_readonly("b", [](const PyBm25& s) { return s.index().params().b; })
      .def("serialize", &PyBm25::serialize, "A checksummed byte image of the index.")
      .def_static("deserialize", &PyBm25::deserialize, py::arg("data"),
                  "Rebuild an index from serialize() bytes; CorruptionError if they are damaged.")
      .def("__repr__", [](const PyBm25& s) {
        return "<Bm25Index documents=" + std::to_string(s.index().size()) +
               " partitions=" + std::to_string(s.index().partitions().size()) + ">";
      });
}

}  // namespace recallcore::bindings
