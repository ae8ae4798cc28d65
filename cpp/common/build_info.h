// What this build is: version, compiler, LMDB version. SIMD levels come from simd/dispatch.h.
#pragma once

#include <string>

namespace recallcore {

std::string version();
std::string compiler();
std::string lmdb_version();

}  // namespace recallcore
