"""Durable store benchmark (issue 4): single-add latency, bulk ingest to durable + searchable, cold
open + first query, disk bytes per record. Run as a script (it takes a few minutes at 100k):

    python benchmarks/bench_store.py --n 100000

Peers (sqlite-vec, chromadb, lancedb) are compared through the numbers measured on this machine kind
in ../shared/ANCHORS.md: this Python build cannot load SQLite extensions, so they are not re-run here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import recallcore

WORDS = ("the a memory agent user said flight lisbon porto project kiln glaze mug shop price week day "
         "sister moved job office coffee train ticket hotel booked dinner friday doctor meeting").split()


def make_data(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((256, dim)).astype(np.float32)
    vecs = centres[rng.integers(0, 256, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    texts = [" ".join(rng.choice(WORDS, 30)) for _ in range(n)]
    return vecs, texts


def dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def ingest(path: str, vecs: np.ndarray, texts: list[str], durable: bool, namespaces: int) -> float:
    items = [{"text": texts[i], "namespace": f"user{i % namespaces}", "vector": vecs[i], "ts": 1.7e9 + i}
             for i in range(len(texts))]
    m = recallcore.Memory(path, dim=vecs.shape[1], durable=durable)
    t = time.perf_counter()
    m.add_many(items, batch_size=1000)
    elapsed = time.perf_counter() - t
    # "Searchable": a vector query in a namespace finds the newest record right after add_many returns.
    hit = m.recall(vector=vecs[-1], namespace=f"user{(len(texts) - 1) % namespaces}", k=1, mode="vector")
    assert hit and hit[0].record.text == texts[-1]
    m.close()
    return len(texts) / elapsed


COLD = r"""
import sys, time, numpy as np
t0 = time.perf_counter()
import recallcore
t1 = time.perf_counter()
m = recallcore.Memory(sys.argv[1])
q = np.load(sys.argv[2])
hits = m.recall("flight lisbon", vector=q, namespace="user7", k=10, mode=sys.argv[3])
t2 = time.perf_counter()
assert len(hits) == 10 and hits[0].record.text
print((t2 - t1) * 1e3, (t1 - t0) * 1e3)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--singles", type=int, default=1000)
    args = ap.parse_args()
    vecs, texts = make_data(args.n + args.singles, args.dim)
    base_v, base_t = vecs[: args.n], texts[: args.n]
    root = tempfile.mkdtemp(prefix="rc-bench-store-")
    out: dict[str, float] = {}
    try:
        print(f"recallcore {recallcore.__version__}, SIMD {recallcore.simd_level()}, n={args.n}, dim={args.dim}")
        for durable in (True, False):
            path = os.path.join(root, f"bulk-{durable}")
            rate = ingest(path, base_v, base_t, durable, args.namespaces)
            out[f"ingest_items_per_s_{'durable' if durable else 'nosync'}"] = rate
            print(f"bulk ingest (add_many, batches of 1000, {'fsync per commit' if durable else 'no fsync'}): "
                  f"{rate:,.0f} items/s to durable and searchable")
        path = os.path.join(root, "bulk-True")
        # Let the graph finish (a store left alone indexes in the background), then snapshot.
        with recallcore.Memory(path) as m:
            t = time.perf_counter()
            m.verify()  # drains the pending tail into the graph
            out["graph_build_s_after_ingest"] = time.perf_counter() - t
        out["disk_bytes_per_record"] = dir_bytes(path) / args.n
        print(f"graph finished {out['graph_build_s_after_ingest']:.1f} s after ingest returned; disk "
              f"{out['disk_bytes_per_record']:,.0f} bytes/record (LMDB + index snapshots)")

        # Single durable adds at n records.
        lat = []
        with recallcore.Memory(path) as m:
            for i in range(args.singles):
                t = time.perf_counter()
                m.add(texts[args.n + i], namespace=f"user{i % args.namespaces}", vector=vecs[args.n + i])
                lat.append(time.perf_counter() - t)
        lat_us = np.array(lat) * 1e6
        out["single_add_p50_us"], out["single_add_p99_us"] = np.percentile(lat_us, [50, 99])
        print(f"single add (fsync per commit) at {args.n:,} records: p50 {out['single_add_p50_us']:.0f} us, "
              f"p99 {out['single_add_p99_us']:.0f} us")

        qpath = os.path.join(root, "q.npy")
        np.save(qpath, vecs[7])
        for mode in ("vector", "hybrid"):
            runs = []
            for _ in range(5):
                r = subprocess.run([sys.executable, "-c", COLD, path, qpath, mode], capture_output=True, text=True,
                                   check=True)
                runs.append(float(r.stdout.split()[0]))
            out[f"cold_open_first_query_ms_{mode}"] = float(np.median(runs))
            print(f"cold open + first {mode} query (fresh process, OS cache warm): median "
                  f"{np.median(runs):.2f} ms over 5 (min {min(runs):.2f})")
        print("\nReference, measured on this machine kind (../shared/ANCHORS.md, 100k items):")
        print("  sqlite-vec 0.1.9: ingest 3.9k items/s, cold open + first query 2.7 ms, 2.1 KB/record")
        print("  chromadb 1.5.9:   ingest 960 items/s,  cold open + first query 727 ms")
        print("  lancedb 0.40:     ingest 102k items/s, cold open + first query 51 ms")
        print(json.dumps({k: round(v, 2) for k, v in out.items()}))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
