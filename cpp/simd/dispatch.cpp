#include "simd/dispatch.h"

#include <cstdlib>
#include <string>

#include "common/errors.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define RECALLCORE_X86_CPU 1
#endif

namespace recallcore::simd {
namespace {

struct CpuFeatures {
  bool avx2 = false;    // AVX2 + FMA + F16C, with the OS saving YMM state
  bool avx512 = false;  // AVX-512 F/BW/VL/DQ, with the OS saving opmask + ZMM state
  bool vnni = false;    // AVX512_VNNI
};

#if defined(RECALLCORE_X86_CPU)
std::uint64_t read_xcr0() {
  std::uint32_t lo, hi;
  // xgetbv is only executed after CPUID reported OSXSAVE, so it cannot fault.
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (std::uint64_t(hi) << 32) | lo;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#if defined(RECALLCORE_X86_CPU)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12), f16c = c & (1u << 29), avx = c & (1u << 28);
  if (!osxsave || !avx) return f;
  const std::uint64_t xcr0 = read_xcr0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;     // SSE + AVX state
  const bool zmm_state = (xcr0 & 0xE6) == 0xE6;   // + opmask, ZMM_Hi256, Hi16_ZMM
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5);
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17), avx512bw = b & (1u << 30),
             avx512vl = b & (1u << 31);
  f.avx2 = ymm_state && avx2 && fma && f16c;
  f.avx512 = f.avx2 && zmm_state && avx512f && avx512dq && avx512bw && avx512vl;
  f.vnni = f.avx512 && (c & (1u << 11));
#endif
  return f;
}

const CpuFeatures& features() {
  static const CpuFeatures f = detect();
  return f;
}

#if defined(RECALLCORE_HAVE_AVX512)
const KernelTable& avx512_best() {
  // The VNNI integer dots are patched in once; the rest of the table is the plain AVX-512 one.
  static const KernelTable t = [] {
    KernelTable copy = avx512_table();
    if (features().vnni) {
      copy.dot_i8i8 = avx512_vnni_dot_i8i8;
      copy.dot_i8i8_block = avx512_vnni_dot_i8i8_block;
      copy.dot_i16i8 = avx512_vnni_dot_i16i8;
    }
    return copy;
  }();
  return t;
}
#endif

std::string supported_list() {
  std::string s;
  for (Level l : supported_levels()) s += (s.empty() ? "" : ", ") + std::string(level_name(l));
  return s;
}

const KernelTable& choose() {
  const char* env = std::getenv("RECALLCORE_SIMD");
  if (env != nullptr && *env != '\0') {
    Level want;
    try {
      want = parse_level(env);
    } catch (const InvalidArgument&) {
      throw Unsupported(std::string("RECALLCORE_SIMD=") + env +
                        " is not a SIMD level; use one of scalar, avx2, avx512 (this CPU supports: " +
                        supported_list() + ")");
    }
    if (!compiled(want) || !cpu_supports(want))
      throw Unsupported(std::string("RECALLCORE_SIMD=") + env + " asks for a level this " +
                        (compiled(want) ? "CPU lacks" : "build does not include") +
                        " (supported here: " + supported_list() + ")");
    return table(want);
  }
  const auto levels = supported_levels();
  return table(levels.back());
}

}  // namespace

const char* level_name(Level level) {
  switch (level) {
    case Level::scalar: return "scalar";
    case Level::avx2: return "avx2";
    case Level::avx512: return "avx512";
  }
  return "unknown";
}

Level parse_level(const std::string& name) {
  if (name == "scalar") return Level::scalar;
  if (name == "avx2") return Level::avx2;
  if (name == "avx512") return Level::avx512;
  throw InvalidArgument("unknown SIMD level '" + name + "' (expected scalar, avx2 or avx512)");
}

bool compiled(Level level) {
  switch (level) {
    case Level::scalar: return true;
#if defined(RECALLCORE_HAVE_AVX2)
    case Level::avx2: return true;
#endif
#if defined(RECALLCORE_HAVE_AVX512)
    case Level::avx512: return true;
#endif
    default: return false;
  }
}

bool cpu_supports(Level level) {
  switch (level) {
    case Level::scalar: return true;
    case Level::avx2: return features().avx2;
    case Level::avx512: return features().avx512;
  }
  return false;
}

bool cpu_has_vnni() { return features().vnni; }

std::vector<Level> compiled_levels() {
  std::vector<Level> out;
  for (Level l : {Level::scalar, Level::avx2, Level::avx512})
    if (compiled(l)) out.push_back(l);
  return out;
}

std::vector<Level> supported_levels() {
  std::vector<Level> out;
  for (Level l : compiled_levels())
    if (cpu_supports(l)) out.push_back(l);
  return out;
}

const KernelTable& table(Level level) {
  if (!compiled(level)) throw Unsupported(std::string("SIMD level ") + level_name(level) + " is not compiled into this build");
  if (!cpu_supports(level)) throw Unsupported(std::string("this CPU does not support SIMD level ") + level_name(level));
  switch (level) {
#if defined(RECALLCORE_HAVE_AVX2)
    case Level::avx2: return avx2_table();
#endif
#if defined(RECALLCORE_HAVE_AVX512)
    case Level::avx512: return avx512_best();
#endif
    default: return scalar_table();
  }
}

const KernelTable& active() {
  static const KernelTable& t = choose();
  return t;
}

Level active_level() { return active().level; }

}  // namespace recallcore::simd
