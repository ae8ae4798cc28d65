"""Memory.recall against brute-force oracles: each mode, the fusion formulas, filters, recency,
importance, MMR, persistence across reopen, and input validation. Correctness only (no timing)."""

from __future__ import annotations

import copy
import math
import pickle
import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest

import recallcore
from recallcore import _core

DIM = 16
NOW = 1_800_000_000.0
WORDS = ["apple", "banana", "cherry", "durian", "elder", "fig", "grape", "hazel", "iris", "juniper", "kiwi",
         "lemon", "mango", "nectar", "olive", "pear", "quince", "rose", "sage", "thyme", "umber", "violet",
         "walnut", "yarrow", "zinnia"]


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sentence(rng: random.Random, n: int = 6) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


@pytest.fixture()
def store(tmp_path: Path) -> Any:
    """A 3-namespace store of 60 records with random texts, vectors, sessions, kinds and times."""
    rng = np.random.default_rng(1)
    prng = random.Random(1)
    vecs = unit(rng, 60)
    m = recallcore.Memory(tmp_path / "s", dim=DIM)
    items = []
    for i in range(60):
        items.append({
            "text": sentence(prng), "namespace": f"ns{i % 3}", "session": f"s{i % 4}",
            "kind": ("turn", "fact", "preference")[i % 3 if i % 2 else 0],
            "ts": NOW - 86400 * (i % 10) - i, "vector": vecs[i],
            "entities": [prng.choice(["Ana", "Bo", "Cy"])] if i % 5 == 0 else [],
        })
    ids = m.add_many(items)
    m.test_items = dict(zip(ids, items))  # type: ignore[attr-defined]
    yield m
    m.close()


def in_ns(m: Any, ns: str) -> dict[int, dict[str, Any]]:
    return {i: it for i, it in m.test_items.items() if it["namespace"] == ns}


# ------------------------------------------------------------------------------- each mode vs oracle


def test_vector_mode_is_exact_cosine_top_k(store: Any) -> None:
    q = unit(np.random.default_rng(5), 1)[0]
    for ns in ("ns0", "ns1"):
        items = in_ns(store, ns)
        sims = {i: float(np.dot(q, it["vector"])) for i, it in items.items()}
        want = sorted(sims, key=lambda i: (-sims[i], i))[:7]
        hits = store.recall(vector=q, namespace=ns, k=7, mode="vector", now=NOW)
        assert [h.id for h in hits] == want
        for h in hits:
            assert h.vector_similarity == pytest.approx(sims[h.id], abs=1e-5)
            assert h.score == pytest.approx(sims[h.id], abs=1e-5)  # importance 0.5: factor 1
            assert h.lexical_rank is None and h.record.namespace == ns
        assert [h.vector_rank for h in hits] == list(range(1, 8))


def test_hit_text_is_the_record_text_before_and_after_the_record_is_built(store: Any) -> None:
    q = unit(np.random.default_rng(6), 1)[0]
    hits = store.recall(vector=q, namespace="ns0", k=5, mode="vector", now=NOW)
    first = [h.text for h in hits]  # read from the core's tuple: no Record built yet
    assert first == [store.test_items[h.id]["text"] for h in hits]
    assert [h.record.text for h in hits] == first and [h.text for h in hits] == first
    # Hits pickle and copy with their records (the search's results stay behind), built on the way
    # when nobody asked for them yet.
    fresh = store.recall(vector=q, namespace="ns0", k=5, mode="vector", now=NOW)
    for original, copied in ((fresh[1], pickle.loads(pickle.dumps(fresh[1]))), (fresh[2], copy.deepcopy(fresh[2]))):
        assert "_results" not in copied.__dict__
        same = hits[1] if original is fresh[1] else hits[2]  # the same record from the first search
        assert copied == original and copied.text == original.text and copied.record == same.record
    # A hit made by its constructor (a caller's own ranking) reads the text from its record.
    made = recallcore.Hit(id=hits[0].id, score=1.0, record=hits[0].record)
    assert made.text == first[0]
    with pytest.raises(AttributeError):
        made.no_such_field  # noqa: B018


def test_lexical_mode_matches_core_bm25(store: Any) -> None:
    items = in_ns(store, "ns2")
    bm = _core.Bm25Index()
    for i, it in items.items():
        # The store indexes the text and the record's entity names (one per line).
        bm.add(0, i, "\n".join([it["text"], *it["entities"]]))
    for query in ("apple mango", "rose thyme sage", "kiwi", "walnut zinnia pear Ana"):
        ids, scores = bm.search(0, query, 10)
        hits = store.recall(query, namespace="ns2", k=10, mode="lexical", now=NOW)
        assert [h.id for h in hits] == [int(x) for x in ids]
        assert [h.bm25 for h in hits] == pytest.approx([float(s) for s in scores], rel=1e-5)
        assert [h.lexical_rank for h in hits] == list(range(1, len(hits) + 1))


def test_lexical_mode_matches_python_bm25(store: Any) -> None:
    """An independent BM25 (k1=1.2, b=0.75, idf = ln(1 + (N - df + 0.5)/(df + 0.5))) on the same tokens."""
    items = in_ns(store, "ns1")
    docs = {i: _core.tokenize("\n".join([it["text"], *it["entities"]])) for i, it in items.items()}
    n = len(docs)
    avgdl = sum(len(d) for d in docs.values()) / n
    query = "grape olive olive iris"
    scores: dict[int, float] = {}
    for t in set(_core.tokenize(query)):
        df = sum(1 for d in docs.values() if t in d)
        if not df:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i, d in docs.items():
            tf = d.count(t)
            if tf:
                scores[i] = scores.get(i, 0.0) + idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(d) / avgdl))
    want = sorted(scores, key=lambda i: (-scores[i], i))[:10]
    hits = store.recall(query, namespace="ns1", k=10, mode="lexical", now=NOW)
    assert [h.id for h in hits] == want
    assert [h.bm25 for h in hits] == pytest.approx([scores[i] for i in want], rel=1e-4)


def component_lists(m: Any, query: str, q: np.ndarray, ns: str, depth: int) -> tuple[list[Any], list[Any]]:
    v = m.recall(vector=q, namespace=ns, k=depth, mode="vector", now=NOW)
    lx = m.recall(query, namespace=ns, k=depth, mode="lexical", now=NOW)
    return v, lx


@pytest.mark.parametrize("rrf_k,weights", [(None, (1.0, 1.0)), (60, (1.0, 1.0)), (3, (0.3, 2.0))])
def test_hybrid_rrf_is_the_documented_formula(store: Any, rrf_k: Optional[int],
                                               weights: tuple[float, float]) -> None:
    q = unit(np.random.default_rng(9), 1)[0]
    query = "cherry lemon violet"
    depth = 8  # candidates per list, so both lists are truncated and some records are in one only
    v, lx = component_lists(store, query, q, "ns0", depth)
    c = 10 if rrf_k is None else rrf_k  # the documented default
    wv, wl = weights
    score: dict[int, float] = {}
    for rank, h in enumerate(v, 1):
        score[h.id] = score.get(h.id, 0.0) + wv / (c + rank)
    for rank, h in enumerate(lx, 1):
        score[h.id] = score.get(h.id, 0.0) + wl / (c + rank)
    want = sorted(score, key=lambda i: (-np.float32(score[i]), i))[:5]
    hits = store.recall(query, vector=q, namespace="ns0", k=5, fusion="rrf", rrf_k=rrf_k, candidates=depth,
                        vector_weight=wv, lexical_weight=wl, now=NOW)
    assert [h.id for h in hits] == want
    vrank = {h.id: r for r, h in enumerate(v, 1)}
    lrank = {h.id: r for r, h in enumerate(lx, 1)}
    for h in hits:
        assert h.score == pytest.approx(score[h.id], rel=1e-5)
        assert h.vector_rank == vrank.get(h.id) and h.lexical_rank == lrank.get(h.id)


def test_hybrid_relative_score_fusion_formula(store: Any) -> None:
    q = unit(np.random.default_rng(11), 1)[0]
    query = "mango pear rose"
    depth = 10
    v, lx = component_lists(store, query, q, "ns1", depth)

    def norm(xs: list[float]) -> list[float]:
        lo, hi = min(xs), max(xs)
        return [(x - lo) / (hi - lo) if hi > lo else 1.0 for x in xs]

    score: dict[int, float] = {}
    for h, s in zip(v, norm([h.vector_similarity for h in v])):
        score[h.id] = score.get(h.id, 0.0) + 1.0 * s
    for h, s in zip(lx, norm([h.bm25 for h in lx])):
        score[h.id] = score.get(h.id, 0.0) + 0.7 * s
    score = {i: s / 1.7 for i, s in score.items()}  # divided by the sum of the weights
    hits = store.recall(query, vector=q, namespace="ns1", k=6, fusion="relative", candidates=depth,
                        lexical_weight=0.7, now=NOW)
    want = sorted(score, key=lambda i: (-np.float32(score[i]), i))[:6]
    assert [h.id for h in hits] == want
    for h in hits:
        assert h.score == pytest.approx(score[h.id], rel=1e-4, abs=1e-6)
    # reciprocal-rank fusion is the default (the contract), so the default differs here
    default = store.recall(query, vector=q, namespace="ns1", k=6, candidates=depth, lexical_weight=0.7, now=NOW)
    rrf = store.recall(query, vector=q, namespace="ns1", k=6, candidates=depth, lexical_weight=0.7, now=NOW,
                       fusion="rrf")
    assert [(h.id, h.score) for h in default] == [(h.id, h.score) for h in rrf]


def test_hybrid_without_vector_is_lexical_and_with_empty_text_is_vector(store: Any) -> None:
    q = unit(np.random.default_rng(2), 1)[0]
    lex = store.recall("fig kiwi", namespace="ns0", k=5, mode="lexical", now=NOW)
    assert [h.id for h in store.recall("fig kiwi", namespace="ns0", k=5, now=NOW)] == [h.id for h in lex]
    vec = store.recall(vector=q, namespace="ns0", k=5, mode="vector", now=NOW)
    assert [h.id for h in store.recall(vector=q, namespace="ns0", k=5, now=NOW)] == [h.id for h in vec]


# ----------------------------------------------------------------------------------------- filters


def allowed(it: dict[str, Any], f: dict[str, Any]) -> bool:
    if it["namespace"] != f["namespace"]:
        return False
    if f.get("session") is not None and it["session"] != f["session"]:
        return False
    if f.get("kinds") and it["kind"] not in f["kinds"]:
        return False
    if f.get("since") is not None and it["ts"] < f["since"]:
        return False
    if f.get("until") is not None and it["ts"] >= f["until"]:
        return False
    wanted = {e.lower() for e in f.get("entities") or ()}
    return not wanted or bool(wanted & {e.lower() for e in it["entities"]})


def test_filters_never_leak_and_lose_nothing(store: Any) -> None:
    rng = random.Random(3)
    qrng = np.random.default_rng(3)
    for trial in range(150):
        f: dict[str, Any] = {"namespace": rng.choice(["ns0", "ns1", "ns2"])}
        if rng.random() < 0.4:
            f["session"] = rng.choice(["s0", "s1", "s2", "s3"])
        if rng.random() < 0.4:
            f["kinds"] = rng.sample(["turn", "fact", "preference", "nope"], rng.randint(1, 2))
        if rng.random() < 0.4:
            f["since"] = NOW - 86400 * rng.randint(0, 10)
        if rng.random() < 0.4:
            f["until"] = NOW - 86400 * rng.randint(0, 10)
        if rng.random() < 0.3:
            f["entities"] = rng.sample(["Ana", "bo", "Cy", "Dee"], rng.randint(1, 2))
        mode = ("hybrid", "vector", "lexical")[trial % 3]
        q = unit(qrng, 1)[0]
        text = sentence(rng, 3)
        want = {i for i, it in store.test_items.items() if allowed(it, f)}
        hits = store.recall(text if mode != "vector" else None, vector=q if mode != "lexical" else None,
                            k=100, mode=mode, now=NOW, **f)
        got = {h.id for h in hits}
        assert got <= want, f"leak with {f}: {sorted(got - want)}"
        for h in hits:
            assert allowed(store.test_items[h.id], f)
        if mode != "lexical":  # every admitted record has a vector: all of them come back
            assert got == want, f"missing with {f}"


def test_filters_on_a_large_namespace_use_the_graph_walk_without_leaks(tmp_path: Path) -> None:
    """A namespace above the planner's exact-scan size is searched by the filtered HNSW walk.

    The planner scans a namespace exactly up to 4 * max(1024, sqrt(24 * 64 * live)) + 1024 records:
    32,376 for 40,000 live records, so this namespace of 40,000 takes the walk."""
    rng = np.random.default_rng(4)
    n = 40_000
    vecs = unit(rng, n, 4)
    with recallcore.Memory(tmp_path / "big", dim=4, durable=False, M=8, ef_construction=32,
                           map_size=1 << 30) as m:
        ids = m.add_many([{"text": f"w{i % 7} v{i % 11}", "namespace": "big", "session": f"s{i % 5}",
                           "kind": "fact" if i % 3 == 0 else "turn", "ts": NOW - i, "vector": vecs[i]}
                          for i in range(n)], batch_size=10_000)
        meta = {rid: (i % 5, i % 3 == 0, NOW - i) for i, rid in enumerate(ids)}
        for t in range(20):
            q = unit(rng, 1, 4)[0]
            hits = m.recall("w3 v4", vector=q, namespace="big", k=20, session=f"s{t % 5}", kinds=["fact"],
                            since=NOW - 30_000, now=NOW, mode=("hybrid", "vector")[t % 2])
            assert hits
            for h in hits:
                s, is_fact, ts = meta[h.id]
                assert s == t % 5 and is_fact and ts >= NOW - 30_000


def test_unknown_namespace_session_kind_or_entity_gives_no_hits(store: Any) -> None:
    q = unit(np.random.default_rng(1), 1)[0]
    assert store.recall("apple", vector=q, namespace="nobody", now=NOW) == []
    assert store.recall("apple", vector=q, namespace="ns0", session="nope", now=NOW) == []
    assert store.recall("apple", vector=q, namespace="ns0", kinds=["nope"], now=NOW) == []
    assert store.recall("apple", vector=q, namespace="ns0", entities=["Nobody"], now=NOW) == []


# ------------------------------------------------------------------------------ recency, importance


def test_recency_decay_follows_the_documented_factor(tmp_path: Path) -> None:
    v = unit(np.random.default_rng(0), 1)[0]
    day = 86400.0
    with recallcore.Memory(tmp_path / "r", dim=DIM) as m:
        old = m.add("the quarterly report", ts=NOW - 10 * day, vector=v)
        new = m.add("the quarterly report", ts=NOW - 1 * day, vector=v)
        plain = m.recall("quarterly report", vector=v, k=2, now=NOW)
        assert [h.id for h in plain] == [old, new]  # a tie: the smaller id first
        hits = m.recall("quarterly report", vector=v, k=2, now=NOW, recency_half_life=2 * day,
                        recency_weight=0.8)
        assert [h.id for h in hits] == [new, old]
        by_id = {h.id: h for h in hits}
        for rid, age in ((old, 10 * day), (new, day)):
            factor = 1 - 0.8 + 0.8 * 2 ** (-age / (2 * day))
            assert by_id[rid].recency == pytest.approx(factor, rel=1e-5)
            base = {h.id: h.score for h in plain}[rid]
            assert by_id[rid].score == pytest.approx(base * factor, rel=1e-5)


def test_importance_changes_ranking_as_documented(tmp_path: Path) -> None:
    v = unit(np.random.default_rng(0), 1)[0]
    with recallcore.Memory(tmp_path / "i", dim=DIM) as m:
        low = m.add("meeting with the landlord", importance=0.1, vector=v, ts=NOW)
        high = m.add("meeting with the landlord", importance=0.9, vector=v, ts=NOW)
        hits = m.recall("landlord meeting", vector=v, k=2, now=NOW)
        assert [h.id for h in hits] == [high, low]
        flat = m.recall("landlord meeting", vector=v, k=2, now=NOW, importance_weight=0.0)
        assert [h.id for h in flat] == [low, high]  # no importance: a tie, smaller id first
        base = {h.id: h.score for h in flat}
        for h in hits:
            assert h.score == pytest.approx(base[h.id] * (1 + 0.5 * (h.importance - 0.5)), rel=1e-5)


# ---------------------------------------------------------------------------------------------- MMR


def test_mmr_drops_exact_duplicates(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    vecs = unit(rng, 6)
    with recallcore.Memory(tmp_path / "d", dim=DIM) as m:
        dup = [m.add("my flight leaves at nine", vector=vecs[0], ts=NOW) for _ in range(4)]
        others = [m.add(f"other note {i} flight", vector=vecs[i], ts=NOW) for i in range(1, 6)]
        q = vecs[0]
        plain = m.recall("flight at nine", vector=q, k=5, now=NOW)
        assert sum(h.id in dup for h in plain) >= 3
        diverse = m.recall("flight at nine", vector=q, k=5, now=NOW, diversity=0.3)
        assert sum(h.id in dup for h in diverse) == 1
        assert diverse[0].id == dup[0]
        assert {h.id for h in diverse[1:]} <= set(others)
        assert len({h.id for h in diverse}) == len(diverse)


# ------------------------------------------------------------------------------------------ reopen


def test_results_identical_after_reopen(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    prng = random.Random(8)
    vecs = unit(rng, 200)
    path = tmp_path / "p"
    queries = [(sentence(prng, 3), unit(rng, 1)[0]) for _ in range(10)]

    def run(m: Any) -> list[list[tuple[int, float, Any, Any]]]:
        out = []
        for text, q in queries:
            for mode in ("hybrid", "vector", "lexical"):
                hits = m.recall(text if mode != "vector" else None, vector=q if mode != "lexical" else None,
                                namespace="a", k=8, mode=mode, now=NOW, recency_half_life=86400.0)
                out.append([(h.id, h.score, h.vector_rank, h.lexical_rank) for h in hits])
        return out

    with recallcore.Memory(path, dim=DIM) as m:
        m.add_many([{"text": sentence(prng), "namespace": "a" if i % 4 else "b", "vector": vecs[i],
                     "ts": NOW - 3600 * i} for i in range(200)])
        before = run(m)
    def same(after: list[list[tuple[int, float, Any, Any]]]) -> None:
        # Ids, order and ranks exactly; scores to float rounding (a vector written moments before
        # may be scored from the store's pending copy, after reopen from the index: the same
        # cosine, summed in a different order).
        assert [[(i, vr, lr) for i, _, vr, lr in hits] for hits in after] == \
            [[(i, vr, lr) for i, _, vr, lr in hits] for hits in before]
        for a, b in zip(after, before):
            assert [x[1] for x in a] == pytest.approx([x[1] for x in b], rel=1e-5, abs=1e-7)

    with recallcore.Memory(path) as m:
        same(run(m))
    with recallcore.Memory(path, readonly=True) as m:
        same(run(m))


def test_hits_include_their_records(store: Any) -> None:
    q = unit(np.random.default_rng(1), 1)[0]
    for h in store.recall("apple", vector=q, namespace="ns1", k=5, now=NOW):
        item = store.test_items[h.id]
        assert h.record.id == h.id and h.text == item["text"] and h.record.namespace == "ns1"
        assert h.record.session == item["session"] and h.record.kind == item["kind"]
        assert h.record.has_vector and h.record.metadata == {}


def test_record_metadata_is_parsed_on_access(tmp_path: Path) -> None:
    with recallcore.Memory(tmp_path / "m") as m:
        rid = m.add("a note about tea", metadata={"src": "chat", "n": [1, 2]})
        hit = m.recall("tea")[0]
        assert hit.record.metadata == {"src": "chat", "n": [1, 2]}
        assert hit.record == m.get(rid)


# -------------------------------------------------------------------------------------- bad input


def test_bad_input_gives_clear_errors(store: Any) -> None:
    q = unit(np.random.default_rng(1), 1)[0]
    with pytest.raises(ValueError, match="query text or a vector"):
        store.recall("", namespace="ns0")
    with pytest.raises(ValueError, match="query text or a vector"):
        store.recall(None, namespace="ns0")
    with pytest.raises(ValueError, match="dimensions"):
        store.recall("apple", vector=np.ones(DIM + 1, np.float32), namespace="ns0")
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k must be"):
            store.recall("apple", namespace="ns0", k=k)
    with pytest.raises(ValueError, match="mode must be"):
        store.recall("apple", namespace="ns0", mode="semantic")
    bad = q.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        store.recall("apple", vector=bad, namespace="ns0")
    bad[3] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        store.recall("apple", vector=bad, namespace="ns0")
    with pytest.raises(ValueError, match="mode='vector' needs a query vector"):
        store.recall("apple", namespace="ns0", mode="vector")
    with pytest.raises(ValueError, match="diversity"):
        store.recall("apple", namespace="ns0", diversity=1.5)
    with pytest.raises(ValueError, match="fusion"):
        store.recall("apple", namespace="ns0", fusion="max")
    with pytest.raises(ValueError, match="rrf_k"):
        store.recall("apple", namespace="ns0", rrf_k=0)
    with pytest.raises(ValueError, match="weight"):
        store.recall("apple", vector=q, namespace="ns0", vector_weight=-1.0)
    with pytest.raises(ValueError, match="namespace"):
        store.recall("apple", namespace="")


def test_text_only_store_rejects_vectors(tmp_path: Path) -> None:
    with recallcore.Memory(tmp_path / "t") as m:
        m.add("plain text only")
        assert [h.text for h in m.recall("plain")] == ["plain text only"]
        with pytest.raises(ValueError, match="text-only"):
            m.recall("plain", vector=np.ones(4, np.float32))
