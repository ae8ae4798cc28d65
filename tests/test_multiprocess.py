"""Many processes on one store: one writer, readers that see each commit on their next call."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import numpy as np
import pytest

from recallcore import Memory

N = 60


def vec(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal(8).astype(np.float32)


def writer(path: str, queues: list, ready) -> None:
    with Memory(path, dim=8) as m:
        ready.wait()
        for i in range(N):
            rid = m.add(f"note {i}", namespace="shared", vector=vec(i))
            for q in queues:
                q.put((rid, i))
        for q in queues:
            q.put(None)


def reader(path: str, q, results, ready) -> None:
    errors = []
    with Memory(path, readonly=True) as m:
        ready.wait()
        seen = 0
        while True:
            item = q.get()
            if item is None:
                break
            rid, i = item
            # The first call after the commit must already see it: get and search, no retry.
            r = m.get(rid)
            if r is None or r.text != f"note {i}":
                errors.append(f"get({rid}) -> {r}")
            hits = m.recall(vector=vec(i), k=1, namespace="shared", mode="vector")
            if not hits or hits[0].id != rid:
                errors.append(f"search for {rid} -> {hits}")
            seen += 1
        results.put((seen, errors))


@pytest.mark.slow
def test_readers_in_other_processes_see_every_commit(tmp_path):
    path = str(tmp_path / "store")
    Memory(path, dim=8).close()  # create it so read-only readers can open it
    ctx = mp.get_context("spawn")
    queues = [ctx.Queue(), ctx.Queue()]
    results = ctx.Queue()
    ready = ctx.Barrier(3)
    readers = [ctx.Process(target=reader, args=(path, q, results, ready)) for q in queues]
    for p in readers:
        p.start()
    w = ctx.Process(target=writer, args=(path, queues, ready))
    w.start()
    w.join(120)
    outcomes = [results.get(timeout=120) for _ in readers]
    for p in readers:
        p.join(30)
    assert w.exitcode == 0
    assert all(p.exitcode == 0 for p in readers)
    for seen, errors in outcomes:
        assert errors == []
        assert seen == N


def grower(path: str, q, ready) -> None:
    with Memory(path, dim=8, map_size=1 << 20) as m:
        ready.wait()
        for i in range(6):
            ids = m.add_many([{"text": f"grow {i} {j} " + "x" * 1500, "namespace": "g", "vector": vec(j)}
                              for j in range(300)])
            q.put((ids[-1], m.stats()["map_bytes"]))
        q.put(None)


def small_map_reader(path: str, q, results, ready) -> None:
    errors = []
    with Memory(path, readonly=True, map_size=1 << 20) as m:
        ready.wait()
        while (item := q.get()) is not None:
            rid, map_bytes = item
            r = m.get(rid)  # the writer's map has grown past ours: this must adopt it (MDB_MAP_RESIZED)
            if r is None or not r.text.startswith("grow"):
                errors.append(f"get({rid}) after the map grew to {map_bytes} -> {r}")
        results.put((m.stats()["records"], errors))


def run_reader_and_writer(path: str, reader_fn: Any, writer_fn: Any) -> Any:
    """Runs one reader and one writer process on the store at `path` (spawned, sharing a queue and a
    barrier) and returns what the reader reported; both must exit cleanly."""
    ctx = mp.get_context("spawn")
    q, results, ready = ctx.Queue(), ctx.Queue(), ctx.Barrier(2)
    r = ctx.Process(target=reader_fn, args=(path, q, results, ready))
    w = ctx.Process(target=writer_fn, args=(path, q, ready))
    r.start()
    w.start()
    w.join(120)
    report = results.get(timeout=120)
    r.join(30)
    assert w.exitcode == 0 and r.exitcode == 0
    return report


@pytest.mark.slow
def test_reader_adopts_a_map_grown_by_another_process(tmp_path):
    path = str(tmp_path / "store")
    Memory(path, dim=8, map_size=1 << 20).close()
    records, errors = run_reader_and_writer(path, small_map_reader, grower)
    assert errors == []
    assert records == 1800


BASE = 400  # records already in the namespace: the readers' searches go through its scan copies


def copies_writer(path: str, q, ready) -> None:
    with Memory(path, dim=8) as m:
        base_ids = m.add_many([{"text": f"base {i}", "namespace": "c", "vector": vec(1000 + i)} for i in range(BASE)])
        q.put(("ready", None, None))
        ready.wait()  # the reader has searched once: its copies of "c" are built
        for i in range(20):
            rid = m.add(f"new {i}", namespace="c", vector=vec(i))
            q.put(("added", rid, i))
            m.update(base_ids[i], vector=vec(5000 + i))  # a replaced vector
            q.put(("replaced", base_ids[i], 5000 + i))
            m.delete(base_ids[100 + i])
            q.put(("deleted", base_ids[100 + i], 1000 + 100 + i))
        q.put(None)


def copies_reader(path: str, q, results, ready) -> None:
    errors = []
    assert q.get()[0] == "ready"
    with Memory(path, readonly=True) as m:
        m.recall(vector=vec(0), k=5, namespace="c", mode="vector")  # builds the copies
        ready.wait()
        while (item := q.get()) is not None:
            what, rid, seed = item
            # The first call after the commit must see it, through copies built before the commit.
            top = m.recall(vector=vec(seed), k=1, namespace="c", mode="vector")
            if what in ("added", "replaced") and (not top or top[0].id != rid):
                errors.append(f"{what} {rid}: top hit {top}")
            if what == "deleted" and top and top[0].id == rid:
                errors.append(f"deleted {rid} still found")
        results.put((m.verify(), m.stats()["scan_cache"]["namespaces"], errors))


@pytest.mark.slow
def test_scan_copies_follow_writes_of_another_process(tmp_path):
    path = str(tmp_path / "store")
    Memory(path, dim=8).close()
    check, namespaces, errors = run_reader_and_writer(path, copies_reader, copies_writer)
    assert errors == []
    assert namespaces == 1
    assert all(v == 0 for k, v in check.items() if k != "lmdb_records"), check
