"""HNSWIndex: recall against a brute-force oracle, filters, deletes, compressed storage, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import recallcore
from hnsw_oracle import SENTINEL, clustered, distances, exact_knn, recall
from recallcore import HNSWIndex

N, DIM = 3000, 32


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x = clustered(N + 100, DIM, seed=1)
    return x[:N].copy(), x[N:].copy()


@pytest.fixture(scope="module")
def built(data):
    x, _ = data
    idx = HNSWIndex(DIM, metric="l2", M=16, ef_construction=100, seed=3)
    idx.add(x, np.arange(N, dtype=np.uint64) * 7 + 5)
    return idx


def ids_of(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.uint64) * 7 + 5


# ---------------------------------------------------------------------------------------------- recall
@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_recall_matches_brute_force_for_each_metric(data, metric):
    x, q = data
    idx = HNSWIndex(DIM, metric=metric, M=16, ef_construction=100)
    idx.add(x, ids_of(N))
    found, dist = idx.search(q, k=10, ef=64)
    truth = exact_knn(metric, q, x, ids_of(N), 10)
    assert recall(found, truth) >= 0.95
    # Reported distances are the metric's distances, sorted ascending.
    assert np.all(np.diff(dist, axis=1) >= -1e-6)
    rows = (found[:, 0] - 5) // 7
    expect = distances(metric, q, x)[np.arange(len(q)), rows.astype(np.int64)]
    np.testing.assert_allclose(dist[:, 0], expect, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_recall_on_a_cache_resident_index(metric):
    # A level-0 block of at most 256 KB is walked without prefetches and, with f32 storage, its
    # neighbours' distances come from the four-rows-at-a-time gather kernel.
    x = clustered(460, 48, seed=7)
    q, x = x[400:], x[:400]
    idx = HNSWIndex(48, metric=metric, M=8, ef_construction=64)
    idx.add(x, ids_of(400))
    assert idx.stats()["traversal_bytes"] <= 256 << 10
    found, dist = idx.search(q, k=10, ef=32)
    assert recall(found, exact_knn(metric, q, x, ids_of(400), 10)) >= 0.95
    rows = ((found - 5) // 7).astype(np.int64)
    expect = np.take_along_axis(distances(metric, q, x), rows, 1)
    np.testing.assert_allclose(dist, expect, rtol=1e-4, atol=1e-4)


def test_a_stored_vector_finds_itself(built, data):
    x, _ = data
    found, dist = built.search(x[:50], k=1)
    np.testing.assert_array_equal(found[:, 0], ids_of(50))
    np.testing.assert_allclose(dist[:, 0], 0.0, atol=1e-4)


def test_sift10k_recall_at_10(data_dir):
    base_path = data_dir / "sift10k" / "bigann10k_base.npy"
    if not base_path.exists():
        pytest.skip("sift10k not present")
    base = np.ascontiguousarray(np.load(base_path), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(data_dir / "sift10k" / "bigann10k_query.npy"), dtype=np.float32)
    idx = HNSWIndex(base.shape[1], metric="l2", M=16, ef_construction=100)
    idx.add(base, threads=2)
    found, _ = idx.search(queries, k=10, ef=64)
    truth = exact_knn("l2", queries, base, np.arange(len(base), dtype=np.uint64), 10)
    assert recall(found, truth) >= 0.95
    self_found, _ = idx.search(base[123], k=1)
    assert self_found[0] == 123


def test_single_query_returns_1d_and_batch_returns_2d(built, data):
    _, q = data
    ids1, d1 = built.search(q[0], k=5)
    assert ids1.shape == (5,) and d1.shape == (5,) and ids1.dtype == np.uint64 and d1.dtype == np.float32
    ids2, d2 = built.search(q[:3], k=5)
    assert ids2.shape == (3, 5) and d2.shape == (3, 5)
    np.testing.assert_array_equal(ids2[0], ids1)


def test_results_are_padded_with_the_sentinel_when_fewer_than_k_exist():
    idx = HNSWIndex(4, metric="l2")
    idx.add(np.eye(3, 4, dtype=np.float32), np.array([1, 2, 3], dtype=np.uint64))
    ids, dist = idx.search(np.ones(4, dtype=np.float32), k=5)
    assert sorted(ids[:3].tolist()) == [1, 2, 3]
    assert ids[3] == SENTINEL and ids[4] == SENTINEL
    assert np.isinf(dist[3:]).all()


def test_empty_index_returns_only_sentinels():
    idx = HNSWIndex(4)
    ids, dist = idx.search(np.ones(4, dtype=np.float32), k=3)
    assert (ids == SENTINEL).all() and np.isinf(dist).all()
    assert len(idx) == 0


def test_assigned_ids_are_unique_and_follow_the_largest_seen():
    idx = HNSWIndex(4, metric="l2")
    a = idx.add(np.random.default_rng(0).random((3, 4), dtype=np.float32))
    assert a.tolist() == [0, 1, 2]
    idx.add(np.ones((1, 4), dtype=np.float32), np.array([100], dtype=np.uint64))
    b = idx.add(np.zeros((2, 4), dtype=np.float32))
    assert b.tolist() == [101, 102]
    assert len(idx) == 6 and 100 in idx and 3 not in idx
    assert np.uint64(100) in idx and b[0] in idx and -1 not in idx and "100" not in idx and 2**70 not in idx


def test_parallel_build_has_the_same_recall_as_serial(data):
    x, q = data
    truth = exact_knn("l2", q, x, ids_of(N), 10)
    for threads in (1, 2):
        idx = HNSWIndex(DIM, metric="l2", M=16, ef_construction=100)
        idx.add(x, ids_of(N), threads=threads)
        assert recall(idx.search(q, k=10, ef=64)[0], truth) >= 0.95


def test_batch_search_in_threads_equals_one_thread(built, data):
    _, q = data
    a = built.search(q, k=10, threads=1)
    b = built.search(q, k=10, threads=2)
    np.testing.assert_array_equal(a[0], b[0])


# ---------------------------------------------------------------------------------------------- filters
@pytest.mark.parametrize("fraction", [1.0, 0.3, 0.05, 0.01, 0.001, 0.0001])
def test_filtered_search_is_near_exact_at_every_selectivity(fraction):
    n = 20000
    big = clustered(n + 40, DIM, seed=5)
    q, big = big[n:], big[:n]
    idx = HNSWIndex(DIM, metric="l2", M=16, ef_construction=100)
    ids = np.arange(n, dtype=np.uint64)
    idx.add(big, ids, threads=2)
    rng = np.random.default_rng(int(fraction * 1e6))
    allowed = np.sort(rng.choice(n, size=max(1, int(n * fraction)), replace=False)).astype(np.uint64)
    found, _ = idx.search(q, k=10, ef=64, filter=allowed)
    k_eff = min(10, len(allowed))
    truth = exact_knn("l2", q, big[allowed.astype(np.int64)], allowed, k_eff)
    assert recall(found[:, :k_eff], truth) >= 0.99
    assert np.isin(found[found != SENTINEL], allowed).all()
    if len(allowed) < 10:
        assert (found[:, len(allowed) :] == SENTINEL).all()


@pytest.mark.parametrize("keep_originals", [True, False])
@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_i8_exact_scan_of_the_codes_equals_brute_force(metric, keep_originals):
    # With i8 storage the exact scan ranks by the codes and re-ranks only the rows their error bound
    # cannot rule out: the result must be the brute-force top-k of the precise vectors (the f32
    # originals, or without them the decoded codes), at every allow-list size. Near-duplicates make
    # the estimate's order wrong more often than clustered data alone would.
    n, dim = 4000, 48
    x = clustered(n + 30, dim, seed=11, spread=0.2)
    q, x = x[n:], x[:n]
    x[1::2] = x[::2] + 0.002 * np.random.default_rng(2).standard_normal((n // 2, dim)).astype(np.float32)
    idx = HNSWIndex(dim, metric=metric, M=8, ef_construction=40, storage="i8", keep_originals=keep_originals)
    ids = np.arange(n, dtype=np.uint64) * 3 + 1
    idx.add(x, ids)
    idx.exact_scan_threshold = 1 << 40
    precise = x if keep_originals else idx.get_vectors(ids)
    # Without originals the index ranks by the decoded (unit vector) codes as they are: not re-normalised.
    oracle = "ip" if metric == "cosine" and not keep_originals else metric
    if oracle != metric:
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    rng = np.random.default_rng(4)
    for size in (1, 9, 10, 11, 100, 1000, n):
        allowed = rng.choice(ids, size=size, replace=False)
        rows = ((allowed - 1) // 3).astype(np.int64)
        k_eff = min(10, size)
        found, dist = idx.search(q, k=10, filter=allowed)
        truth = np.sort(distances(oracle, q, precise[rows]), axis=1)[:, :k_eff]
        # Distances rather than ids: exact ties may resolve either way.
        np.testing.assert_allclose(dist[:, :k_eff], truth, rtol=1e-4, atol=2e-5)
        assert recall(found[:, :k_eff], exact_knn(oracle, q, precise[rows], allowed, k_eff)) >= 0.99
        assert (found[:, k_eff:] == SENTINEL).all()


def test_boolean_mask_filter_equals_the_allow_list(built, data):
    _, q = data
    allowed = ids_of(N)[::3]
    mask = np.zeros(int(ids_of(N)[-1]) + 1, dtype=bool)
    mask[allowed.astype(np.int64)] = True
    a = built.search(q[:20], k=10, filter=allowed)
    b = built.search(q[:20], k=10, filter=mask)
    np.testing.assert_array_equal(a[0], b[0])
    assert np.isin(a[0], allowed).all()


def test_unsorted_allow_list_above_the_exact_threshold_walks_the_graph(built, data):
    _, q = data
    threshold = built.stats()["exact_scan_threshold"]
    rng = np.random.default_rng(0)
    allowed = rng.permutation(ids_of(N))[: min(N, threshold + 200)]
    assert len(allowed) > threshold
    found, _ = built.search(q[:20], k=10, ef=64, filter=allowed)
    x = clustered(N + 100, DIM, seed=1)[:N]
    rows = ((allowed - 5) // 7).astype(np.int64)
    truth = exact_knn("l2", q[:20], x[rows], allowed, 10)
    assert recall(found, truth) >= 0.99


def test_filter_rejects_a_python_callable(built, data):
    _, q = data
    with pytest.raises(TypeError, match="callable"):
        built.search(q[0], k=3, filter=lambda i: True)


# ---------------------------------------------------------------------------------------------- deletes
def test_removed_ids_never_come_back_and_live_results_fill_k(data):
    x, q = data
    idx = HNSWIndex(DIM, metric="l2", M=16, ef_construction=100)
    ids = ids_of(N)
    idx.add(x, ids)
    gone = ids[::2]
    idx.remove(gone)
    assert len(idx) == N - len(gone)
    assert int(gone[0]) not in idx and int(ids[1]) in idx
    found, _ = idx.search(q, k=10, ef=64)
    assert not np.isin(found, gone).any()
    assert (found != SENTINEL).all()
    keep = ids[1::2]
    truth = exact_knn("l2", q, x[1::2], keep, 10)
    assert recall(found, truth) >= 0.95
    assert idx.stats()["tombstones"] == len(gone)


def test_slots_of_removed_ids_are_reused(data):
    x, _ = data
    idx = HNSWIndex(DIM, metric="l2")
    idx.add(x[:500], np.arange(500, dtype=np.uint64))
    slots_before = idx.stats()["slots"]
    idx.remove(np.arange(100, dtype=np.uint64))
    idx.add(x[500:600], np.arange(1000, 1100, dtype=np.uint64))
    st = idx.stats()
    # The entry point is never reused (it may stay a tombstone), so at most one fresh slot is taken.
    assert st["slots"] <= slots_before + 1
    assert st["tombstones"] <= 1
    found, _ = idx.search(x[550], k=1)
    assert found[0] == 1050


def test_re_adding_an_id_replaces_its_vector(data):
    x, _ = data
    idx = HNSWIndex(DIM, metric="l2")
    idx.add(x[:200], np.arange(200, dtype=np.uint64))
    idx.add(x[300:301], np.array([7], dtype=np.uint64))
    assert len(idx) == 200
    np.testing.assert_array_equal(idx.get_vectors(np.array([7], dtype=np.uint64))[0], x[300])
    found, dist = idx.search(x[300], k=1)
    assert found[0] == 7 and dist[0] == pytest.approx(0.0, abs=1e-5)


def test_compact_drops_tombstones_and_keeps_results(data):
    x, q = data
    idx = HNSWIndex(DIM, metric="l2", ef_construction=100)
    ids = ids_of(N)
    idx.add(x, ids)
    idx.remove(ids[: N // 2])
    idx.compact()
    st = idx.stats()
    assert st["tombstones"] == 0 and st["slots"] == N - N // 2 and len(idx) == N - N // 2
    truth = exact_knn("l2", q, x[N // 2 :], ids[N // 2 :], 10)
    assert recall(idx.search(q, k=10, ef=64)[0], truth) >= 0.95


def test_remove_everything_then_add_again(data):
    x, _ = data
    idx = HNSWIndex(DIM, metric="l2")
    idx.add(x[:100], np.arange(100, dtype=np.uint64))
    idx.remove(np.arange(100, dtype=np.uint64))
    assert len(idx) == 0
    assert (idx.search(x[0], k=3)[0] == SENTINEL).all()
    idx.add(x[100:200], np.arange(100, 200, dtype=np.uint64))
    found, _ = idx.search(x[150], k=1)
    assert found[0] == 150


# ---------------------------------------------------------------------------------------------- storage
@pytest.mark.parametrize("storage", ["f16", "i8"])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_compressed_storage_recall_is_within_0_005_of_f32(data, storage, metric):
    x, q = data
    truth = exact_knn(metric, q, x, ids_of(N), 10)
    res = {}
    for st in ("f32", storage):
        idx = HNSWIndex(DIM, metric=metric, storage=st, ef_construction=100, seed=9)
        idx.add(x, ids_of(N))
        res[st] = recall(idx.search(q, k=10, ef=32)[0], truth)
    assert res[storage] >= res["f32"] - 0.005


@pytest.mark.parametrize("storage", ["f16", "i8"])
def test_compressed_storage_returns_full_precision_distances_and_vectors(data, storage):
    x, q = data
    idx = HNSWIndex(DIM, metric="l2", storage=storage)
    idx.add(x[:300], np.arange(300, dtype=np.uint64))
    np.testing.assert_array_equal(idx.get_vectors(np.array([5, 9], dtype=np.uint64)), x[[5, 9]])
    found, dist = idx.search(q[0], k=3)
    expect = distances("l2", q[0], x[found.astype(np.int64)])[0]
    np.testing.assert_allclose(dist, expect, rtol=1e-4, atol=1e-4)


def test_cosine_vectors_are_stored_normalised():
    idx = HNSWIndex(3, metric="cosine")
    idx.add(np.array([[3, 4, 0]], dtype=np.float32), np.array([1], dtype=np.uint64))
    np.testing.assert_allclose(idx.get_vectors(np.array([1], dtype=np.uint64))[0], [0.6, 0.8, 0.0], rtol=1e-6)


def test_stats_describe_the_index(built):
    st = built.stats()
    assert st["size"] == N and st["dim"] == DIM and st["storage"] == "f32" and st["metric"] == "l2"
    assert st["levels"] >= 2 and st["memory_bytes"] > N * DIM * 4
    assert st["simd_level"] == recallcore.simd_level()
    assert "HNSWIndex(dim=32" in repr(built)


# ---------------------------------------------------------------------------------------------- bad input
def test_constructor_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dim"):
        HNSWIndex(0)
    with pytest.raises(ValueError, match="metric"):
        HNSWIndex(4, metric="hamming")
    with pytest.raises(ValueError, match="storage"):
        HNSWIndex(4, storage="f8")
    with pytest.raises(ValueError, match="M"):
        HNSWIndex(4, M=1)


@pytest.mark.parametrize(
    "vectors, exc, match",
    [
        (np.ones((2, 5), dtype=np.float32), ValueError, "columns"),
        (np.ones(4, dtype=np.float32), ValueError, "2-D"),
        (np.ones((2, 4), dtype=np.float64), TypeError, "float32"),
        (np.ones((4, 2), dtype=np.float32).T, ValueError, "contiguous"),
        (np.array([[1, 2, np.nan, 4]], dtype=np.float32), ValueError, "finite"),
        (np.array([[1, 2, np.inf, 4]], dtype=np.float32), ValueError, "finite"),
        ([[1.0, 2.0, 3.0, 4.0]], TypeError, "numpy"),
    ],
)
def test_add_rejects_bad_vectors_and_leaves_the_index_unchanged(vectors, exc, match):
    idx = HNSWIndex(4, metric="l2")
    idx.add(np.ones((1, 4), dtype=np.float32), np.array([1], dtype=np.uint64))
    with pytest.raises(exc, match=match):
        idx.add(vectors)
    assert len(idx) == 1


def test_add_rejects_duplicate_ids_in_one_batch_and_negative_ids():
    idx = HNSWIndex(4, metric="l2")
    with pytest.raises(ValueError, match="unique"):
        idx.add(np.ones((2, 4), dtype=np.float32), np.array([3, 3], dtype=np.uint64))
    with pytest.raises(ValueError, match="non-negative"):
        idx.add(np.ones((1, 4), dtype=np.float32), np.array([-1]))
    with pytest.raises(ValueError, match="one entry per vector"):
        idx.add(np.ones((2, 4), dtype=np.float32), np.array([1], dtype=np.uint64))
    with pytest.raises(TypeError, match="integer"):
        idx.add(np.ones((1, 4), dtype=np.float32), np.array([1.5]))
    assert len(idx) == 0


def test_search_rejects_bad_queries_k_and_ef(built):
    q = np.zeros(DIM, dtype=np.float32)
    with pytest.raises(ValueError, match="k must be"):
        built.search(q, k=0)
    with pytest.raises(ValueError, match="ef must be"):
        built.search(q, k=10, ef=5)
    with pytest.raises(ValueError, match="columns"):
        built.search(np.zeros(DIM + 1, dtype=np.float32))
    with pytest.raises(TypeError, match="float32"):
        built.search(np.zeros(DIM, dtype=np.float64))
    with pytest.raises(ValueError, match="finite"):
        built.search(np.full(DIM, np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="1-D"):
        built.search(np.zeros((1, 1, DIM), dtype=np.float32))
    with pytest.raises(ValueError, match="threads"):
        built.search(q, threads=-1)


def test_remove_of_an_unknown_id_removes_nothing():
    idx = HNSWIndex(4, metric="l2")
    idx.add(np.eye(4, dtype=np.float32), np.array([1, 2, 3, 4], dtype=np.uint64))
    with pytest.raises(ValueError, match="unknown id 9"):
        idx.remove(np.array([1, 9], dtype=np.uint64))
    with pytest.raises(ValueError, match="unique"):
        idx.remove(np.array([2, 2], dtype=np.uint64))
    assert len(idx) == 4 and 1 in idx and 2 in idx


def test_get_vectors_of_an_unknown_id_raises(built):
    with pytest.raises(ValueError, match="unknown id"):
        built.get_vectors(np.array([1], dtype=np.uint64))


def test_search_accepts_keywords_and_rejects_unknown_ones(built, data):
    _, q = data
    a = built.search(q[0], 5)
    b = built.search(queries=q[0], k=5, ef=64, filter=None, threads=1)
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(TypeError, match="unexpected"):
        built.search(q[0], k=5, eff=10)
    with pytest.raises(TypeError, match="at most 2 positional"):
        built.search(q[0], 5, 64)
    with pytest.raises(TypeError, match="missing"):
        built.search()
    import inspect

    assert list(inspect.signature(HNSWIndex.search).parameters) == [
        "self",
        "queries",
        "k",
        "ef",
        "filter",
        "threads",
    ]
