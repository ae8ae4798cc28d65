// The context packer: _core.pack_sections takes one dict of numpy arrays per section, packs with the
// GIL released and returns the chosen and dropped items as numpy arrays (recallcore.pack builds on it).
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common.h"
#include "common/errors.h"
#include "context/packer.h"

namespace recallcore::bindings {

namespace {

namespace ctx = recallcore::context;

struct Parsed {
  std::vector<ctx::Section> sections;
  ctx::PackOptions options;
  std::vector<py::array> keep;  // owners of the vectors the candidates point into
};

std::uint32_t to_u32(std::int64_t v, const char* name, std::int64_t min) {
  if (v < min || v > std::int64_t(std::numeric_limits<std::uint32_t>::max()))
    throw py::value_error(std::string(name) + " must be in [" + std::to_string(min) + ", 4294967295], got " +
                          std::to_string(v));
  return std::uint32_t(v);
}

template <class T>
py::array column(const py::dict& d, const char* key, const std::string& where, py::ssize_t n) {
  const std::string name = where + "['" + key + "']";
  py::array a = require_array(d[key], name.c_str());
  require_dtype<T>(a, name.c_str());
  require_ndim(a, name.c_str(), 1);
  require_c_contiguous(a, name.c_str());
  if (n >= 0 && a.shape(0) != n)
    throw py::value_error(name + " must have " + std::to_string(n) + " entries (one per id), got " +
                          std::to_string(a.shape(0)));
  return a;
}

ctx::Section parse_section(const py::handle& obj, std::size_t s, std::vector<py::array>& keep) {
  const std::string where = "sections[" + std::to_string(s) + "]";
  if (!py::isinstance<py::dict>(obj)) throw py::type_error(where + " must be a dict");
  const auto d = py::reinterpret_borrow<py::dict>(obj);
  static const char* const known[] = {"name", "priority", "pinned", "quota", "ids", "scores",
                                      "tokens", "summary_tokens", "time", "framing", "vectors"};
  for (auto kv : d) {
    const std::string k = py::str(kv.first);
    bool ok = false;
    for (const char* name : known) ok = ok || k == name;
    if (!ok)
      throw py::value_error(where + " has unknown key '" + k + "' (expected name, priority, pinned, quota, ids, " +
                            "scores, tokens, summary_tokens, time, framing, vectors)");
  }
  for (const char* req : {"ids", "scores", "tokens"})
    if (!d.contains(req)) throw py::value_error(where + " needs '" + req + "'");

  ctx::Section sec;
  sec.name = d.contains("name") ? py::cast<std::string>(d["name"]) : "section" + std::to_string(s);
  if (d.contains("priority")) sec.priority = py::cast<int>(d["priority"]);
  if (d.contains("pinned")) sec.pinned = py::cast<bool>(d["pinned"]);
  if (d.contains("quota") && !d["quota"].is_none()) sec.quota = to_u32(py::cast<std::int64_t>(d["quota"]), "quota", 0);

  py::array ids = column<std::uint64_t>(d, "ids", where, -1);
  const py::ssize_t n = ids.shape(0);
  py::array scores = column<float>(d, "scores", where, n);
  py::array tokens = column<std::uint32_t>(d, "tokens", where, n);
  const bool has_sum = d.contains("summary_tokens") && !d["summary_tokens"].is_none();
  const bool has_time = d.contains("time") && !d["time"].is_none();
  const bool has_frame = d.contains("framing") && !d["framing"].is_none();
  const bool has_vec = d.contains("vectors") && !d["vectors"].is_none();
  py::array sum = has_sum ? column<std::uint32_t>(d, "summary_tokens", where, n) : py::array();
  py::array time = has_time ? column<double>(d, "time", where, n) : py::array();
  py::array frame = has_frame ? column<std::uint32_t>(d, "framing", where, n) : py::array();
  std::uint32_t dim = 0;
  const float* vec = nullptr;
  if (has_vec) {
    const std::string name = where + "['vectors']";
    py::array v = require_array(d["vectors"], name.c_str());
    require_dtype<float>(v, name.c_str());
    require_ndim(v, name.c_str(), 2);
    require_c_contiguous(v, name.c_str());
    if (v.shape(0) != n)
      throw py::value_error(name + " must have one row per id (" + std::to_string(n) + "), got shape " + shape_str(v));
    dim = to_u32(v.shape(1), "vector dimension", 1);
    vec = static_cast<const float*>(v.data());
    keep.push_back(v);
  }

  const auto* pid = static_cast<const std::uint64_t*>(ids.data());
  const auto* psc = static_cast<const float*>(scores.data());
  const auto* ptk = static_cast<const std::uint32_t*>(tokens.data());
  const auto* psum = has_sum ? static_cast<const std::uint32_t*>(sum.data()) : nullptr;
  const auto* ptime = has_time ? static_cast<const double*>(time.data()) : nullptr;
  const auto* pfr = has_frame ? static_cast<const std::uint32_t*>(frame.data()) : nullptr;
  sec.candidates.resize(std::size_t(n));
  for (py::ssize_t i = 0; i < n; ++i) {
    ctx::Candidate& c = sec.candidates[std::size_t(i)];
    c.id = pid[i];
    c.score = psc[i];
    c.tokens_full = ptk[i];
    c.tokens_summary = psum ? psum[i] : 0;
    c.framing_tokens = pfr ? pfr[i] : 0;
    c.time = ptime ? ptime[i] : 0.0;
    if (vec) {
      c.vector = vec + std::size_t(i) * dim;
      c.dim = dim;
    }
  }
  return sec;
}

Parsed parse(const py::sequence& sections, std::int64_t budget, const std::string& order, const std::string& mode,
             std::int64_t separator_tokens, std::int64_t framing_tokens, std::optional<double> dedupe,
             double summary_fidelity, const std::string& pinned_overflow, std::int64_t exact_max_items,
             std::int64_t exact_max_budget) {
  Parsed p;
  if (budget <= 0) throw py::value_error("budget must be > 0 tokens, got " + std::to_string(budget));
  p.options.budget = to_u32(budget, "budget", 1);
  p.options.separator_tokens = to_u32(separator_tokens, "separator_tokens", 0);
  p.options.framing_tokens = to_u32(framing_tokens, "framing_tokens", 0);
  p.options.order = ctx::parse_order(order);
  p.options.mode = ctx::parse_mode(mode);
  p.options.pinned_overflow = ctx::parse_pinned_overflow(pinned_overflow);
  if (dedupe) p.options.dedupe = float(*dedupe);
  p.options.summary_fidelity = float(summary_fidelity);
  p.options.exact_max_items = to_u32(exact_max_items, "exact_max_items", 0);
  p.options.exact_max_budget = to_u32(exact_max_budget, "exact_max_budget", 0);
  p.options.validate();
  p.sections.reserve(sections.size());
  for (std::size_t s = 0; s < sections.size(); ++s) p.sections.push_back(parse_section(sections[s], s, p.keep));
  return p;
}

template <class T>
py::array_t<T> empty(std::size_t n) {
  return py::array_t<T>(static_cast<py::ssize_t>(n));
}

py::dict to_python(const ctx::PackResult& r) {
  const std::size_t k = r.items.size(), m = r.dropped.size();
  auto ids = empty<std::uint64_t>(k);
  auto secs = empty<std::uint32_t>(k), idx = empty<std::uint32_t>(k), toks = empty<std::uint32_t>(k);
  auto fid = empty<std::uint8_t>(k);
  auto sc = empty<float>(k);
  auto pin = empty<bool>(k);
  for (std::size_t i = 0; i < k; ++i) {
    const ctx::PackedItem& it = r.items[i];
    ids.mutable_at(i) = it.id;
    secs.mutable_at(i) = it.section;
    idx.mutable_at(i) = it.index;
    toks.mutable_at(i) = it.tokens;
    fid.mutable_at(i) = std::uint8_t(it.fidelity);
    sc.mutable_at(i) = it.score;
    pin.mutable_at(i) = it.pinned;
  }
  auto dids = empty<std::uint64_t>(m);
  auto dsecs = empty<std::uint32_t>(m), didx = empty<std::uint32_t>(m);
  auto dreason = empty<std::uint8_t>(m);
  auto dsc = empty<float>(m);
  for (std::size_t i = 0; i < m; ++i) {
    const ctx::DroppedItem& it = r.dropped[i];
    dids.mutable_at(i) = it.id;
    dsecs.mutable_at(i) = it.section;
    didx.mutable_at(i) = it.index;
    dreason.mutable_at(i) = std::uint8_t(it.reason);
    dsc.mutable_at(i) = it.score;
  }
  py::dict out;
  out["ids"] = ids;
  out["sections"] = secs;
  out["indices"] = idx;
  out["fidelity"] = fid;
  out["tokens"] = toks;
  out["scores"] = sc;
  out["pinned"] = pin;
  out["dropped_ids"] = dids;
  out["dropped_sections"] = dsecs;
  out["dropped_indices"] = didx;
  out["dropped_reasons"] = dreason;
  out["dropped_scores"] = dsc;
  out["total_tokens"] = r.total_tokens;
  out["pinned_count"] = r.pinned_count;
  out["used_exact"] = r.used_exact;
  return out;
}

py::dict pack_sections(const py::sequence& sections, std::int64_t budget, const std::string& order,
                       const std::string& mode, std::int64_t separator_tokens, std::int64_t framing_tokens,
                       std::optional<double> dedupe, double summary_fidelity, const std::string& pinned_overflow,
                       std::int64_t exact_max_items, std::int64_t exact_max_budget) {
  Parsed p = parse(sections, budget, order, mode, separator_tokens, framing_tokens, dedupe, summary_fidelity,
                   pinned_overflow, exact_max_items, exact_max_budget);
  ctx::PackResult r;
  {
    // Everything the core reads is owned by `p` (and the arrays it keeps alive): no Python object is
    // touched, or destroyed, while the GIL is released.
    py::gil_scoped_release release;
    r = ctx::pack(p.sections, p.options);
  }
  return to_python(r);
}

// Times the core alone (arguments parsed once, GIL released, no numpy out): seconds per call.
py::array_t<double> pack_sections_timing(const py::sequence& sections, std::int64_t budget, const std::string& order,
                                         const std::string& mode, std::int64_t separator_tokens,
                                         std::int64_t framing_tokens, std::optional<double> dedupe,
                                         double summary_fidelity, const std::string& pinned_overflow,
                                         std::int64_t exact_max_items, std::int64_t exact_max_budget,
                                         std::int64_t repeat) {
  if (repeat <= 0) throw py::value_error("repeat must be > 0, got " + std::to_string(repeat));
  Parsed p = parse(sections, budget, order, mode, separator_tokens, framing_tokens, dedupe, summary_fidelity,
                   pinned_overflow, exact_max_items, exact_max_budget);
  std::vector<double> t(static_cast<std::size_t>(repeat));
  std::uint64_t sink = 0;
  {
    py::gil_scoped_release release;
    for (auto& x : t) {
      const auto t0 = std::chrono::steady_clock::now();
      const ctx::PackResult r = ctx::pack(p.sections, p.options);
      const auto t1 = std::chrono::steady_clock::now();
      sink += r.total_tokens;
      x = std::chrono::duration<double>(t1 - t0).count();
    }
  }
  (void)sink;
  py::array_t<double> out(static_cast<py::ssize_t>(repeat));
  std::copy(t.begin(), t.end(), out.mutable_data());
  return out;
}

}  // namespace

void register_context(py::module_& m) {
  py::tuple reasons(4);
  for (std::uint8_t i = 0; i < 4; ++i) reasons[i] = std::string(ctx::to_string(ctx::DropReason(i)));
  m.attr("PACK_DROP_REASONS") = reasons;
  m.def("pack_sections", &pack_sections, py::arg("sections"), py::arg("budget"), py::kw_only(),
        py::arg("order") = "edges", py::arg("mode") = "auto", py::arg("separator_tokens") = 0,
        py::arg("framing_tokens") = 0, py::arg("dedupe") = py::none(), py::arg("summary_fidelity") = 0.5,
        py::arg("pinned_overflow") = "error", py::arg("exact_max_items") = 64, py::arg("exact_max_budget") = 8192,
        "Pack sections of candidates (dicts of numpy arrays: ids uint64, scores float32, tokens uint32, optional "
        "summary_tokens uint32, time float64, framing uint32, vectors float32[n, dim]; name, priority, pinned, "
        "quota) into `budget` tokens. Returns a dict of numpy arrays: the chosen items in output order and the "
        "dropped ones with reason codes indexing PACK_DROP_REASONS. See recallcore.pack for the Python API.");
  m.def("_pack_sections_timing", &pack_sections_timing, py::arg("sections"), py::arg("budget"), py::kw_only(),
        py::arg("order") = "edges", py::arg("mode") = "auto", py::arg("separator_tokens") = 0,
        py::arg("framing_tokens") = 0, py::arg("dedupe") = py::none(), py::arg("summary_fidelity") = 0.5,
        py::arg("pinned_overflow") = "error", py::arg("exact_max_items") = 64, py::arg("exact_max_budget") = 8192,
        py::arg("repeat") = 1000,
        "Benchmark hook: seconds per call of the C++ packer alone, `repeat` calls on the same input.");
}

}  // namespace recallcore::bindings
