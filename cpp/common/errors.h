// Error types of the core. The core throws these; the Python binding maps each to one Python
// exception type (see python/bindings/errors.cpp), so a C++ error never crashes the interpreter.
#pragma once

#include <stdexcept>
#include <string>

namespace recallcore {

// Bad argument value (wrong dimension, NaN, k <= 0, unknown id, ...) -> ValueError.
struct InvalidArgument : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Wrong type of argument -> TypeError.
struct TypeMismatch : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// A file or database that fails its magic/version/size/checksum checks -> recallcore.CorruptionError.
struct CorruptData : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An environment/storage failure (LMDB error, I/O error, misuse such as fork) -> recallcore.StoreError.
struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The operation needs a feature this machine or build lacks (e.g. a forced SIMD level) -> RuntimeError.
struct Unsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace recallcore
