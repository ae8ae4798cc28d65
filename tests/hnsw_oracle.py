"""Shared helpers of the HNSW tests: synthetic clustered data and a brute-force oracle."""

from __future__ import annotations

import numpy as np

SENTINEL = np.iinfo(np.uint64).max


def clustered(n: int, dim: int, *, centres: int = 50, seed: int = 0, spread: float = 0.35) -> np.ndarray:
    """A Gaussian mixture: realistic neighbourhoods (pure Gaussian noise has none)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + spread * rng.standard_normal((n, dim)).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def distances(metric: str, q: np.ndarray, x: np.ndarray) -> np.ndarray:
    q = np.atleast_2d(q).astype(np.float64)
    x = x.astype(np.float64)
    if metric == "l2":
        return (q * q).sum(1)[:, None] - 2 * q @ x.T + (x * x).sum(1)[None, :]
    if metric == "cosine":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        return 1.0 - qn @ xn.T
    return 1.0 - q @ x.T


def exact_knn(metric: str, q: np.ndarray, x: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    d = distances(metric, q, x)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return ids[order]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    found = np.atleast_2d(found)
    truth = np.atleast_2d(truth)
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / truth.size
