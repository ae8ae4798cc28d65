"""The offline demo behind ``recallcore demo``."""

from __future__ import annotations

import time

import numpy as np

from . import _core, build_info, simd_level


def run_demo() -> int:
    info = build_info()
    print(f"recallcore {info['version']}  (SIMD: {simd_level()}; compiled: {', '.join(info['simd_compiled'])}; "
          f"LMDB {info['lmdb_version']})")
    rng = np.random.default_rng(0)
    base = rng.standard_normal((100_000, 384)).astype(np.float32)
    q = rng.standard_normal(384).astype(np.float32)
    print("\nOne query against 100,000 x 384 float32 vectors (squared L2), per SIMD level:")
    for level in _core.simd_levels():
        _core.distances(q, base, "l2", level=level)
        t = time.perf_counter()
        for _ in range(5):
            _core.distances(q, base, "l2", level=level)
        dt = (time.perf_counter() - t) / 5
        print(f"  {level:7s} {dt * 1e3:7.2f} ms   {base.nbytes / dt / 1e9:6.1f} GB/s")
    return 0
