// The checks of the Python-free C++ tests (no framework): CHECK(cond) reports a failed condition with
// its file and line and counts it in the including file's own `failures` (each file's
// run_<area>_tests() returns its count); throws<E>(f) says whether f throws E.
#pragma once

#include <cstdio>
#include <string>

namespace recallcore::tests {

inline void check(int& failures, bool ok, const char* what, const char* file, int line) {
  if (ok) return;
  ++failures;
  std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what);
}

// True when f() throws E (its message into *message, when given); false when it returns or throws
// anything else.
template <class E, class F>
bool throws(F&& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const E& e) {
    if (message) *message = e.what();
    return true;
  } catch (...) {
    return false;
  }
  return false;
}

}  // namespace recallcore::tests

#define CHECK(cond) ::recallcore::tests::check(failures, (cond), #cond, __FILE__, __LINE__)
