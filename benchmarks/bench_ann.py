"""ANN benchmark: recallcore.HNSWIndex against hnswlib, faiss HNSW, usearch and Intel SVS in one run.

One query per Python call on one thread (how a service calls it); recall@10 against exact truth;
p50/p99 latency per call over an ef sweep; latency interpolated at recall 0.95 / 0.99 and reported as a
ratio to hnswlib's in the same run; build time with 1 and 2 threads; memory per vector; the per-call
floor on a tiny index; filtered search at 1% selectivity. Never asserts times.

    python benchmarks/bench_ann.py --n 100000            # the full protocol of ANCHORS.md
    python benchmarks/bench_ann.py --n 20000 --quick     # a few minutes
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
try:
    import recallcore
except ImportError:  # run from a source checkout: use the in-tree package (extension copied next to it)
    sys.path.insert(0, str(HERE.parent / "python"))
    import recallcore

DATA = Path(os.environ.get("RECALLCORE_DATA", HERE.parent.parent / "shared" / "data"))
if not DATA.is_dir():
    DATA = Path("/work/shared/data")

K = 10
EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384]


# ------------------------------------------------------------------------------------------------ data
def synthetic(
    n: int, nq: int = 1000, dim: int = 384, centres: int = 1000, intrinsic: int = 24, seed: int = 0
):
    """Gaussian mixture in a 24-d latent space with a power-law spectrum, projected to `dim`, L2-normalised;
    held-out queries are fresh draws with extra noise (ANCHORS.md protocol)."""
    rng = np.random.default_rng(seed)
    spectrum = (np.arange(1, intrinsic + 1) ** -0.3).astype(np.float32)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, intrinsic)))
    basis = basis.T.astype(np.float32)  # (intrinsic, dim), orthonormal rows
    c = rng.standard_normal((centres, intrinsic)).astype(np.float32) * spectrum

    def draw(m: int, noise: float) -> np.ndarray:
        jitter = rng.standard_normal((m, intrinsic)).astype(np.float32) * spectrum
        z = c[rng.integers(0, centres, m)] + noise * jitter
        x = z @ basis + 0.01 * rng.standard_normal((m, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x, dtype=np.float32)

    # Noise of the order of the centre spread: clusters overlap, so a graph walk has work to do (with
    # tight clusters every library reaches 0.95 at ef=10 and the comparison says nothing).
    return draw(n, 1.5), draw(nq, 1.5)


def exact_topk(x: np.ndarray, q: np.ndarray, metric: str, k: int = K) -> np.ndarray:
    k = min(k, len(x))
    out = np.empty((len(q), k), dtype=np.int64)
    sq = (x.astype(np.float32) ** 2).sum(1)
    for i in range(0, len(q), 256):
        qq = q[i : i + 256]
        d = sq[None, :] - 2 * qq @ x.T if metric == "l2" else -(qq @ x.T)
        part = np.argpartition(d, min(k, d.shape[1] - 1), axis=1)[:, :k]
        order = np.take_along_axis(d, part, 1).argsort(1)
        out[i : i + 256] = np.take_along_axis(part, order, 1)
    return out


def load_datasets(args) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    sets = []
    if "synthetic" in args.datasets:
        x, q = synthetic(args.n, args.nq)
        sets.append((f"synthetic {args.n}x384 (ip)", x, q, "ip"))
    if "sift10k" in args.datasets and (DATA / "sift10k").is_dir():
        x = np.ascontiguousarray(np.load(DATA / "sift10k" / "bigann10k_base.npy"), dtype=np.float32)
        q = np.ascontiguousarray(np.load(DATA / "sift10k" / "bigann10k_query.npy"), dtype=np.float32)
        sets.append(("sift10k 10000x128 (l2)", x, q, "l2"))
    if "realtalk" in args.datasets and (DATA / "realtalk").is_dir():
        x = np.ascontiguousarray(np.load(DATA / "realtalk" / "turn_emb.npy"), dtype=np.float32)
        q = np.ascontiguousarray(np.load(DATA / "realtalk" / "question_emb.npy"), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        sets.append((f"realtalk MiniLM {len(x)}x384 (ip)", x, q, "ip"))
    return sets


# ------------------------------------------------------------------------------------------------ libraries
@dataclass
class Built:
    name: str
    set_ef: Callable[[int], None]
    query: Callable[[np.ndarray], np.ndarray]  # one query -> ids
    build_s: dict[int, float] = field(default_factory=dict)
    bytes_per_vector: float = float("nan")
    obj: Any = None


def file_bytes(save: Callable[[str], None]) -> int:
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "idx")
        save(p)
        return sum(f.stat().st_size for f in Path(d).iterdir())


def build_recallcore(x, metric, M, efc, threads, storage="f32") -> Built:
    # "i8-codes" / "f16-codes": compressed storage with keep_originals=False (no f32 copies)
    base, _, codes = storage.partition("-")
    idx = recallcore.HNSWIndex(
        x.shape[1], metric=metric, M=M, ef_construction=efc, storage=base, keep_originals=codes != "codes"
    )
    t = time.perf_counter()
    idx.add(x, threads=threads)
    el = time.perf_counter() - t
    state = {"ef": 64}

    def query(q):
        return idx.search(q, K, ef=state["ef"])[0]

    def set_ef(ef):
        state["ef"] = max(ef, K)

    b = Built(f"recallcore-{storage}", set_ef, query, {threads: el}, obj=idx)
    b.bytes_per_vector = idx.stats()["memory_bytes"] / len(x)
    return b


def build_hnswlib(x, metric, M, efc, threads) -> Optional[Built]:
    try:
        import hnswlib
    except ImportError:
        return None
    p = hnswlib.Index(space="l2" if metric == "l2" else "ip", dim=x.shape[1])
    p.init_index(max_elements=len(x), M=M, ef_construction=efc, random_seed=0)
    p.set_num_threads(threads)
    t = time.perf_counter()
    p.add_items(x, np.arange(len(x)))
    el = time.perf_counter() - t
    p.set_num_threads(1)
    b = Built("hnswlib", lambda ef: p.set_ef(max(ef, K)), lambda q: p.knn_query(q, K)[0][0], {threads: el})
    b.obj = p
    b.bytes_per_vector = file_bytes(lambda path: p.save_index(path)) / len(x)
    return b


def build_faiss(x, metric, M, efc, threads) -> Optional[Built]:
    try:
        import faiss
    except ImportError:
        return None
    faiss.omp_set_num_threads(threads)
    f = faiss.IndexHNSWFlat(x.shape[1], M, faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT)
    f.hnsw.efConstruction = efc
    t = time.perf_counter()
    f.add(x)
    el = time.perf_counter() - t
    faiss.omp_set_num_threads(1)

    def query(q):
        return f.search(q[None, :], K)[1][0]

    b = Built("faiss-hnsw", lambda ef: setattr(f.hnsw, "efSearch", max(ef, K)), query, {threads: el}, obj=f)
    b.bytes_per_vector = file_bytes(lambda path: faiss.write_index(f, path)) / len(x)
    return b


def build_usearch(x, metric, M, efc, threads) -> Optional[Built]:
    try:
        from usearch.index import Index as UIndex
    except ImportError:
        return None
    u = UIndex(
        ndim=x.shape[1],
        metric="l2sq" if metric == "l2" else "ip",
        dtype="f32",
        connectivity=M,
        expansion_add=efc,
        expansion_search=64,
    )
    t = time.perf_counter()
    u.add(np.arange(len(x)), x, threads=threads)
    el = time.perf_counter() - t

    def set_ef(ef):
        u.expansion_search = max(ef, K)

    def query(q):
        return u.search(q, K, threads=1).keys

    b = Built("usearch", set_ef, query, {threads: el}, obj=u)
    b.bytes_per_vector = file_bytes(lambda path: u.save(path)) / len(x)
    return b


def build_svs(x, metric, M, efc, threads, f16=True) -> Optional[Built]:
    try:
        import svs
    except ImportError:
        return None
    params = svs.VamanaBuildParameters(graph_max_degree=64, window_size=efc)
    data = x.astype(np.float16) if f16 else x
    dist = svs.DistanceType.L2 if metric == "l2" else svs.DistanceType.MIP
    t = time.perf_counter()
    v = svs.Vamana.build(params, data, dist, num_threads=threads)
    el = time.perf_counter() - t
    v.num_threads = 1

    def set_ef(ef):
        v.search_window_size = max(ef, K)

    def query(q):
        return v.search(q[None, :], K)[0][0]

    b = Built("svs-f16" if f16 else "svs-f32", set_ef, query, {threads: el}, obj=v)
    # Vectors (2 or 4 bytes per dim) + R=64 uint32 links; SVS has no cheap size query.
    b.bytes_per_vector = x.shape[1] * (2 if f16 else 4) + 64 * 4
    return b


# ------------------------------------------------------------------------------------------------ measurement
def sweep(b: Built, q: np.ndarray, truth: np.ndarray, efs: list[int]) -> list[tuple]:
    rows = []
    for ef in efs:
        b.set_ef(ef)
        for i in range(min(50, len(q))):  # warm-up
            b.query(q[i])
        lat = np.empty(len(q))
        hits = 0
        for i in range(len(q)):
            t = time.perf_counter_ns()
            ids = b.query(q[i])
            lat[i] = time.perf_counter_ns() - t
            hits += len(set(np.asarray(ids).tolist()) & set(truth[i].tolist()))
        rows.append(
            (ef, hits / truth.size, float(np.percentile(lat, 50)) / 1e3, float(np.percentile(lat, 99)) / 1e3)
        )
    return rows


def at_recall(rows, target: float) -> Optional[float]:
    """p50 (us) at a target recall, interpolated linearly between the two ef points around it."""
    for (_, r0, p0, _), (_, r1, p1, _) in zip([(0, 0.0, 0.0, 0.0)] + rows[:-1], rows):
        if r1 >= target:
            if r0 <= 0 or r1 == r0:
                return p1
            return p0 + (p1 - p0) * (target - r0) / (r1 - r0)
    return None


def fmt(v: Optional[float], spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def per_call_floor() -> dict[str, float]:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((100, 384)).astype(np.float32)
    q = rng.standard_normal(384).astype(np.float32)
    out = {}
    for name, builder in [
        ("recallcore", build_recallcore),
        ("hnswlib", build_hnswlib),
        ("faiss-hnsw", build_faiss),
        ("usearch", build_usearch),
        ("svs-f16", build_svs),
    ]:
        b = builder(x, "ip", 16, 64, 1)
        if b is None:
            continue
        b.set_ef(10)
        for _ in range(200):
            b.query(q)
        lat = []
        for _ in range(3000):
            t = time.perf_counter_ns()
            b.query(q)
            lat.append(time.perf_counter_ns() - t)
        out[name] = float(np.percentile(lat, 50)) / 1e3
    return out


def filtered(x, q, metric, idx: recallcore.HNSWIndex, users: int = 100, nq: int = 200) -> list[str]:
    """One user of `users` (~1% of the vectors), exact filtered truth."""
    rng = np.random.default_rng(7)
    owner = rng.integers(0, users, len(x))
    lines = []
    for label, threshold in [("planner (auto)", None), ("forced graph walk", 0)]:
        idx.exact_scan_threshold = threshold
        lat, hits, total = [], 0, 0
        for i in range(nq):
            allowed = np.flatnonzero(owner == (i % users)).astype(np.uint64)
            t = time.perf_counter_ns()
            ids, _ = idx.search(q[i % len(q)], K, ef=64, filter=allowed)
            lat.append(time.perf_counter_ns() - t)
            sub = x[allowed.astype(np.int64)]
            truth = allowed[exact_topk(sub, q[i % len(q)][None, :], metric)[0]]
            hits += len(set(ids.tolist()) & set(truth.tolist()))
            total += len(truth)
        lines.append(
            f"  filter 1/{users} users ({len(x) // users} ids), {label}: recall {hits / total:.4f}, "
            f"p50 {np.percentile(lat, 50) / 1e3:.1f} us, p99 {np.percentile(lat, 99) / 1e3:.1f} us"
        )
    idx.exact_scan_threshold = None
    return lines


def filter_sweep(x, q, metric, idx: recallcore.HNSWIndex, nq: int = 100) -> list[str]:
    """Exact scan vs filtered walk (ef=64) across selectivities: where the planner's threshold comes from."""
    rng = np.random.default_rng(3)
    lines = ["  selectivity  allowed   exact p50 (us)   walk p50 (us)   walk recall"]
    for frac in [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2]:
        allowed = np.sort(rng.choice(len(x), max(1, int(len(x) * frac)), replace=False)).astype(np.uint64)
        res = {}
        for label, threshold in [("exact", 1 << 40), ("walk", 0)]:
            idx.exact_scan_threshold = threshold
            lat, hits = [], 0
            for i in range(nq):
                t = time.perf_counter_ns()
                ids, _ = idx.search(q[i], K, ef=64, filter=allowed)
                lat.append(time.perf_counter_ns() - t)
                if label == "walk":
                    truth = allowed[exact_topk(x[allowed.astype(np.int64)], q[i][None, :], metric)[0]]
                    hits += len(set(ids.tolist()) & set(truth.tolist()))
            res[label] = (float(np.percentile(lat, 50)) / 1e3, hits / (nq * min(K, len(allowed))))
        lines.append(
            f"  {frac:>10.3%}  {len(allowed):>7}   {res['exact'][0]:>14.1f}   {res['walk'][0]:>13.1f}"
            f"   {res['walk'][1]:>11.4f}"
        )
    idx.exact_scan_threshold = None
    return lines


# ------------------------------------------------------------------------------------------------ main
def run(args) -> None:
    print(f"recallcore {recallcore.__version__}, SIMD {recallcore.simd_level()}, cpu count {os.cpu_count()}")
    floor = per_call_floor()
    print(
        "per-call floor, 100 x 384 index, ef=10, k=10 (p50 us): "
        + ", ".join(f"{k} {v:.2f}" for k, v in floor.items())
    )
    for name, x, q, metric in load_datasets(args):
        q = q[: args.nq]
        print(f"\n=== {name}: {len(x)} vectors, {len(q)} queries, M={args.M}, ef_construction={args.efc} ===")
        truth = exact_topk(x, q, metric)
        rc_metric = "l2" if metric == "l2" else "ip"
        libs: list[Built] = []
        for storage in args.storages:
            b = build_recallcore(x, rc_metric, args.M, args.efc, 2, storage)
            if storage == "f32" and not args.quick:
                b.build_s.update(build_recallcore(x, rc_metric, args.M, args.efc, 1, storage).build_s)
            libs.append(b)
        hb = build_hnswlib(x, metric, args.M, args.efc, 2) if "hnswlib" in args.libs else None
        if hb is not None:
            if not args.quick:
                hb.build_s.update(build_hnswlib(x, metric, args.M, args.efc, 1).build_s)
            libs.append(hb)
        peers = {"faiss": build_faiss, "usearch": build_usearch, "svs": build_svs}
        for builder in (f for name, f in peers.items() if name in args.libs):
            b = builder(x, metric, args.M, args.efc, 2)
            if b is not None:
                libs.append(b)
        if not args.no_svs_f32 and "svs" in args.libs:
            b = build_svs(x, metric, args.M, args.efc, 2, f16=False)
            if b is not None:
                libs.append(b)
        results = {}
        for b in libs:
            results[b.name] = sweep(b, q, truth, EFS)
        ref = {t: at_recall(results["hnswlib"], t) for t in (0.95, 0.99)} if "hnswlib" in results else {}
        print(
            f"{'library':<16}{'build 1t (s)':>13}{'build 2t (s)':>13}{'B/vector':>10}"
            f"{'p50@0.95':>10}{'ratio':>7}{'p50@0.99':>10}{'ratio':>7}{'max recall':>11}"
        )
        for b in libs:
            rows = results[b.name]
            p95, p99 = at_recall(rows, 0.95), at_recall(rows, 0.99)
            r95 = p95 / ref[0.95] if p95 and ref.get(0.95) else None
            r99 = p99 / ref[0.99] if p99 and ref.get(0.99) else None
            print(
                f"{b.name:<16}{fmt(b.build_s.get(1)):>13}{fmt(b.build_s.get(2)):>13}{b.bytes_per_vector:>10.0f}"
                f"{fmt(p95):>10}{fmt(r95, '.2f'):>7}{fmt(p99):>10}{fmt(r99, '.2f'):>7}"
                f"{max(r for _, r, _, _ in rows):>11.4f}"
            )
        if args.verbose:
            for b in libs:
                print(
                    f"  {b.name}: "
                    + "  ".join(
                        f"ef{ef}:{r:.4f}/{p50:.0f}/{p99:.0f}us" for ef, r, p50, p99 in results[b.name]
                    )
                )
        # Every storage: with i8 the exact scan ranks by the codes, with f32/f16 it reads the f32 rows.
        for b in libs[: len(args.storages)]:
            print(f"  {b.name}:")
            print("\n".join(filtered(x, q, rc_metric, b.obj)))
        if args.filter_sweep:
            print("\n".join(filter_sweep(x, q, rc_metric, libs[0].obj)))
        del libs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="synthetic dataset size (default 100000)")
    ap.add_argument("--nq", type=int, default=1000, help="queries per dataset (default 1000)")
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200, help="ef_construction (all libraries)")
    ap.add_argument("--datasets", nargs="+", default=["synthetic", "sift10k", "realtalk"])
    ap.add_argument("--quick", action="store_true", help="skip the 1-thread builds")
    ap.add_argument("--libs", nargs="*", default=["hnswlib", "faiss", "usearch", "svs"], help="peers to run")
    ap.add_argument(
        "--storages",
        nargs="+",
        default=["f32", "f16", "i8", "i8-codes"],
        help="recallcore storages (x-codes: keep_originals=False)",
    )
    ap.add_argument("--no-svs-f32", action="store_true")
    ap.add_argument("--filter-sweep", action="store_true", help="exact scan vs walk across selectivities")
    ap.add_argument("--verbose", action="store_true", help="print every ef point")
    run(ap.parse_args())


if __name__ == "__main__":
    main()
