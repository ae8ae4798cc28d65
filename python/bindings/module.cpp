// recallcore._core: the thin binding over the C++ core. Each concept registers itself from its own
// file; see common.h for the validation helpers every entry point uses.
#include "common.h"

namespace py = pybind11;
using namespace recallcore::bindings;

PYBIND11_MODULE(_core, m) {
  m.doc() = "recallcore C++ core (SIMD kernels, HNSW index, LMDB store, BM25, context packer).";
  register_errors(m);
  register_kernels(m);
  register_store(m);
  register_text(m);
  register_hnsw(m);
  register_context(m);
}
