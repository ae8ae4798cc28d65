"""SIMD distance kernels: every compiled level agrees with the scalar reference and with numpy."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import recallcore
from recallcore import _core

LEVELS = _core.simd_levels()
DIMS = [1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 127, 383, 384, 385, 1024, 1536]
METRICS = ["l2", "ip", "cosine"]
# RECALLCORE_SIMD forces the level under test (CI runs this file once per level the CPU has).
FORCED = os.environ.get("RECALLCORE_SIMD")


def reference(q: np.ndarray, m: np.ndarray, metric: str) -> np.ndarray:
    q64, m64 = q.astype(np.float64), m.astype(np.float64)
    if metric == "l2":
        return ((m64 - q64) ** 2).sum(axis=1)
    if metric == "ip":
        return 1.0 - m64 @ q64
    norms = np.linalg.norm(m64, axis=1) * np.linalg.norm(q64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, (m64 @ q64) / np.where(norms > 0, norms, 1.0), 0.0)
    return 1.0 - cos


def tolerance(dim: int, q: np.ndarray, m: np.ndarray, metric: str) -> np.ndarray:
    # float32 accumulation error grows with the number of terms and with the magnitudes summed.
    eps = 1e-6 * (dim + 8)
    if metric == "l2":
        return eps * 4 * ((np.abs(m.astype(np.float64)) + np.abs(q)) ** 2).sum(axis=1) + 1e-6
    if metric == "ip":
        return eps * 4 * (np.abs(m.astype(np.float64)) @ np.abs(q)) + 1e-6
    return np.full(len(m), eps * 8 + 1e-6)


def unaligned(a: np.ndarray) -> np.ndarray:
    """A copy of `a` whose data pointer is deliberately not 4-byte aligned... for float32, offset by one element."""
    buf = np.empty(a.size + 1, dtype=a.dtype)
    out = buf[1:].reshape(a.shape)
    out[...] = a
    return out


def test_simd_level_is_reported():
    assert recallcore.simd_level() in ("scalar", "avx2", "avx512")
    info = recallcore.build_info()
    assert info["simd_active"] == recallcore.simd_level()
    assert "scalar" in info["simd_compiled"]
    assert info["version"] == recallcore.__version__
    assert info["lmdb_version"].count(".") == 2
    if FORCED:
        assert recallcore.simd_level() == FORCED


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("n", [1, 1000])
def test_f32_levels_agree_with_numpy_and_scalar(level, dim, n):
    rng = np.random.default_rng(dim * 7 + n)
    q = rng.standard_normal(dim).astype(np.float32)
    m = rng.standard_normal((n, dim)).astype(np.float32)
    for metric in METRICS:
        ref = reference(q, m, metric)
        scalar = _core.distances(q, m, metric, level="scalar")
        for block in (True, False):
            got = _core.distances(q, m, metric, level=level, block=block)
            assert got.dtype == np.float32 and got.shape == (n,)
            tol = tolerance(dim, q, m, metric)
            assert np.all(np.abs(got - ref) <= tol), (metric, block)
            assert np.all(np.abs(got - scalar) <= 2 * tol), (metric, block)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dim", [1, 7, 16, 17, 33, 384, 385])
def test_unaligned_inputs(level, dim):
    rng = np.random.default_rng(dim)
    q = unaligned(rng.standard_normal(dim).astype(np.float32))
    m = unaligned(rng.standard_normal((5, dim)).astype(np.float32))
    assert q.ctypes.data % 8 != 0 or m.ctypes.data % 8 != 0
    for metric in METRICS:
        got = _core.distances(q, m, metric, level=level)
        assert np.all(np.abs(got - reference(q, m, metric)) <= tolerance(dim, q, m, metric))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dim", [1, 3, 8, 9, 17, 33, 384, 385, 1536])
def test_f16_levels_agree_with_decoded_reference(level, dim):
    rng = np.random.default_rng(dim + 1)
    q = rng.standard_normal(dim).astype(np.float32)
    m16 = rng.standard_normal((200, dim)).astype(np.float16)
    decoded = m16.astype(np.float32)  # numpy's conversion is the oracle for our F16C/software decode
    for metric in METRICS:
        got = _core.distances(q, m16, metric, level=level)
        assert np.all(np.abs(got - reference(q, decoded, metric)) <= tolerance(dim, q, decoded, metric))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dim", [1, 3, 8, 9, 16, 17, 31, 33, 64, 384, 385])
@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 9])
def test_f32_gather_agrees_with_numpy(level, dim, n):
    # The walk's kernel for scattered rows: four at a time, then the rest one by one.
    rng = np.random.default_rng(dim * 10 + n)
    q = rng.standard_normal(dim).astype(np.float32)
    m = rng.standard_normal((n, dim)).astype(np.float32)
    for metric in METRICS:
        got = _core.distances(q, m, metric, level=level, gather=True)
        assert got.shape == (n,)
        assert np.all(np.abs(got - reference(q, m, metric)) <= tolerance(dim, q, m, metric)), metric


def test_gather_needs_float32_rows():
    with pytest.raises(ValueError, match="gather"):
        _core.distances(np.ones(4, np.float32), np.ones((2, 4), np.float16), "l2", gather=True)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dim", [1, 3, 8, 9, 16, 17, 31, 33, 64, 384, 385])
def test_i8_levels_agree_with_decoded_reference(level, dim):
    rng = np.random.default_rng(dim + 2)
    q = rng.standard_normal(dim).astype(np.float32)
    codes = rng.integers(-127, 128, size=(300, dim), dtype=np.int8)
    scales = rng.uniform(-0.05, 0.05, size=300).astype(np.float32)
    scales[0] = 0.0
    decoded = codes.astype(np.float32) * scales[:, None]
    for metric in METRICS:
        got = _core.distances(q, codes, metric, scales=scales, level=level)
        ref = reference(q, decoded, metric)
        tol = tolerance(dim, q, decoded, metric) + 1e-5 * dim
        assert np.all(np.abs(got - ref) <= tol), metric


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dim", [1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 384, 385, 1536])
def test_i8_integer_dot_is_exact(level, dim):
    rng = np.random.default_rng(dim + 3)
    a = rng.integers(-128, 128, size=dim, dtype=np.int8)
    b = rng.integers(-128, 128, size=dim, dtype=np.int8)
    assert _core.dot_i8(a, b, level=level) == int(a.astype(np.int64) @ b.astype(np.int64))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dim", [1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 191, 192, 384, 385, 1536])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 37])
def test_i8_integer_block_dot_is_exact(level, dim, n):
    # Extremes included: -128 and 127 in both operands are where an unsigned-by-signed kernel could overflow.
    rng = np.random.default_rng(dim * 7 + n)
    q = rng.integers(-128, 128, size=dim, dtype=np.int8)
    rows = rng.integers(-128, 128, size=(n, dim), dtype=np.int8)
    if n:
        rows[0] = -128
        q[: dim // 2] = -128
    want = (rows.astype(np.int64) @ q.astype(np.int64)).tolist()
    got = _core.dot_i8(q, rows, level=level)
    assert got.dtype == np.int32 and got.shape == (n,)
    assert got.tolist() == want
    assert got.tolist() == _core.dot_i8(q, rows, level="scalar").tolist()
    sums = rows.astype(np.int32).sum(axis=1).astype(np.int32)  # the kept-sums path of the VNNI kernel
    assert _core.dot_i8(q, rows, row_sums=sums, level=level).tolist() == want


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dim", [1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 384, 385, 1536])
def test_i16_by_i8_integer_dot_is_exact(level, dim):
    rng = np.random.default_rng(dim + 4)
    top = min(32767, (2**31 - 1) // (127 * dim))  # the index's query range: no 32-bit overflow
    a = rng.integers(-top, top + 1, size=dim, dtype=np.int16)
    b = rng.integers(-127, 128, size=dim, dtype=np.int8)
    a[:3] = top  # extreme products in the first lanes
    b[:3] = -127
    want = int(a.astype(np.int64) @ b.astype(np.int64))
    assert _core.dot_i8(a, b, level=level) == want
    assert _core.dot_i8(a, b) == want


@pytest.mark.parametrize("level", LEVELS)
def test_zero_vectors_have_cosine_distance_one(level):
    q = np.zeros(17, dtype=np.float32)
    m = np.ones((2, 17), dtype=np.float32)
    assert np.allclose(_core.distances(q, m, "cosine", level=level), 1.0)
    assert np.allclose(_core.distances(m[0], np.zeros((1, 17), np.float32), "cosine", level=level), 1.0)


@pytest.mark.parametrize("level", LEVELS)
def test_nan_propagates(level):
    """Documented: kernels do not check for NaN; a NaN input gives a NaN distance (the index and
    the store reject non-finite vectors before they reach a kernel)."""
    q = np.ones(33, dtype=np.float32)
    m = np.ones((3, 33), dtype=np.float32)
    m[1, 20] = np.nan
    for metric in METRICS:
        got = _core.distances(q, m, metric, level=level)
        assert np.isfinite(got[0]) and np.isnan(got[1]) and np.isfinite(got[2])


def test_empty_matrix_and_zero_dim():
    assert _core.distances(np.ones(4, np.float32), np.ones((0, 4), np.float32)).shape == (0,)
    assert np.allclose(_core.distances(np.ones(0, np.float32), np.ones((2, 0), np.float32), "cosine"), 1.0)


def test_wrong_dtype_is_type_error():
    with pytest.raises(TypeError, match="query must have dtype float32"):
        _core.distances(np.ones(4), np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match="matrix must have dtype float32, float16 or int8"):
        _core.distances(np.ones(4, np.float32), np.ones((2, 4), np.float64))
    with pytest.raises(TypeError, match="must be a numpy array"):
        _core.distances([1.0, 2.0], np.ones((2, 2), np.float32))


def test_wrong_shape_is_value_error():
    with pytest.raises(ValueError, match="query must be 1-D"):
        _core.distances(np.ones((1, 4), np.float32), np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="matrix must be 2-D"):
        _core.distances(np.ones(4, np.float32), np.ones(4, np.float32))


def test_dimension_mismatch_is_value_error():
    with pytest.raises(ValueError, match="dimension mismatch: query has 5 elements, matrix rows have 4"):
        _core.distances(np.ones(5, np.float32), np.ones((2, 4), np.float32))


def test_non_contiguous_is_value_error():
    m = np.ones((4, 8), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.distances(np.ones(4, np.float32), m)


def test_unknown_metric_and_level():
    with pytest.raises(ValueError, match="metric must be"):
        _core.distances(np.ones(4, np.float32), np.ones((2, 4), np.float32), "hamming")
    with pytest.raises(ValueError, match="unknown SIMD level"):
        _core.distances(np.ones(4, np.float32), np.ones((2, 4), np.float32), level="sse9")


def test_int8_needs_matching_scales():
    codes = np.ones((3, 4), np.int8)
    with pytest.raises(ValueError, match="needs scales"):
        _core.distances(np.ones(4, np.float32), codes)
    with pytest.raises(ValueError, match="one entry per matrix row"):
        _core.distances(np.ones(4, np.float32), codes, scales=np.ones(2, np.float32))


def test_block_dot_needs_one_row_sum_per_row():
    rows = np.ones((3, 4), np.int8)
    with pytest.raises(ValueError, match="one entry per row"):
        _core.dot_i8(np.ones(4, np.int8), rows, row_sums=np.ones(2, np.int32))
    with pytest.raises(TypeError):
        _core.dot_i8(np.ones(4, np.int8), rows, row_sums=np.ones(3, np.int64))


def _import_with(level: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RECALLCORE_SIMD=level)
    return subprocess.run([sys.executable, "-c", "import recallcore; print(recallcore.simd_level())"],
                          env=env, capture_output=True, text=True)


@pytest.mark.parametrize("level", LEVELS)
def test_env_var_forces_a_supported_level(level):
    r = _import_with(level)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == level


def test_env_var_refuses_unknown_or_unsupported_level():
    r = _import_with("avx9000")
    assert r.returncode != 0
    assert "RECALLCORE_SIMD=avx9000 is not a SIMD level" in r.stderr
    missing = [lvl for lvl in ("avx2", "avx512") if lvl not in LEVELS]
    for lvl in missing:
        r = _import_with(lvl)
        assert r.returncode != 0 and "asks for a level" in r.stderr
