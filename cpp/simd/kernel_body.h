// The SIMD kernel bodies, written once and instantiated per ISA level.
//
// Include this ONLY inside an anonymous namespace of a per-level translation unit, after defining
// `struct Ops` (see kernels_avx2.cpp): everything here then has internal linkage, so the linker can
// never pick an AVX-compiled copy of it for baseline code. No standard-library headers on purpose.
//
// Ops provides: W (lanes), V (register type), zero(), load(const float*), load(const uint16_t*),
// load(const int8_t*), fma(a, b, acc), sub(a, b), add(a, b), hsum(V), prefetch(const void*); for the
// integer kernel VI (32-bit lanes), WI (int16 elements per VI), zeroi(), madd(q16, c8, acc) (acc + pairwise
// q*c), addi(a, b), hsumi(VI).
// Tails (dim % W) go through a zero-padded W-element stack buffer: exact, and only one per call.

template <class T>
inline void copy_tail(const T* src, unsigned long n, T* dst, unsigned long width) {
  unsigned long i = 0;
  for (; i < n; ++i) dst[i] = src[i];
  for (; i < width; ++i) dst[i] = T(0);
}

// Sum over i of q[i]*v[i] (dot), (q[i]-v[i])^2 (l2) or both norms too (cosine), one pass.
template <class T>
inline void accumulate_dot(const float* q, const T* v, unsigned long dim, float* dot) {
  using V = typename Ops::V;
  constexpr unsigned long W = Ops::W;
  V a0 = Ops::zero(), a1 = Ops::zero();
  unsigned long i = 0;
  for (; i + 2 * W <= dim; i += 2 * W) {
    a0 = Ops::fma(Ops::load(q + i), Ops::load(v + i), a0);
    a1 = Ops::fma(Ops::load(q + i + W), Ops::load(v + i + W), a1);
  }
  for (; i + W <= dim; i += W) a0 = Ops::fma(Ops::load(q + i), Ops::load(v + i), a0);
  if (i < dim) {
    float qt[W];
    T vt[W];
    copy_tail(q + i, dim - i, qt, W);
    copy_tail(v + i, dim - i, vt, W);
    a0 = Ops::fma(Ops::load(qt), Ops::load(vt), a0);
  }
  *dot = Ops::hsum(Ops::add(a0, a1));
}

template <class T>
inline float accumulate_l2(const float* q, const T* v, unsigned long dim) {
  using V = typename Ops::V;
  constexpr unsigned long W = Ops::W;
  V a0 = Ops::zero(), a1 = Ops::zero();
  unsigned long i = 0;
  for (; i + 2 * W <= dim; i += 2 * W) {
    V d0 = Ops::sub(Ops::load(q + i), Ops::load(v + i));
    V d1 = Ops::sub(Ops::load(q + i + W), Ops::load(v + i + W));
    a0 = Ops::fma(d0, d0, a0);
    a1 = Ops::fma(d1, d1, a1);
  }
  for (; i + W <= dim; i += W) {
    V d = Ops::sub(Ops::load(q + i), Ops::load(v + i));
    a0 = Ops::fma(d, d, a0);
  }
  if (i < dim) {
    float qt[W];
    T vt[W];
    copy_tail(q + i, dim - i, qt, W);
    copy_tail(v + i, dim - i, vt, W);
    V d = Ops::sub(Ops::load(qt), Ops::load(vt));
    a0 = Ops::fma(d, d, a0);
  }
  return Ops::hsum(Ops::add(a0, a1));
}

template <class T>
inline void accumulate_cos(const float* q, const T* v, unsigned long dim, float* dot, float* qq, float* vv) {
  using V = typename Ops::V;
  constexpr unsigned long W = Ops::W;
  V d = Ops::zero(), nq = Ops::zero(), nv = Ops::zero();
  unsigned long i = 0;
  for (; i + W <= dim; i += W) {
    V x = Ops::load(q + i), y = Ops::load(v + i);
    d = Ops::fma(x, y, d);
    nq = Ops::fma(x, x, nq);
    nv = Ops::fma(y, y, nv);
  }
  if (i < dim) {
    float qt[W];
    T vt[W];
    copy_tail(q + i, dim - i, qt, W);
    copy_tail(v + i, dim - i, vt, W);
    V x = Ops::load(qt), y = Ops::load(vt);
    d = Ops::fma(x, y, d);
    nq = Ops::fma(x, x, nq);
    nv = Ops::fma(y, y, nv);
  }
  *dot = Ops::hsum(d);
  *qq = Ops::hsum(nq);
  *vv = Ops::hsum(nv);
}

inline float cosine_distance(float dot, float qq, float vv) {
  // NaN compares false everywhere, so a NaN input falls through to the division and propagates.
  if (qq == 0.0f || vv == 0.0f) return 1.0f;
  return 1.0f - dot / __builtin_sqrtf(qq * vv);
}

template <class T>
float dot_t(const float* q, const T* v, unsigned long dim) {
  float d;
  accumulate_dot(q, v, dim, &d);
  return d;
}
template <class T>
float l2_t(const float* q, const T* v, unsigned long dim) {
  return accumulate_l2(q, v, dim);
}
template <class T>
float cos_t(const float* q, const T* v, unsigned long dim) {
  float d, qq, vv;
  accumulate_cos(q, v, dim, &d, &qq, &vv);
  return cosine_distance(d, qq, vv);
}

// i8 codes: value = scale * code. The dot and the cosine need only the raw code sums (the scale
// factors out); l2 needs the scale inside the difference, so it runs on scaled lanes.
float dot_i8(const float* q, const signed char* c, float scale, unsigned long dim) {
  return scale * dot_t(q, c, dim);
}
float cos_i8(const float* q, const signed char* c, float scale, unsigned long dim) {
  // A zero scale is the zero vector; a negative one flips every value; cosine is otherwise invariant.
  if (scale == 0.0f) return 1.0f;
  float r = cos_t(q, c, dim);
  return scale < 0.0f ? 2.0f - r : r;
}
float l2_i8(const float* q, const signed char* c, float scale, unsigned long dim) {
  using V = typename Ops::V;
  constexpr unsigned long W = Ops::W;
  V s = Ops::set1(scale), a0 = Ops::zero();
  unsigned long i = 0;
  for (; i + W <= dim; i += W) {
    V d = Ops::sub(Ops::load(q + i), Ops::mul(s, Ops::load(c + i)));
    a0 = Ops::fma(d, d, a0);
  }
  if (i < dim) {
    float qt[W];
    signed char ct[W];
    copy_tail(q + i, dim - i, qt, W);
    copy_tail(c + i, dim - i, ct, W);
    V d = Ops::sub(Ops::load(qt), Ops::mul(s, Ops::load(ct)));
    a0 = Ops::fma(d, d, a0);
  }
  return Ops::hsum(a0);
}

template <class T, float (*F)(const float*, const T*, unsigned long)>
void block_t(const float* q, const T* base, unsigned long n, unsigned long dim, float* out) {
  for (unsigned long r = 0; r < n; ++r) {
    if (r + 2 < n) Ops::prefetch(base + (r + 2) * dim);
    out[r] = F(q, base + r * dim, dim);
  }
}

template <float (*F)(const float*, const signed char*, float, unsigned long)>
void block_i8(const float* q, const signed char* base, const float* scales, unsigned long n,
              unsigned long dim, float* out) {
  for (unsigned long r = 0; r < n; ++r) {
    if (r + 2 < n) Ops::prefetch(base + (r + 2) * dim);
    out[r] = F(q, base + r * dim, scales[r], dim);
  }
}

template <int (*F)(const signed char*, const signed char*, unsigned long)>
void block_i8i8(const signed char* q, const signed char* base, const int* /*row_sums: not needed here*/,
                unsigned long n, unsigned long dim, int* out) {
  for (unsigned long r = 0; r < n; ++r) {
    if (r + 2 < n)
      for (unsigned long b = 0; b < dim; b += 64) Ops::prefetch(base + (r + 2) * dim + b);
    out[r] = F(q, base + r * dim, dim);
  }
}

// Four rows at a time: one query load feeds four independent accumulators and four rows stream in
// together (one row per call leaves the loads of the next row waiting behind the previous reduction).
template <bool L2>
inline typename Ops::V gather_step(typename Ops::V x, typename Ops::V y, typename Ops::V acc) {
  if constexpr (L2) {
    const typename Ops::V d = Ops::sub(x, y);
    return Ops::fma(d, d, acc);
  } else {
    return Ops::fma(x, y, acc);
  }
}

template <bool L2>
void gather_f32(const float* q, const float* const* rows, unsigned long n, unsigned long dim, float* out) {
  using V = typename Ops::V;
  constexpr unsigned long W = Ops::W;
  for (unsigned long r = 0; r < n; r += 4) {
    // A last group of one to three rows repeats its final row: the repeats load from L1, which is
    // cheaper than the one-row kernel (a walk's node often has only one to three fresh neighbours).
    const unsigned long m = n - r < 4 ? n - r : 4;
    const float* v[4] = {rows[r], rows[r + (m > 1 ? 1 : 0)], rows[r + (m > 2 ? 2 : m - 1)], rows[r + m - 1]};
    V a[4] = {Ops::zero(), Ops::zero(), Ops::zero(), Ops::zero()};
    unsigned long i = 0;
    for (; i + W <= dim; i += W) {
      const V x = Ops::load(q + i);
      for (int j = 0; j < 4; ++j) a[j] = gather_step<L2>(x, Ops::load(v[j] + i), a[j]);
    }
    if (i < dim) {
      float qt[W], vt[W];
      copy_tail(q + i, dim - i, qt, W);
      const V x = Ops::load(qt);
      for (int j = 0; j < 4; ++j) {
        copy_tail(v[j] + i, dim - i, vt, W);
        a[j] = gather_step<L2>(x, Ops::load(vt), a[j]);
      }
    }
    for (unsigned long j = 0; j < m; ++j) out[r + j] = Ops::hsum(a[j]);
  }
}

void gather_cos(const float* q, const float* const* rows, unsigned long n, unsigned long dim, float* out) {
  for (unsigned long r = 0; r < n; ++r) out[r] = cos_t<float>(q, rows[r], dim);
}

// int16 query x int8 codes in 32-bit lanes: half the instructions per dimension of the float i8 kernel
// (no int -> float conversion, two products per lane and instruction).
int dot_i16i8(const short* q, const signed char* c, unsigned long dim) {
  using VI = typename Ops::VI;
  constexpr unsigned long WI = Ops::WI;
  VI a0 = Ops::zeroi(), a1 = Ops::zeroi();
  unsigned long i = 0;
  for (; i + 2 * WI <= dim; i += 2 * WI) {
    a0 = Ops::madd(q + i, c + i, a0);
    a1 = Ops::madd(q + i + WI, c + i + WI, a1);
  }
  for (; i + WI <= dim; i += WI) a0 = Ops::madd(q + i, c + i, a0);
  // Wrapping adds, as the lanes do (unsigned arithmetic: no signed overflow in the tail either).
  unsigned r = unsigned(Ops::hsumi(Ops::addi(a0, a1)));
  for (; i < dim; ++i) r += unsigned(int(q[i]) * int(c[i]));
  return int(r);
}

// The table, in Metric order {l2, ip, cosine}.
#define RECALLCORE_KERNEL_TABLE(LEVEL, DOT_I8I8)                                                        \
  {                                                                                                     \
    LEVEL, {l2_t<float>, dot_t<float>, cos_t<float>},                                                   \
        {l2_t<unsigned short>, dot_t<unsigned short>, cos_t<unsigned short>}, {l2_i8, dot_i8, cos_i8},  \
        {block_t<float, l2_t<float>>, block_t<float, dot_t<float>>, block_t<float, cos_t<float>>},      \
        {block_t<unsigned short, l2_t<unsigned short>>, block_t<unsigned short, dot_t<unsigned short>>, \
         block_t<unsigned short, cos_t<unsigned short>>},                                               \
        {block_i8<l2_i8>, block_i8<dot_i8>, block_i8<cos_i8>},                                          \
        {gather_f32<true>, gather_f32<false>, gather_cos}, DOT_I8I8, block_i8i8<DOT_I8I8>, dot_i16i8    \
  }
