"""SIMD kernel benchmark: one query against 100,000 x 384 float32 vectors (squared L2, inner product,
cosine) per SIMD level, against numpy, in GB/s of vectors streamed, next to the machine's measured
memory bandwidth (a large numpy copy, read + write bytes). Then the same kernels on 2,000 rows that
stay in cache, one call per row (``block=False``: how a graph walk or a re-rank calls them), in ns
per row: there the arithmetic, not the memory, is the limit. Last, the namespace scan's estimate: an
int8 query against 1,000 int8 rows (a namespace's codes, in cache) through the block kernel, with and
without the rows' code sums kept, next to the float-query-by-code kernel it replaced.

    python benchmarks/bench_kernels.py              # a table
    pytest benchmarks/bench_kernels.py              # the same cases under pytest-benchmark
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from recallcore import _core

N, DIM = 100_000, 384
rng = np.random.default_rng(0)
BASE = rng.standard_normal((N, DIM)).astype(np.float32)
QUERY = rng.standard_normal(DIM).astype(np.float32)
BASE16 = BASE.astype(np.float16)
SCALES = (np.abs(BASE).max(axis=1) / 127).astype(np.float32)
BASE8 = np.round(BASE / SCALES[:, None]).astype(np.int8)


def numpy_l2(q: np.ndarray, m: np.ndarray) -> np.ndarray:
    d = m - q
    return np.einsum("ij,ij->i", d, d)


def numpy_ip(q: np.ndarray, m: np.ndarray) -> np.ndarray:
    return 1.0 - m @ q


def best_of(fn, repeat: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def memory_bandwidth_gbs() -> float:
    src = np.ones(64 * 1024 * 1024 // 8, dtype=np.float64)  # 64 MiB, far beyond the caches
    dst = np.empty_like(src)
    t = best_of(lambda: np.copyto(dst, src))
    return 2 * src.nbytes / t / 1e9


def main() -> None:
    bw = memory_bandwidth_gbs()
    print(f"1 query x {N:,} x {DIM} vectors; memory bandwidth (numpy copy, read+write): {bw:.1f} GB/s")
    print(f"{'case':34s} {'ms':>8s} {'GB/s':>7s} {'of bw':>6s} {'vs numpy':>9s}")
    for metric, ref in (("l2", numpy_l2), ("ip", numpy_ip)):
        t_np = best_of(lambda: ref(QUERY, BASE))  # noqa: B023 - called at once, inside the loop
        print(f"{'numpy f32 ' + metric:34s} {t_np * 1e3:8.2f} {BASE.nbytes / t_np / 1e9:7.1f} "
              f"{BASE.nbytes / t_np / 1e9 / bw:6.0%} {1.0:8.2f}x")
        for level in _core.simd_levels():
            for name, mat, kw in (("f32", BASE, {}), ("f16", BASE16, {}), ("i8", BASE8, {"scales": SCALES})):
                t = best_of(lambda: _core.distances(QUERY, mat, metric, level=level, **kw))  # noqa: B023
                gbs = mat.nbytes / t / 1e9
                print(f"{level + ' ' + name + ' ' + metric:34s} {t * 1e3:8.2f} {gbs:7.1f} {gbs / bw:6.0%} "
                      f"{t_np / t:8.2f}x")


def in_cache() -> None:
    hot = BASE[:2000].copy()
    print(f"\n1 query x {len(hot):,} x {DIM} vectors in cache, one kernel call per row: ns per row")
    for metric in ("l2", "ip", "cosine"):
        for level in _core.simd_levels():
            t = best_of(lambda: _core.distances(QUERY, hot, metric, level=level, block=False), repeat=50)  # noqa: B023
            print(f"{level + ' f32 ' + metric:34s} {t / len(hot) * 1e9:8.1f}")


def int8_scan() -> None:
    rows = BASE8[:1000].copy()
    scales = SCALES[:1000].copy()
    sums = rows.astype(np.int32).sum(axis=1).astype(np.int32)
    q8 = np.round(QUERY / (np.abs(QUERY).max() / 127)).astype(np.int8)
    print(f"\n1 query x {len(rows):,} x {DIM} int8 codes in cache (a namespace scan): us per call")
    for level in _core.simd_levels():
        cases = {
            "f32 query x i8 codes": lambda lv=level: _core.distances(QUERY, rows, "ip", scales=scales, level=lv),
            "i8 x i8": lambda lv=level: _core.dot_i8(q8, rows, level=lv),
            "i8 x i8, row sums kept": lambda lv=level: _core.dot_i8(q8, rows, row_sums=sums, level=lv),
        }
        for name, fn in cases.items():
            print(f"{level + ' ' + name:34s} {best_of(fn, repeat=200) * 1e6:8.2f}")


@pytest.mark.parametrize("level", _core.simd_levels())
@pytest.mark.parametrize("storage", ["f32", "f16", "i8"])
def test_kernel_l2(benchmark, level, storage):
    mat, kw = {"f32": (BASE, {}), "f16": (BASE16, {}), "i8": (BASE8, {"scales": SCALES})}[storage]
    benchmark(_core.distances, QUERY, mat, "l2", level=level, **kw)


def test_numpy_l2(benchmark):
    benchmark(numpy_l2, QUERY, BASE)


if __name__ == "__main__":
    main()
    in_cache()
    int8_scan()
