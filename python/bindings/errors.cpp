// One table from core error types to Python exception types:
//   InvalidArgument -> ValueError, TypeMismatch -> TypeError, Unsupported -> RuntimeError,
//   CorruptData -> recallcore.CorruptionError (a ValueError), StoreError -> recallcore.StoreError
//   (a RuntimeError). Anything else derived from std::exception becomes RuntimeError (pybind11).
#include "common.h"
#include "common/errors.h"

namespace recallcore::bindings {

void register_errors(py::module_& m) {
  py::register_exception<CorruptData>(m, "CorruptionError", PyExc_ValueError);
  py::register_exception<StoreError>(m, "StoreError", PyExc_RuntimeError);
  // Registered last so it is tried first: TypeMismatch derives from std::invalid_argument, which
  // pybind11 would otherwise turn into ValueError.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const TypeMismatch& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });
}

}  // namespace recallcore::bindings
