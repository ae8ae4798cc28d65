"""Cold open + first query, A/B between builds (issue 4): each trial copies a store, then a fresh
process opens it and runs one recall. Builds alternate trial by trial, so both see the same machine
load (the shared 2-core machine is too noisy for runs minutes apart to be compared).

    # a store per build (snapshot formats differ between builds), made by that build:
    PYTHONPATH=/tmp/old python benchmarks/bench_cold_open.py --make /tmp/store-old
    PYTHONPATH=python python benchmarks/bench_cold_open.py --make /tmp/store-new
    python benchmarks/bench_cold_open.py /tmp/old=/tmp/store-old python=/tmp/store-new --rounds 21

Each PACKAGE=STORE pair names a directory holding an importable `recallcore` and a store made by it.
The copy is written in 4 MiB chunks, as the store writes its own files: the page cache then holds
large folios, and first-touch faults on the mapped files cost several times less than after `cp`
(which measured 2.1 ms instead of 0.4 ms for the first query's 1,000 vector pages).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys

TRIAL = r"""
import sys, time
import numpy as np
import recallcore
q = np.load(sys.argv[2])
t0 = time.perf_counter()
m = recallcore.Memory(sys.argv[1])
t1 = time.perf_counter()
hits = m.recall("flight lisbon", vector=q, namespace="user7", k=10, mode=sys.argv[3])
t2 = time.perf_counter()
assert len(hits) == 10 and hits[0].record.text
print((t2 - t0) * 1e3, (t1 - t0) * 1e3, (t2 - t1) * 1e3)
"""


def make_store(path: str, n: int, dim: int) -> None:
    import numpy as np

    import recallcore
    from bench_store import make_data  # imports recallcore: only where a store is made

    vecs, texts = make_data(n, dim)
    items = [{"text": texts[i], "namespace": f"user{i % 100}", "vector": vecs[i], "ts": 1.7e9 + i} for i in range(n)]
    with recallcore.Memory(path, dim=dim, durable=False) as m:
        m.add_many(items, batch_size=1000)
    with recallcore.Memory(path) as m:
        m.verify()  # drains the pending tail into the graph: the snapshot is complete
    np.save(query_path(path), vecs[7])


def query_path(store: str) -> str:
    return os.path.abspath(store).rstrip("/") + ".q.npy"


def copy_store(src: str, dst: str) -> None:
    os.makedirs(dst)
    for name in os.listdir(src):
        with open(os.path.join(src, name), "rb") as a, open(os.path.join(dst, name), "wb") as b:
            while chunk := a.read(4 << 20):
                b.write(chunk)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pairs", nargs="*", metavar="PACKAGE=STORE")
    ap.add_argument("--make", metavar="STORE", help="build a 100-namespace store with the importable recallcore")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--modes", default="vector,hybrid")
    ap.add_argument("--scratch", default="/tmp/rc-bench-cold-open")
    args = ap.parse_args()
    if args.make:
        make_store(args.make, args.n, args.dim)
        return
    pairs = [p.split("=", 1) for p in args.pairs]
    modes = args.modes.split(",")
    times: dict[tuple[str, str], list[list[float]]] = {(p, m): [] for p, _ in pairs for m in modes}
    for _ in range(args.rounds):
        for mode in modes:
            for pkg, store in pairs:
                shutil.rmtree(args.scratch, ignore_errors=True)
                copy_store(store, args.scratch)
                env = dict(os.environ, PYTHONPATH=pkg, OPENBLAS_NUM_THREADS="1")
                out = subprocess.run([sys.executable, "-c", TRIAL, args.scratch, query_path(store), mode], env=env,
                                     capture_output=True, text=True, check=True)
                times[(pkg, mode)].append([float(x) for x in out.stdout.split()])
    shutil.rmtree(args.scratch, ignore_errors=True)
    for (pkg, mode), runs in times.items():
        total, opened, query = ([r[i] for r in runs] for i in range(3))
        print(f"{pkg:>28} {mode:6}: open + first query median {statistics.median(total):6.2f} ms "
              f"(min {min(total):5.2f}; open {statistics.median(opened):5.2f}, query {statistics.median(query):4.2f}) "
              f"over {len(runs)}")


if __name__ == "__main__":
    main()
