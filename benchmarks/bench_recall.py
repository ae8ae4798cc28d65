"""Recall latency: one filtered query per Python call, single thread, texts fetched.

Workload: a store of N records (384-d unit vectors, ~30-word texts from a Zipfian vocabulary of
20,000 pseudo-words, spread evenly over NS namespaces); each query is a 5-word text plus a vector,
filtered to one random namespace, k = 10. recallcore runs ``Memory.recall`` in hybrid mode (BM25 +
vector, fused; each ``Hit`` carries its ``Record`` with the text). Peers run the same filtered
vector query with the text returned, where installed:

* sqlite-vec: a ``vec0`` table with the namespace as a partition key and the text as an auxiliary
  column (``WHERE embedding MATCH ? AND k = 10 AND user = ?``);
* chromadb: a persistent collection, ``where={"user": ns}``, documents included;
* lancedb: a table with a scalar index on the namespace column, prefiltered flat vector search.

Peers do vector search only (none of them has embedded hybrid search), so they do less work per
query than recallcore's hybrid mode. Stores are built once under ``--workdir`` and reused.

    PYTHONPATH=python python benchmarks/bench_recall.py                  # 100k/100 ns and 1k, all peers
    PYTHONPATH=python python benchmarks/bench_recall.py --sizes 1000:1 --peers none
    PYTHONPATH=python python benchmarks/bench_recall.py --profile 100000:100   # run under py-spy
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("LANCE_LOG", "error")  # lancedb logs a deprecation warning per query otherwise
sys.path.insert(0, str(ROOT / "python"))

import recallcore  # noqa: E402
from recallcore import _core  # noqa: E402

DIM = 384
K = 10
WORDS_PER_TEXT = 30
VOCAB = 20_000


# The most frequent ranks of the vocabulary are real English function words, as in English text
# (where they make up about half of the tokens): the BM25 tokenizer drops them, so a 5-word query
# keeps 2-3 content words, like a real question.
_STOPWORD_TEXT = (
    "the of and to a in is it you that he was for on are with as i his they be at one have this from or "
    "had by but some what there we can out other were all your when up use how said an each she which do "
    "their if will way about many then them would like so these her him has more could go come did my no "
    "most who over know than call first down been now find any new may part take get made where after back "
    "only me our under very through just also around another came must because does even here why well"
)
STOPWORDS = _STOPWORD_TEXT.split()


def make_vocab(rng: np.random.Generator) -> list[str]:
    """Stopwords first, then pseudo-words of 2-4 syllables, in Zipf rank order."""
    cons = list("bcdfghklmnprstvz")
    vows = list("aeiou")
    out: set[str] = set()
    while len(out) < VOCAB - len(STOPWORDS):
        n = int(rng.integers(2, 5))
        syllables = (cons[int(rng.integers(16))] + vows[int(rng.integers(5))] for _ in range(n))
        out.add("".join(syllables))
    pseudo = sorted(out)
    rng.shuffle(pseudo)
    return list(STOPWORDS) + pseudo


def zipf_words(rng: np.random.Generator, vocab: list[str], n: int) -> list[str]:
    ranks = np.arange(1, len(vocab) + 1, dtype=np.float64)
    p = 1.0 / ranks**1.1
    p /= p.sum()
    return [vocab[i] for i in rng.choice(len(vocab), size=n, p=p)]


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


class Workload:
    def __init__(self, n: int, n_ns: int, n_queries: int, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        vocab = make_vocab(rng)
        words = zipf_words(rng, vocab, n * WORDS_PER_TEXT)
        self.texts = [" ".join(words[i * WORDS_PER_TEXT:(i + 1) * WORDS_PER_TEXT]) for i in range(n)]
        self.vectors = unit_vectors(rng, n)
        self.ns = [f"user{i % n_ns}" for i in range(n)]
        qwords = zipf_words(rng, vocab, n_queries * 5)
        self.q_texts = [" ".join(qwords[i * 5:(i + 1) * 5]) for i in range(n_queries)]
        self.q_vectors = unit_vectors(rng, n_queries)
        self.q_ns = [f"user{int(x)}" for x in rng.integers(0, n_ns, n_queries)]
        self.n, self.n_ns = n, n_ns


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    xs = sorted(samples_ns)
    return {
        "p50": statistics.median(xs) / 1e3,
        "p90": xs[int(0.90 * (len(xs) - 1))] / 1e3,
        "p99": xs[int(0.99 * (len(xs) - 1))] / 1e3,
        "mean": statistics.fmean(xs) / 1e3,
    }


def measure(fn: Callable[[int], Any], n_queries: int, warmup: int = 200) -> dict[str, float]:
    """Per-call wall time in microseconds; one query per call, GC paused while timing.

    Callers warm the store first (see run_recallcore); the warm-up here primes the code path."""
    for i in range(min(warmup, n_queries)):
        fn(i)
    samples = []
    gc.collect()
    gc.disable()
    try:
        for i in range(n_queries):
            t0 = time.perf_counter_ns()
            fn(i)
            samples.append(time.perf_counter_ns() - t0)
    finally:
        gc.enable()
    return percentiles(samples)


# ------------------------------------------------------------------------------------ recallcore


def build_recallcore(w: Workload, path: Path) -> recallcore.Memory:
    if (path / "data.mdb").exists():
        m = recallcore.Memory(path, durable=False)
        if m.stats()["records"] == w.n:
            m.verify()  # a reopened store may still be indexing vectors its last snapshot lacked
            return m
        m.close()
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    m = recallcore.Memory(path, dim=DIM, durable=False, map_size=1 << 32)
    t0 = time.perf_counter()
    batch = 5000
    for s in range(0, w.n, batch):
        m.add_many([{"text": w.texts[i], "namespace": w.ns[i], "vector": w.vectors[i], "ts": 1.7e9 + i}
                    for i in range(s, min(w.n, s + batch))], batch_size=batch)
    built = time.perf_counter() - t0
    m.verify()  # drains the background indexer: time steady-state queries, not a graph being built
    m.checkpoint()
    print(f"  recallcore: {w.n:,} records durable and searchable in {built:.1f} s, graph complete after "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    return m


def run_recallcore(w: Workload, path: Path, n_queries: int) -> dict[str, dict[str, float]]:
    m = build_recallcore(w, path)
    out = {}
    try:
        # Each row reads every hit's text, as a caller building a prompt does (the peers return it too).
        def hybrid(i: int) -> Any:
            return [h.text for h in m.recall(w.q_texts[i], vector=w.q_vectors[i], namespace=w.q_ns[i], k=K)]

        def vector(i: int) -> Any:
            return [h.text for h in m.recall(vector=w.q_vectors[i], namespace=w.q_ns[i], k=K, mode="vector")]

        def lexical(i: int) -> Any:
            return [h.text for h in m.recall(w.q_texts[i], namespace=w.q_ns[i], k=K, mode="lexical")]

        hits = m.recall(w.q_texts[0], vector=w.q_vectors[0], namespace=w.q_ns[0], k=K)
        assert len(hits) == K and all(h.record.namespace == w.q_ns[0] and h.text for h in hits)
        # Touch every namespace once first: a reopened store serves its vectors from a file mapping,
        # and the first query of a namespace would otherwise pay its page faults inside the timing.
        for ns in sorted(set(w.ns)):
            m.recall(w.q_texts[0], vector=w.q_vectors[0], namespace=ns, k=K)
        # One untimed pass of the whole query set: the touch above builds every namespace's scan
        # copies (~190 MB at 100k), and the first row timed would otherwise absorb the kernel's
        # settling of that fresh memory (page faults, huge-page compaction), not the query's cost.
        for i in range(n_queries):
            hybrid(i)
        out["recallcore hybrid"] = measure(hybrid, n_queries)
        out["recallcore vector"] = measure(vector, n_queries)
        out["recallcore lexical"] = measure(lexical, n_queries)

        def context(i: int) -> Any:
            # Memory.context: state + pinned kinds + 5 recent turns + k=50 recalled memories, packed.
            return m.context(w.q_texts[i], vector=w.q_vectors[i], namespace=w.q_ns[i], budget=2048)

        ctx = context(0)
        assert ctx.tokens <= 2048 and ctx.manifest
        out["recallcore context (2,048 tokens)"] = measure(context, n_queries)
        # The same hybrid query straight through the binding (the hits as tuples with their texts, no
        # Hit/Record objects), to show what the Python layer costs.
        store = m._store

        def core(i: int) -> Any:
            return store.recall({"namespace": w.q_ns[i], "text": w.q_texts[i], "vector": w.q_vectors[i],
                                 "k": K, "mode": "hybrid", "kinds": [], "session": None, "since": -np.inf,
                                 "until": np.inf, "entities": [], "now": 2e9, "as_of": None,
                                 "include_history": False, "include_archived": False,
                                 "recency_half_life": 0.0, "recency_weight": 0.5, "importance_weight": 0.5,
                                 "diversity": 0.0, "vector_weight": 1.0, "lexical_weight": 1.0}).hits()

        out["recallcore hybrid, _core only"] = measure(core, n_queries)
    finally:
        m.close()
    return out


# ----------------------------------------------------------------------------------------- peers


def _sqlite_with_vec(db_file: Path) -> Any:
    """A connection with sqlite-vec loaded: the stdlib sqlite3 when it can load extensions (many
    Python builds cannot), else apsw."""
    import sqlite3

    import sqlite_vec

    db = sqlite3.connect(db_file)
    if hasattr(db, "enable_load_extension"):
        db.enable_load_extension(True)
        sqlite_vec.load(db)
        db.enable_load_extension(False)
        return db
    db.close()
    import apsw

    conn = apsw.Connection(str(db_file))
    conn.enable_load_extension(True)
    conn.load_extension(sqlite_vec.loadable_path())
    conn.enable_load_extension(False)
    return conn


def run_sqlite_vec(w: Workload, path: Path, n_queries: int) -> Optional[dict[str, dict[str, float]]]:
    try:
        import sqlite_vec
    except ImportError:
        return None
    path.mkdir(parents=True, exist_ok=True)
    try:
        db = _sqlite_with_vec(path / "vec.db")
    except ImportError:
        print("  sqlite-vec: this Python's sqlite3 cannot load extensions and apsw is not installed")
        return None
    have = db.execute("select count(*) from sqlite_master where name = 'mem'").fetchall()[0][0]
    if have and db.execute("select count(*) from mem").fetchall()[0][0] != w.n:
        db.execute("drop table mem")
        have = 0
    if not have:
        t0 = time.perf_counter()
        db.execute(f"create virtual table mem using vec0(user text partition key, embedding float[{DIM}], "
                   "+text text)")
        db.execute("begin")
        db.executemany("insert into mem(rowid, user, embedding, text) values (?, ?, ?, ?)",
                       [(i + 1, w.ns[i], w.vectors[i].tobytes(), w.texts[i]) for i in range(w.n)])
        db.execute("commit")
        print(f"  sqlite-vec: built in {time.perf_counter() - t0:.1f} s", flush=True)
    sql = "select rowid, distance, text from mem where embedding match ? and k = ? and user = ?"
    qv = [v.tobytes() for v in w.q_vectors]

    def query(i: int) -> Any:
        return db.execute(sql, (qv[i], K, w.q_ns[i])).fetchall()

    assert len(query(0)) == K
    res = {f"sqlite-vec {sqlite_vec.__version__} ({type(db).__module__})": measure(query, n_queries)}
    db.close()
    return res


def run_chromadb(w: Workload, path: Path, n_queries: int) -> Optional[dict[str, dict[str, float]]]:
    try:
        import chromadb
    except ImportError:
        return None
    client = chromadb.PersistentClient(path=str(path / "chroma"))
    coll = client.get_or_create_collection("mem", metadata={"hnsw:space": "cosine"})
    if coll.count() != w.n:
        client.delete_collection("mem")
        coll = client.create_collection("mem", metadata={"hnsw:space": "cosine"})
        t0 = time.perf_counter()
        step = 5000
        for s in range(0, w.n, step):
            e = min(w.n, s + step)
            coll.add(ids=[str(i) for i in range(s, e)], embeddings=w.vectors[s:e], documents=w.texts[s:e],
                     metadatas=[{"user": w.ns[i]} for i in range(s, e)])
        print(f"  chromadb: built in {time.perf_counter() - t0:.1f} s", flush=True)

    def query(i: int) -> Any:
        return coll.query(query_embeddings=w.q_vectors[i:i + 1], n_results=K, where={"user": w.q_ns[i]},
                          include=["documents", "distances"])

    assert len(query(0)["ids"][0]) == K
    return {"chromadb " + chromadb.__version__: measure(query, min(n_queries, 500), warmup=20)}


def run_lancedb(w: Workload, path: Path, n_queries: int) -> Optional[dict[str, dict[str, float]]]:
    try:
        import lancedb
        import pyarrow as pa
    except ImportError:
        return None
    db = lancedb.connect(str(path / "lance"))
    names = list(db.list_tables().tables) if hasattr(db, "list_tables") else db.table_names()
    tbl = db.open_table("mem") if "mem" in names else None
    if tbl is None or tbl.count_rows() != w.n:
        t0 = time.perf_counter()
        data = pa.table({
            "id": pa.array(np.arange(w.n, dtype=np.int64)),
            "user": pa.array(w.ns),
            "text": pa.array(w.texts),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(w.vectors.reshape(-1)), DIM),
        })
        tbl = db.create_table("mem", data=data, mode="overwrite")
        try:
            tbl.create_scalar_index("user")
        except Exception as exc:  # noqa: BLE001 - older lancedb: no scalar index; prefilter still works
            print(f"  lancedb: no scalar index ({exc})")
        print(f"  lancedb: built in {time.perf_counter() - t0:.1f} s", flush=True)

    def query(i: int) -> Any:
        return (tbl.search(w.q_vectors[i]).metric("cosine").where(f"user = '{w.q_ns[i]}'", prefilter=True)
                .select(["id", "text"]).limit(K).to_list())

    assert len(query(0)) == K
    return {"lancedb " + lancedb.__version__: measure(query, min(n_queries, 500), warmup=20)}


PEERS = {"sqlite-vec": run_sqlite_vec, "chromadb": run_chromadb, "lancedb": run_lancedb}


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000:100,1000:1,1000:10",
                    help="comma-separated N:namespaces store shapes")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--peers", default="sqlite-vec,chromadb,lancedb", help="comma-separated, or 'none'")
    ap.add_argument("--workdir", type=Path,
                    default=Path(os.environ.get("TMPDIR", "/tmp")) / "rc-bench-recall")
    ap.add_argument("--profile", default="", help="N:namespaces: only loop hybrid recall (for py-spy)")
    args = ap.parse_args(argv)

    if args.profile:
        n, n_ns = (int(x) for x in args.profile.split(":"))
        w = Workload(n, n_ns, args.queries)
        m = build_recallcore(w, args.workdir / f"rc-v2-{n}-{n_ns}")
        t_end = time.time() + 20
        i = 0
        while time.time() < t_end:
            m.recall(w.q_texts[i % args.queries], vector=w.q_vectors[i % args.queries],
                     namespace=w.q_ns[i % args.queries], k=K)
            i += 1
        m.close()
        print(f"{i} queries")
        return 0

    peers = [] if args.peers == "none" else [p.strip() for p in args.peers.split(",") if p.strip()]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, recallcore SIMD {_core.simd_level()}, load average "
          f"{os.getloadavg()[0]:.1f}; "
          f"k={K}, dim={DIM}, {args.queries} queries per row, one per call, times in µs")
    for shape in args.sizes.split(","):
        n, n_ns = (int(x) for x in shape.split(":"))
        print(f"\n## {n:,} records, {n_ns} namespaces ({n // n_ns:,} per namespace), query filtered to one",
              flush=True)
        w = Workload(n, n_ns, args.queries)
        rows = run_recallcore(w, args.workdir / f"rc-v2-{n}-{n_ns}", args.queries)
        for p in peers:
            try:
                r = PEERS[p](w, args.workdir / f"{p}-v2-{n}-{n_ns}", args.queries)
            except Exception as exc:  # noqa: BLE001 - a peer failing must not hide the others
                print(f"  {p}: failed ({type(exc).__name__}: {exc})")
                continue
            if r is None:
                print(f"  {p}: not installed, skipped")
            else:
                rows.update(r)
        base = rows["recallcore hybrid"]["p50"]
        print("\n| system | p50 | p90 | p99 | mean | p50 vs recallcore hybrid |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, r in rows.items():
            print(f"| {name} | {r['p50']:.1f} | {r['p90']:.1f} | {r['p99']:.1f} | {r['mean']:.1f} | "
                  f"{r['p50'] / base:.1f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
