"""The exact path of recall for mid-sized namespaces (engine/namespace_vectors.h): int8 estimates over
the namespace's dense copies, the head re-scored from f32. Against a brute-force oracle, through
writes, deletes, vector replacements, filters, reopen, and every metric. Correctness only."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import recallcore

DIM = 48
NOW = 1_800_000_000.0
PER_NS = 700  # above the candidate depth (100) + margin, below the graph-walk threshold


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def similarity(metric: str, q: np.ndarray, v: np.ndarray) -> float:
    if metric == "l2":
        return -float(np.sum((q.astype(np.float64) - v) ** 2))
    if metric == "ip":
        return float(np.dot(q.astype(np.float64), v))
    return float(np.dot(q, v) / (np.linalg.norm(q) * np.linalg.norm(v)))


class Oracle:
    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.items: dict[int, dict[str, Any]] = {}

    def top(self, q: np.ndarray, ns: str, k: int, keep: Any = lambda it: True) -> list[tuple[int, float]]:
        sims = [(rid, similarity(self.metric, q, it["vector"])) for rid, it in self.items.items()
                if it["namespace"] == ns and keep(it)]
        sims.sort(key=lambda t: (-t[1], t[0]))
        return sims[:k]


def check_exact(m: Any, oracle: Oracle, q: np.ndarray, ns: str, k: int, **filters: Any) -> None:
    keep = filters.pop("_keep", lambda it: True)
    want = oracle.top(q, ns, k, keep)
    hits = m.recall(vector=q, namespace=ns, k=k, mode="vector", now=NOW, **filters)
    assert [h.id for h in hits] == [rid for rid, _ in want]
    for h, (_, sim) in zip(hits, want):
        assert h.vector_similarity == pytest.approx(sim, abs=1e-4)


def build(path: Path, metric: str, seed: int = 0) -> tuple[Any, Oracle, np.random.Generator]:
    rng = np.random.default_rng(seed)
    m = recallcore.Memory(path, dim=DIM, metric=metric, durable=False)
    oracle = Oracle(metric)
    vecs = unit(rng, 2 * PER_NS)
    if metric != "cosine":  # norms matter for ip and l2
        vecs *= rng.uniform(0.5, 2.0, (len(vecs), 1)).astype(np.float32)
    items = [{"text": f"note {i}", "namespace": f"ns{i % 2}", "session": f"s{i % 3}",
              "kind": "fact" if i % 4 == 0 else "turn", "ts": NOW - 3600 * i, "vector": vecs[i]}
             for i in range(len(vecs))]
    for rid, it in zip(m.add_many(items, batch_size=500), items):
        oracle.items[rid] = it
    return m, oracle, rng


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_vector_top_k_is_exact(tmp_path: Path, metric: str) -> None:
    m, oracle, rng = build(tmp_path / "s", metric)
    with m:
        for q in unit(rng, 15):
            for k in (1, 10, 25):
                check_exact(m, oracle, q, "ns0", k)
                check_exact(m, oracle, q, "ns1", k)


def test_filters_inside_the_scan_never_leak_and_lose_nothing(tmp_path: Path) -> None:
    m, oracle, rng = build(tmp_path / "s", "cosine", seed=1)
    prng = random.Random(1)
    with m:
        for _ in range(40):
            q = unit(rng, 1)[0]
            session = prng.choice(["s0", "s1", "s2"])
            since = NOW - 3600 * prng.randint(0, 2 * PER_NS)
            kinds = prng.choice([["fact"], ["turn"], ["fact", "turn"]])

            def keep(it: dict[str, Any], session: str = session, since: float = since,
                     kinds: list[str] = kinds) -> bool:
                return it["session"] == session and it["ts"] >= since and it["kind"] in kinds

            check_exact(m, oracle, q, "ns1", 10, session=session, since=since, kinds=kinds, _keep=keep)
            # A filter admitting fewer rows than k returns every one of them.
            narrow = NOW - 3600 * 40
            hits = m.recall(vector=q, namespace="ns1", k=20, mode="vector", now=NOW, since=narrow,
                            kinds=["fact"])
            want = {rid for rid, it in oracle.items.items()
                    if it["namespace"] == "ns1" and it["ts"] >= narrow and it["kind"] == "fact"}
            assert {h.id for h in hits} == want


def test_writes_deletes_and_replaced_vectors_after_the_first_scan(tmp_path: Path) -> None:
    m, oracle, rng = build(tmp_path / "s", "cosine", seed=2)
    with m:
        q = unit(rng, 1)[0]
        check_exact(m, oracle, q, "ns0", 10)  # the first search scans the index's vectors
        assert m.stats()["scan_cache"]["namespaces"] == 0
        check_exact(m, oracle, q, "ns0", 10)  # the second builds the namespace's copies
        assert m.stats()["scan_cache"]["namespaces"] == 1
        # Deleting the current best rows: they must leave the copies.
        gone = [h.id for h in m.recall(vector=q, namespace="ns0", k=5, mode="vector", now=NOW)]
        m.delete(gone)
        for rid in gone:
            del oracle.items[rid]
        check_exact(m, oracle, q, "ns0", 10)
        # A replaced vector: the old one must not be found, the new one must.
        victim = next(rid for rid, it in oracle.items.items() if it["namespace"] == "ns0")
        m.update(victim, vector=q)
        oracle.items[victim] = {**oracle.items[victim], "vector": q.copy()}
        hits = m.recall(vector=q, namespace="ns0", k=1, mode="vector", now=NOW)
        assert hits[0].id == victim and hits[0].vector_similarity == pytest.approx(1.0, abs=1e-5)
        check_exact(m, oracle, q, "ns0", 10)
        # New records (pending in the background indexer's tail, or already in the graph).
        new = unit(rng, 50)
        ids = m.add_many([{"text": "new", "namespace": "ns0", "vector": v, "ts": NOW} for v in new])
        for rid, v in zip(ids, new):
            oracle.items[rid] = {"namespace": "ns0", "vector": v, "session": None, "kind": "turn", "ts": NOW}
        for qq in [q, *unit(rng, 5), new[7]]:
            check_exact(m, oracle, qq, "ns0", 10)
        # Enough deletes to compact the copies (a quarter of the rows).
        doomed = [rid for rid, it in oracle.items.items() if it["namespace"] == "ns0"][: PER_NS // 3]
        m.delete(doomed)
        for rid in doomed:
            del oracle.items[rid]
        for qq in unit(rng, 5):
            check_exact(m, oracle, qq, "ns0", 10)
        assert all(v == 0 for k, v in m.verify().items() if k != "lmdb_records")  # copies included
    with recallcore.Memory(tmp_path / "s") as m2:  # rebuilt from the snapshot on reopen
        for qq in unit(rng, 5):
            check_exact(m2, oracle, qq, "ns0", 10)
            check_exact(m2, oracle, qq, "ns1", 10)


def test_hybrid_head_matches_the_exact_vector_ranks(tmp_path: Path) -> None:
    """In hybrid mode the first vector ranks (those that decide the top k) are the exact ones."""
    m, oracle, rng = build(tmp_path / "s", "cosine", seed=3)
    with m:
        for q in unit(rng, 10):
            exact = oracle.top(q, "ns1", 10)
            rank_of = {rid: r + 1 for r, (rid, _) in enumerate(exact)}
            hits = m.recall("note", vector=q, namespace="ns1", k=10, now=NOW)
            for h in hits:
                if h.id in rank_of:
                    assert h.vector_rank == rank_of[h.id]


def test_copies_beyond_the_budget_are_evicted_and_rebuilt_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    oracle = Oracle("cosine")
    # A budget that holds about one namespace's copies: every switch of namespace evicts another.
    with recallcore.Memory(tmp_path / "s", dim=DIM, durable=False, scan_cache_bytes=PER_NS * DIM * 6) as m:
        vecs = unit(rng, 3 * PER_NS)
        items = [{"text": "x", "namespace": f"ns{i % 3}", "vector": vecs[i], "ts": NOW} for i in range(len(vecs))]
        for rid, it in zip(m.add_many(items, batch_size=1000), items):
            oracle.items[rid] = it
        for rnd in range(4):
            for ns in ("ns0", "ns1", "ns2"):
                for q in unit(rng, 2):
                    check_exact(m, oracle, q, ns, 10)
            # Writes while a namespace's copies are evicted reach it when it is rebuilt.
            new = unit(rng, 5)
            added = m.add_many([{"text": "y", "namespace": "ns0", "vector": v, "ts": NOW} for v in new])
            for rid, v in zip(added, new):
                oracle.items[rid] = {"namespace": "ns0", "vector": v}
            check_exact(m, oracle, new[rnd], "ns0", 10)
        assert m.verify()["scan_copy_mismatches"] == 0
        cache = m.stats()["scan_cache"]
        assert cache["evictions"] >= 6 and cache["namespaces"] >= 1
        assert cache["bytes"] <= cache["budget"] or cache["namespaces"] == 1


def test_validity_archive_and_expiry_after_the_copies_are_built(tmp_path: Path) -> None:
    """A plain query (no session/kind/time/entity filter) reads validity, archive and expiry from the
    copies' mirror of the headers: changes made after the copies were built must reach it."""
    rng = np.random.default_rng(6)
    with recallcore.Memory(tmp_path / "s", dim=DIM, durable=False) as m:
        vecs = unit(rng, PER_NS)
        ids = m.add_many([{"text": f"r{i}", "namespace": "v", "vector": vecs[i], "ts": NOW - 1000 + i}
                          for i in range(PER_NS)])
        target = vecs[5]
        for _ in range(2):  # the second search builds the copies
            assert m.recall(vector=target, namespace="v", k=1, mode="vector", now=NOW)[0].id == ids[5]
        assert m.stats()["scan_cache"]["namespaces"] == 1

        # Superseded: gone from a query now, present as of before, and with history.
        new_id = m.supersede(ids[5], "r5 v2", namespace="v", vector=vecs[6] * -1, ts=NOW - 10)
        top = m.recall(vector=target, namespace="v", k=3, mode="vector", now=NOW)
        assert ids[5] not in [h.id for h in top]
        assert m.recall(vector=target, namespace="v", k=1, mode="vector", now=NOW, as_of=NOW - 100)[0].id == ids[5]
        hist = m.recall(vector=target, namespace="v", k=1, mode="vector", now=NOW, include_history=True)
        assert hist[0].id == ids[5] and new_id in ids + [new_id]

        # Archived: hidden unless asked for.
        m.update(ids[7], archived=True)
        assert ids[7] not in [h.id for h in m.recall(vector=vecs[7], namespace="v", k=3, mode="vector", now=NOW)]
        got = m.recall(vector=vecs[7], namespace="v", k=1, mode="vector", now=NOW, include_archived=True)
        assert got[0].id == ids[7]

        # Expiry: a ttl set later takes the record out once it has passed.
        m.update(ids[9], ttl=60)
        assert m.recall(vector=vecs[9], namespace="v", k=1, mode="vector")[0].id == ids[9]
        later = m.recall(vector=vecs[9], namespace="v", k=3, mode="vector", now=NOW + 10 ** 9)
        assert ids[9] not in [h.id for h in later]
        assert m.verify()["scan_copy_mismatches"] == 0


def test_a_plain_query_finds_deep_candidates_when_most_rows_are_expired(tmp_path: Path) -> None:
    """The plain path reads a bound off a sample of all rows' estimates; when most rows near the query
    have expired, fewer than the candidates asked for lie under it and every row must be considered."""
    rng = np.random.default_rng(8)
    with recallcore.Memory(tmp_path / "s", dim=DIM, durable=False) as m:
        vecs = unit(rng, PER_NS)
        q = unit(rng, 1)[0]
        near = set(np.argsort(-(vecs @ q))[: PER_NS * 9 // 10].tolist())  # the closest 90% expire
        items = [{"text": f"r{i}", "namespace": "e", "vector": vecs[i], "ts": NOW - 100,
                  **({"ttl": 10} if i in near else {})} for i in range(PER_NS)]
        ids = m.add_many(items)
        alive = [i for i in range(PER_NS) if i not in near]
        ranked = [ids[i] for i in sorted(alive, key=lambda i: (-float(vecs[i] @ q), ids[i]))]
        for _ in range(2):  # the second search runs on the copies
            for k in (10, 50):  # 100 and 250 candidates: below and above a quarter of the rows
                hits = m.recall(vector=q, namespace="e", k=k, mode="vector", now=NOW)
                assert [h.id for h in hits] == ranked[:k]
        assert m.stats()["scan_cache"]["namespaces"] == 1


@settings(max_examples=12, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["add", "delete", "revector", "archive", "unarchive", "ttl",
                                               "supersede"]), st.integers(0, 10 ** 6)),
                    min_size=5, max_size=25))
def test_random_writes_keep_the_copies_exact(tmp_path_factory: Any, ops: list[tuple[str, int]]) -> None:
    """Random interleavings of every kind of write with searches: each search equals the brute-force
    answer over the records valid, unarchived and unexpired at that moment, and verify() finds the
    copies (vectors and mirrored headers) identical to LMDB after every step."""
    rng = np.random.default_rng(7)
    n0 = 300
    with recallcore.Memory(tmp_path_factory.mktemp("p") / "s", dim=DIM, durable=False) as m:
        vecs = unit(rng, n0)
        live: dict[int, dict[str, Any]] = {}
        for rid, v in zip(m.add_many([{"text": "x", "namespace": "p", "vector": v, "ts": NOW - 500} for v in vecs]),
                          vecs):
            live[rid] = {"vector": v, "archived": False, "expired": False, "superseded": False}

        def check(q: np.ndarray) -> None:
            ok = {r: it for r, it in live.items() if not (it["archived"] or it["expired"] or it["superseded"])}
            sims = sorted(((-float(np.dot(q, it["vector"])), r) for r, it in ok.items()))[:10]
            hits = m.recall(vector=q, namespace="p", k=10, mode="vector", now=NOW)
            assert [h.id for h in hits] == [r for _, r in sims]
            assert m.verify()["scan_copy_mismatches"] == 0

        check(unit(rng, 1)[0])
        check(unit(rng, 1)[0])  # the copies exist from here on
        for op, seed in ops:
            pick = sorted(live)[seed % len(live)]
            if op == "add":
                v = unit(np.random.default_rng(seed), 1)[0]
                live[m.add("y", namespace="p", vector=v, ts=NOW - 100)] = {
                    "vector": v, "archived": False, "expired": False, "superseded": False}
            elif op == "delete" and len(live) > 50:
                m.delete(pick)
                del live[pick]
            elif op == "revector":
                v = unit(np.random.default_rng(seed), 1)[0]
                m.update(pick, vector=v)
                live[pick]["vector"] = v
            elif op in ("archive", "unarchive"):
                m.update(pick, archived=op == "archive")
                live[pick]["archived"] = op == "archive"
            elif op == "ttl":
                m.update(pick, ttl=1)  # expires a second from the wall clock: long before NOW
                live[pick]["expired"] = True
            elif op == "supersede" and not live[pick]["superseded"]:
                v = unit(np.random.default_rng(seed), 1)[0]
                new = m.supersede(pick, "z", vector=v, ts=NOW - 50)
                live[pick]["superseded"] = True
                live[new] = {"vector": v, "archived": False, "expired": False, "superseded": False}
            check(live[pick]["vector"] if pick in live else unit(rng, 1)[0])
