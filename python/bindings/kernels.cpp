// SIMD level introspection and a kernel entry point for tests and benchmarks.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "common.h"
#include "common/build_info.h"
#include "common/errors.h"
#include "simd/dispatch.h"

namespace recallcore::bindings {

namespace {

simd::Metric parse_metric(const std::string& name) {
  if (name == "l2") return simd::Metric::l2;
  if (name == "ip") return simd::Metric::ip;
  if (name == "cosine") return simd::Metric::cosine;
  throw py::value_error("metric must be 'l2', 'ip' or 'cosine', got '" + name + "'");
}

py::array_t<float> distances(const py::handle& query_obj, const py::handle& matrix_obj, const std::string& metric_name,
                             const py::object& scales_obj, const std::optional<std::string>& level_name, bool block,
                             bool gather) {
  const simd::Metric metric = parse_metric(metric_name);
  const simd::KernelTable& kt = level_name ? simd::table(simd::parse_level(*level_name)) : simd::active();

  py::array query = require_array(query_obj, "query");
  require_dtype<float>(query, "query");
  require_ndim(query, "query", 1);
  require_c_contiguous(query, "query");
  py::array matrix = require_array(matrix_obj, "matrix");
  require_ndim(matrix, "matrix", 2);
  require_c_contiguous(matrix, "matrix");
  const std::size_t n = std::size_t(matrix.shape(0)), dim = std::size_t(matrix.shape(1));
  if (std::size_t(query.shape(0)) != dim)
    throw py::value_error("dimension mismatch: query has " + std::to_string(query.shape(0)) +
                          " elements, matrix rows have " + std::to_string(dim));

  enum class Kind { f32, f16, i8 } kind;
  if (matrix.dtype().is(py::dtype::of<float>())) {
    kind = Kind::f32;
  } else if (matrix.dtype().is(py::dtype("float16"))) {
    kind = Kind::f16;
  } else if (matrix.dtype().is(py::dtype::of<std::int8_t>())) {
    kind = Kind::i8;
  } else {
    throw py::type_error("matrix must have dtype float32, float16 or int8, got " + std::string(py::str(matrix.dtype())));
  }
  const float* scales = nullptr;
  py::array scales_arr;
  if (kind == Kind::i8) {
    if (scales_obj.is_none()) throw py::value_error("an int8 matrix needs scales (one float32 per row)");
    scales_arr = require_array(scales_obj, "scales");
    require_dtype<float>(scales_arr, "scales");
    require_ndim(scales_arr, "scales", 1);
    require_c_contiguous(scales_arr, "scales");
    if (std::size_t(scales_arr.shape(0)) != n)
      throw py::value_error("scales must have one entry per matrix row (" + std::to_string(n) + "), got " +
                            std::to_string(scales_arr.shape(0)));
    scales = static_cast<const float*>(scales_arr.data());
  } else if (!scales_obj.is_none()) {
    throw py::value_error("scales apply only to an int8 matrix");
  }

  py::array_t<float> out(static_cast<py::ssize_t>(n));
  float* o = out.mutable_data();
  const float* q = static_cast<const float*>(query.data());
  const void* base = matrix.data();
  const int mi = int(metric);
  if (gather && kind != Kind::f32) throw py::value_error("gather applies only to a float32 matrix");
  maybe_without_gil(n * dim, [&] {
    if (gather) {
      // The rows as separate pointers, in reverse order: the kernel must not assume any layout.
      std::vector<const float*> rows(n);
      for (std::size_t r = 0; r < n; ++r) rows[r] = static_cast<const float*>(base) + (n - 1 - r) * dim;
      kt.f32_gather[mi](q, rows.data(), n, dim, o);
      std::reverse(o, o + n);
      return 0;
    }
    for (std::size_t r = 0; block ? r < 1 : r < n; ++r) {
      switch (kind) {
        case Kind::f32: {
          auto* b = static_cast<const float*>(base);
          if (block) kt.f32_block[mi](q, b, n, dim, o);
          else o[r] = kt.f32[mi](q, b + r * dim, dim);
          break;
        }
        case Kind::f16: {
          auto* b = static_cast<const std::uint16_t*>(base);
          if (block) kt.f16_block[mi](q, b, n, dim, o);
          else o[r] = kt.f16[mi](q, b + r * dim, dim);
          break;
        }
        case Kind::i8: {
          auto* b = static_cast<const std::int8_t*>(base);
          if (block) kt.i8_block[mi](q, b, scales, n, dim, o);
          else o[r] = kt.i8[mi](q, b + r * dim, scales[r], dim);
          break;
        }
      }
    }
    return 0;
  });
  // The kernels return the inner product as a similarity; as a distance (hnswlib's convention) it is
  // 1 - a.b, so every metric here is "smaller is closer".
  if (metric == simd::Metric::ip)
    for (std::size_t r = 0; r < n; ++r) o[r] = 1.0f - o[r];
  return out;
}

// a . b exactly; with a 2-D b (n rows), one dot per row through the block kernel.
py::object dot_i8(const py::handle& a_obj, const py::handle& b_obj, const py::object& row_sums_obj,
                  const std::optional<std::string>& level_name) {
  const simd::KernelTable& kt = level_name ? simd::table(simd::parse_level(*level_name)) : simd::active();
  py::array a = require_array(a_obj, "a"), b = require_array(b_obj, "b");
  // An int16 `a` runs the int16 x int8 kernel (the index's quantised-query estimate).
  const bool wide = a.dtype().is(py::dtype::of<std::int16_t>());
  for (auto [arr, nm] : {std::pair{&a, "a"}, std::pair{&b, "b"}}) {
    if (!(wide && arr == &a)) require_dtype<std::int8_t>(*arr, nm);
    require_c_contiguous(*arr, nm);
  }
  require_ndim(a, "a", 1);
  if (b.ndim() != 1 && b.ndim() != 2) throw py::value_error("b must be 1-D or 2-D, got " + std::to_string(b.ndim()) + "-D");
  if (wide && b.ndim() != 1) throw py::value_error("an int16 a takes a 1-D b");
  const py::ssize_t dim = b.shape(b.ndim() - 1);
  if (a.shape(0) != dim)
    throw py::value_error("dimension mismatch: a has " + std::to_string(a.shape(0)) + " elements, b's rows have " +
                          std::to_string(dim));
  const auto* pb = static_cast<const std::int8_t*>(b.data());
  if (wide) return py::int_(kt.dot_i16i8(static_cast<const std::int16_t*>(a.data()), pb, std::size_t(dim)));
  const auto* pa = static_cast<const std::int8_t*>(a.data());
  if (b.ndim() == 1) return py::int_(kt.dot_i8i8(pa, pb, std::size_t(dim)));
  const std::int32_t* sums = nullptr;
  py::array sums_arr;
  if (!row_sums_obj.is_none()) {
    sums_arr = require_array(row_sums_obj, "row_sums");
    require_dtype<std::int32_t>(sums_arr, "row_sums");
    require_ndim(sums_arr, "row_sums", 1);
    require_c_contiguous(sums_arr, "row_sums");
    if (sums_arr.shape(0) != b.shape(0)) throw py::value_error("row_sums needs one entry per row of b");
    sums = static_cast<const std::int32_t*>(sums_arr.data());
  }
  py::array_t<std::int32_t> out(b.shape(0));
  kt.dot_i8i8_block(pa, pb, sums, std::size_t(b.shape(0)), std::size_t(dim), out.mutable_data());
  return out;
}

}  // namespace

void register_kernels(py::module_& m) {
  m.def("simd_level", [] { return std::string(simd::level_name(simd::active_level())); },
        "The SIMD level in use: 'scalar', 'avx2' or 'avx512'.");
  m.def("simd_levels", [] {
    py::list out;
    for (auto l : simd::supported_levels()) out.append(simd::level_name(l));
    return out;
  }, "The levels compiled into this build that this CPU can run, lowest first.");
  m.def("build_info", [] {
    py::dict d;
    d["version"] = version();
    d["compiler"] = compiler();
    py::list compiled;
    for (auto l : simd::compiled_levels()) compiled.append(simd::level_name(l));
    d["simd_compiled"] = compiled;
    py::list supported;
    for (auto l : simd::supported_levels()) supported.append(simd::level_name(l));
    d["simd_supported"] = supported;
    d["simd_active"] = simd::level_name(simd::active_level());
    d["avx512_vnni"] = simd::cpu_has_vnni();
    d["lmdb_version"] = lmdb_version();
    return d;
  }, "A dict describing this build: version, compiler, SIMD levels compiled/supported/active, LMDB version.");
  m.def("distances", &distances, py::arg("query"), py::arg("matrix"), py::arg("metric") = "l2", py::kw_only(),
        py::arg("scales") = py::none(), py::arg("level") = py::none(), py::arg("block") = true,
        py::arg("gather") = false,
        "Distances from one query (float32[dim]) to every row of matrix (float32/float16/int8[n, dim]).");
  m.def("dot_i8", &dot_i8, py::arg("a"), py::arg("b"), py::kw_only(), py::arg("row_sums") = py::none(),
        py::arg("level") = py::none(),
        "Exact integer dot product of two int8 vectors (VNNI kernel where the CPU has it), or of an int16 `a`\n"
        "and an int8 `b` (exact while the sum of |a_i b_i| stays below 2**31); with a 2-D int8 b, an int32 array\n"
        "of a's dot with each row (the block kernel; row_sums, each row's int32 sum of codes, lets the VNNI\n"
        "kernel skip computing them).");
}

}  // namespace recallcore::bindings
