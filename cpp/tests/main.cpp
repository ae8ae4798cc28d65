// The Python-free C++ test executable (ctest target recallcore_cpp_tests): each file under cpp/tests
// exposes run_<area>_tests() returning its number of failed checks.
#include <cstdio>

int run_common_tests();
int run_engine_tests();
int run_hnsw_tests();
int run_text_tests();

int main() {
  const int failures = run_common_tests() + run_engine_tests() + run_hnsw_tests() + run_text_tests();
  if (failures != 0) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("all C++ tests passed\n");
  return 0;
}
