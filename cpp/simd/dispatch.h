// Run-time choice of the SIMD level: detected once (CPUID + XGETBV), overridable with the environment
// variable RECALLCORE_SIMD=scalar|avx2|avx512 (a level the CPU lacks is refused, never executed).
#pragma once

#include <string>
#include <vector>

#include "simd/kernel_table.h"

namespace recallcore::simd {

// The table of the active level, chosen once on first use.
// Throws Unsupported when RECALLCORE_SIMD names an unknown level or one the CPU lacks.
const KernelTable& active();
Level active_level();

// The table of a given level; throws Unsupported when it is not compiled in or the CPU lacks it.
const KernelTable& table(Level level);

bool cpu_supports(Level level);
bool compiled(Level level);
bool cpu_has_vnni();

const char* level_name(Level level);
Level parse_level(const std::string& name);  // throws InvalidArgument for an unknown name
std::vector<Level> compiled_levels();
std::vector<Level> supported_levels();  // compiled in and supported by this CPU

}  // namespace recallcore::simd
