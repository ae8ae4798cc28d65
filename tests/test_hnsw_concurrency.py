"""HNSWIndex under concurrent use: searches while another thread adds and removes."""

from __future__ import annotations

import threading

import numpy as np

from hnsw_oracle import SENTINEL, clustered
from recallcore import HNSWIndex


def test_concurrent_searches_during_adds_and_removes_return_valid_results():
    dim = 24
    x = clustered(6000, dim, seed=4)
    idx = HNSWIndex(dim, metric="l2", ef_construction=64)
    idx.add(x[:1000], np.arange(1000, dtype=np.uint64))
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                q = x[rng.integers(0, len(x))]
                ids, dist = idx.search(q, k=10)
                live = ids[ids != SENTINEL]
                assert len(live) == 10
                assert len(set(live.tolist())) == len(live)
                assert np.all(np.diff(dist) >= 0)
                batch_ids, _ = idx.search(x[rng.integers(0, len(x), 8)], k=5, threads=2)
                assert batch_ids.shape == (8, 5)
        except BaseException as e:  # noqa: BLE001 - reported on the main thread
            errors.append(e)

    readers = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    for t in readers:
        t.start()
    try:
        for start in range(1000, 6000, 500):
            idx.add(x[start : start + 500], np.arange(start, start + 500, dtype=np.uint64), threads=2)
            idx.remove(np.arange(start - 1000, start - 800, dtype=np.uint64))
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not errors, errors[0]
    assert len(idx) == 6000 - 10 * 200
    found, _ = idx.search(x[5999], k=1)
    assert found[0] == 5999


def test_worker_errors_surface_on_the_caller():
    idx = HNSWIndex(4, metric="l2")
    idx.add(np.eye(4, dtype=np.float32))
    # A NaN query in a parallel batch is rejected before any worker starts, as a ValueError.
    q = np.ones((16, 4), dtype=np.float32)
    q[9, 2] = np.nan
    try:
        idx.search(q, k=2, threads=2)
    except ValueError as e:
        assert "finite" in str(e)
    else:
        raise AssertionError("NaN query accepted")
