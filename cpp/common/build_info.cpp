#include "common/build_info.h"

#include <lmdb.h>

namespace recallcore {

std::string version() { return RECALLCORE_VERSION; }
std::string compiler() { return RECALLCORE_COMPILER; }
std::string lmdb_version() {
  int major = 0, minor = 0, patch = 0;
  mdb_version(&major, &minor, &patch);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace recallcore
