// Shared helpers of the binding: argument validation with messages that name the argument and the
// expected value, and a scoped GIL release for work above a small size.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <utility>

namespace recallcore::bindings {

namespace py = pybind11;

// Registration functions, one per binding file (module.cpp calls them in order).
void register_errors(py::module_& m);
void register_kernels(py::module_& m);
void register_store(py::module_& m);
void register_text(py::module_& m);
void register_hnsw(py::module_& m);
void register_context(py::module_& m);

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

inline py::array require_array(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  return py::reinterpret_borrow<py::array>(obj);
}

template <class T>
inline void require_dtype(const py::array& a, const char* name) {
  if (!a.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + " must have dtype " + std::string(py::str(py::dtype::of<T>())) +
                         ", got " + std::string(py::str(a.dtype())));
}

inline void require_ndim(const py::array& a, const char* name, py::ssize_t ndim) {
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) + "-D, got shape " + shape_str(a));
}

inline void require_c_contiguous(const py::array& a, const char* name) {
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous (use numpy.ascontiguousarray)");
}

// Runs f with the GIL released when the work is big enough to be worth the hand-off.
template <class F>
inline auto maybe_without_gil(std::size_t work, F&& f) {
  if (work >= 4096) {
    py::gil_scoped_release release;
    return std::forward<F>(f)();
  }
  return std::forward<F>(f)();
}

}  // namespace recallcore::bindings
