"""The durable memory store: writes, reads, reopen, state, conflicts and bad input."""

from __future__ import annotations

import math
import os
import struct
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import recallcore
from recallcore import Memory


def unit(rng: np.random.Generator, dim: int = 8) -> np.ndarray:
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def mem(tmp_path):
    with Memory(tmp_path / "store", dim=8) as m:
        yield m


def test_add_and_get_round_trip(mem):
    rid = mem.add("I moved to Lisbon", namespace="alice", session="s1", kind="fact", role="user",
                  ts=1_700_000_000.5, importance=0.9, metadata={"source": "chat", "n": [1, 2]},
                  entities=["Lisbon"], vector=np.ones(8, np.float32), summary="moved to Lisbon")
    r = mem.get(rid)
    assert r.id == rid and r.text == "I moved to Lisbon" and r.namespace == "alice"
    assert r.session == "s1" and r.kind == "fact" and r.role == "user"
    assert r.ts == 1_700_000_000.5 and r.importance == pytest.approx(0.9)
    assert r.metadata == {"source": "chat", "n": [1, 2]} and r.entities == ("Lisbon",)
    assert r.summary == "moved to Lisbon" and r.tokens > 0 and r.summary_tokens > 0
    assert r.has_vector


def test_ids_are_increasing_and_unknown_id_is_none(mem):
    a = mem.add("one")
    b = mem.add("two")
    assert b > a
    assert mem.get(b + 100) is None


def test_ts_accepts_datetime_naive_as_utc(mem):
    aware = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    a = mem.add("x", ts=aware)
    b = mem.add("y", ts=datetime(2024, 5, 1, 12))
    assert mem.get(a).ts == mem.get(b).ts == aware.timestamp()


def test_ts_defaults_to_now(mem):
    import time

    before = time.time()
    r = mem.get(mem.add("now"))
    assert before - 1 <= r.ts <= time.time() + 1


def test_history_is_in_time_order_and_last_keeps_newest(mem):
    for i, t in enumerate([30, 10, 20, 40]):
        mem.add(f"turn {i}", namespace="u", session="s", ts=t)
    mem.add("other session", namespace="u", session="s2", ts=15)
    texts = [r.text for r in mem.history("u", "s")]
    assert texts == ["turn 1", "turn 2", "turn 0", "turn 3"]
    assert [r.text for r in mem.history("u", "s", last=2)] == ["turn 0", "turn 3"]
    assert [r.ts for r in mem.history("u")] == [10, 15, 20, 30, 40]
    assert [r.ts for r in mem.history("u", since=15, until=40)] == [15, 20, 30]
    assert mem.history("nobody") == []


def test_list_paginates_and_filters_kind(mem):
    for i in range(25):
        mem.add(f"item {i}", namespace="u", kind="fact" if i % 2 else "turn", ts=i)
    seen, cursor = [], None
    while True:
        page, cursor = mem.list("u", limit=7, cursor=cursor)
        seen += [r.ts for r in page]
        if cursor is None:
            break
    assert seen == list(range(25))
    facts, _ = mem.list("u", kind="fact", limit=100)
    assert [r.ts for r in facts] == list(range(1, 25, 2))


def test_entity_lookup_is_case_insensitive_and_time_ordered(mem):
    mem.add("Priya called", namespace="u", entities=["Priya"], ts=5)
    mem.add("met priya", namespace="u", entities=["PRIYA", "Cafe"], ts=1)
    mem.add("Priya elsewhere", namespace="v", entities=["Priya"], ts=2)
    assert [r.text for r in mem.entity("u", "priya")] == ["met priya", "Priya called"]


def test_update_changes_fields_and_counts(mem):
    rid = mem.add("old text", namespace="u", importance=0.2)
    mem.update(rid, text="a much longer new text than before", importance=0.7, metadata={"k": 1})
    r = mem.get(rid)
    assert r.text == "a much longer new text than before" and r.importance == pytest.approx(0.7)
    assert r.metadata == {"k": 1} and r.tokens > 2


def test_delete_removes_everything(mem):
    rid = mem.add("gone", namespace="u", session="s", entities=["E"], vector=np.ones(8, np.float32))
    keep = mem.add("kept", namespace="u", session="s")
    mem.delete(rid)
    assert mem.get(rid) is None
    assert [r.id for r in mem.history("u", "s")] == [keep]
    assert mem.entity("u", "E") == []
    assert mem.stats()["vectors"] == 0


def test_delete_unknown_id_changes_nothing(mem):
    a = mem.add("a")
    with pytest.raises(ValueError, match="unknown record id"):
        mem.delete([a, a + 50])
    assert mem.get(a) is not None


def test_state_mapping_is_persistent(tmp_path):
    with Memory(tmp_path / "s") as m:
        st = m.state("alice")
        st["task"] = {"goal": "book a flight", "step": 2}
        st["lang"] = "pt"
        del st["lang"]
        with pytest.raises(KeyError):
            del st["missing"]
        with pytest.raises(ValueError, match="not JSON-serialisable"):
            st["bad"] = {1, 2}
    with Memory(tmp_path / "s") as m:
        assert m.state("alice").to_dict() == {"task": {"goal": "book a flight", "step": 2}}
        assert dict(m.state("bob")) == {}


def test_reopen_keeps_records_and_search(tmp_path):
    rng = np.random.default_rng(0)
    vecs = [unit(rng) for _ in range(50)]
    with Memory(tmp_path / "s", dim=8) as m:
        ids = [m.add(f"t{i}", namespace="n", vector=v) for i, v in enumerate(vecs)]
        before = [[h.id for h in m.recall(vector=v, k=3, namespace="n", mode="vector")] for v in vecs[:5]]
    with Memory(tmp_path / "s") as m:
        assert m.dim == 8 and m.stats()["records"] == 50
        assert [[h.id for h in m.recall(vector=v, k=3, namespace="n", mode="vector")] for v in vecs[:5]] == before
        assert m.get(ids[7]).text == "t7"
        assert all(v == 0 for k, v in m.verify().items() if k != "lmdb_records")


def test_reopen_with_conflicting_dim_or_metric_is_refused(tmp_path):
    Memory(tmp_path / "s", dim=8, metric="l2").close()
    with pytest.raises(ValueError, match="created with dim '8', not '16'"):
        Memory(tmp_path / "s", dim=16)
    with pytest.raises(ValueError, match="created with metric 'l2', not 'cosine'"):
        Memory(tmp_path / "s", metric="cosine")
    with Memory(tmp_path / "s") as m:
        assert m.metric == "l2"


def test_opening_twice_in_one_process_is_refused(tmp_path):
    with Memory(tmp_path / "s"), pytest.raises(recallcore.StoreError, match="already open in this process"):
        Memory(tmp_path / "s")
    Memory(tmp_path / "s").close()  # fine once the first is closed


def test_closed_store_raises(tmp_path):
    m = Memory(tmp_path / "s")
    m.close()
    m.close()
    with pytest.raises(recallcore.StoreError, match="closed"):
        m.add("x")


def test_use_after_fork_is_refused(tmp_path):
    m = Memory(tmp_path / "s")
    m.add("before fork")
    pid = os.fork()
    if pid == 0:  # child: must refuse, never touch the parent's environment
        try:
            m.get(1)
            os._exit(1)
        except recallcore.StoreError as exc:
            os._exit(0 if "fork" in str(exc) else 2)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert m.get(1).text == "before fork"
    m.close()


def test_text_only_store_refuses_vectors(tmp_path):
    with Memory(tmp_path / "s") as m:
        m.add("no vectors here")
        with pytest.raises(ValueError, match="text-only"):
            m.add("x", vector=np.ones(4, np.float32))


def test_add_many_one_transaction_per_batch(mem):
    items = [{"text": f"item {i}", "namespace": "bulk", "vector": np.full(8, i + 1, np.float32)} for i in range(250)]
    ids = mem.add_many(items, batch_size=100)
    assert len(ids) == 250 and ids == sorted(ids)
    assert mem.stats()["counts"]["bulk"]["turn"] == 250


def test_add_many_rejects_a_bad_item_before_writing_its_batch(mem):
    items = [{"text": "ok"}, {"text": "bad", "importance": 3}]
    with pytest.raises(ValueError, match="importance"):
        mem.add_many(items)
    assert mem.stats()["records"] == 0


def test_add_many_progress_bar(mem, capsys):
    mem.add_many([{"text": str(i)} for i in range(10)], progress=True)
    assert "recallcore add_many" in capsys.readouterr().err


def test_ttl_sets_expiry(mem):
    r = mem.get(mem.add("temp", ttl=timedelta(hours=1)))
    assert r.expires_at == pytest.approx(r.created + 3600)
    assert math.isinf(mem.get(mem.add("forever")).expires_at)


def snapshot(m: Memory) -> tuple:
    s = m.stats()
    return (s["records"], s["vectors"], s["seq"], [(r.id, r.text) for r in m.history("u")])


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"text": b"bytes"}, TypeError, "text must be str"),
        ({"text": 42}, TypeError, "text must be str"),
        ({"text": "bad \udcff utf8"}, ValueError, "not valid UTF-8"),
        ({"text": "x" * (recallcore.memory.MAX_TEXT_BYTES + 1)}, ValueError, "limit"),
        ({"text": "x", "vector": np.ones(5, np.float32)}, ValueError, "dim is 8"),
        ({"text": "x", "vector": np.array([np.nan] * 8, np.float32)}, ValueError, "NaN"),
        ({"text": "x", "vector": np.ones((2, 4), np.float32)}, ValueError, "1-D"),
        ({"text": "x", "namespace": ""}, ValueError, "namespace must be a non-empty"),
        ({"text": "x", "namespace": 3}, TypeError, "namespace must be str"),
        ({"text": "x", "metadata": {"f": object()}}, ValueError, "not JSON-serialisable"),
        ({"text": "x", "metadata": {"f": float("nan")}}, ValueError, "not JSON-serialisable"),
        ({"text": "x", "importance": 1.5}, ValueError, "importance"),
        ({"text": "x", "ts": float("inf")}, ValueError, "finite"),
        ({"text": "x", "ts": "yesterday"}, TypeError, "datetime or Unix seconds"),
        ({"text": "x", "entities": "Priya"}, TypeError, "list of strings"),
        ({"text": "x", "ttl": -5}, ValueError, "ttl"),
        ({"text": "x", "supersedes": 999}, ValueError, "no such record"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(mem, kwargs, exc, match):
    mem.add("existing", namespace="u", vector=np.ones(8, np.float32))
    before = snapshot(mem)
    text = kwargs.pop("text")
    with pytest.raises(exc, match=match):
        mem.add(text, namespace=kwargs.pop("namespace", "u"), **kwargs)
    assert snapshot(mem) == before


def test_bad_update_and_get_arguments(mem):
    rid = mem.add("x", namespace="u")
    before = snapshot(mem)
    with pytest.raises(ValueError, match="unknown record id"):
        mem.update(rid + 10, text="y")
    with pytest.raises(TypeError, match="record ids are ints"):
        mem.get("1")
    with pytest.raises(ValueError, match="importance"):
        mem.update(rid, importance=-1)
    assert snapshot(mem) == before


def test_stats_reports_counts_and_bytes(mem):
    mem.add("a", namespace="x", kind="fact")
    mem.add("b", namespace="x")
    mem.add("c", namespace="y")
    s = mem.stats()
    assert s["counts"] == {"x": {"fact": 1, "turn": 1}, "y": {"turn": 1}}
    assert s["records"] == 3 and s["file_bytes"] > 0 and s["map_bytes"] >= s["file_bytes"]
    assert s["dim"] == 8 and s["metric"] == "cosine"


def test_map_grows_automatically(tmp_path):
    with Memory(tmp_path / "s", dim=64, map_size=1 << 20) as m:
        rng = np.random.default_rng(1)
        m.add_many([{"text": "w " * 200, "vector": rng.standard_normal(64).astype(np.float32)}
                    for _ in range(3000)], batch_size=500)
        assert m.stats()["map_bytes"] > 1 << 20
        assert m.stats()["records"] == 3000


def test_reads_stay_right_after_the_map_moves_and_pages_are_rewritten(tmp_path):
    # Reads remember where each record lay in LMDB's map and prefetch there next time. Growing the
    # map (a remap, possibly elsewhere), updates (copied pages) and deletes (freed, reused pages) make
    # those addresses stale: the records read afterwards must still be exactly the stored ones.
    rng = np.random.default_rng(3)
    with Memory(tmp_path / "s", dim=16, map_size=1 << 20) as m:
        ids = m.add_many([{"text": f"first {i}", "namespace": "u", "vector": rng.standard_normal(16).astype(np.float32)}
                          for i in range(200)])
        q = rng.standard_normal(16).astype(np.float32)
        before = {h.id for h in m.recall(vector=q, namespace="u", k=50)}
        assert [t[1] for t in m._store.get_many(ids)] == [f"first {i}" for i in range(200)]  # (id, text, ...)
        map_before = m.stats()["map_bytes"]
        m.add_many([{"text": "w " * 300, "namespace": "filler"} for _ in range(2000)], batch_size=500)
        assert m.stats()["map_bytes"] > map_before  # the map grew
        for i in range(0, 200, 2):
            m.update(ids[i], text=f"second {i}")
        m.delete(ids[1:200:4])
        gone = set(ids[1:200:4])
        expected = {rid: f"second {i}" if i % 2 == 0 else f"first {i}" for i, rid in enumerate(ids) if rid not in gone}
        hits = m.recall(vector=q, namespace="u", k=50)
        assert {h.id for h in hits} <= (before | set(expected)) - gone
        assert all(h.text == expected[h.id] and h.record.text == expected[h.id] for h in hits)
        assert [t[1] for t in m._store.get_many(list(expected))] == list(expected.values())
        assert all(m.get(rid).text == text for rid, text in expected.items())


def test_snapshot_is_used_and_corrupt_snapshot_is_rebuilt(tmp_path):
    with Memory(tmp_path / "s", dim=8) as m:
        for i in range(20):
            m.add(f"r{i}", namespace="n", vector=np.full(8, i + 1, np.float32))
    snap = tmp_path / "s" / "snapshot.rc"
    assert snap.exists()
    data = bytearray(snap.read_bytes())
    data[-3] ^= 0xFF
    snap.write_bytes(bytes(data))
    with Memory(tmp_path / "s") as m:
        assert m.stats()["records"] == 20
        assert all(v == 0 for k, v in m.verify().items() if k != "lmdb_records")


def _store_with_snapshot(path):
    rng = np.random.default_rng(3)
    with Memory(path, dim=8) as m:
        ids = m.add_many([{"text": f"note {i}", "namespace": f"n{i % 3}", "vector": unit(rng)} for i in range(300)])
        m.delete(ids[5:8])
        m.verify()  # the graph holds every vector, so the snapshot is complete
    return rng, ids


def test_the_row_table_is_served_from_the_snapshot_and_written_copy_on_write(tmp_path):
    path = tmp_path / "s"
    rng, ids = _store_with_snapshot(path)
    snap = path / "snapshot.rc"
    before = snap.read_bytes()
    with Memory(path) as m:
        assert m.stats()["snapshot_seq"] > 0  # opened from the snapshot, not rebuilt
        m.update(ids[10], text="edited", importance=0.9)
        m.delete(ids[11])
        # Past the table's reserve too, so it moves off the mapping.
        new = m.add_many([{"text": f"more {i}", "namespace": "n1", "vector": unit(rng)} for i in range(3000)])
        assert snap.read_bytes() == before  # rows written in memory only
        assert m.get(ids[10]).text == "edited" and m.get(ids[11]) is None and m.get(new[-1]).text == "more 2999"
        assert len(m.recall(vector=unit(rng), namespace="n1", k=5)) == 5
        assert all(v == 0 for k, v in m.verify().items() if k != "lmdb_records")
    with Memory(path) as m:
        assert m.stats()["snapshot_seq"] > 0
        assert m.stats()["records"] == 300 - 3 - 1 + 3000
        assert m.get(ids[10]).importance == pytest.approx(0.9) and m.get(ids[12]).text == "note 12"
        assert all(v == 0 for k, v in m.verify().items() if k != "lmdb_records")


@pytest.mark.parametrize("damage", ["rows", "namespace lists", "truncated", "format 4", "row layout"])
def test_a_damaged_or_older_row_snapshot_is_rebuilt_from_lmdb(tmp_path, damage):
    path = tmp_path / "s"
    _, ids = _store_with_snapshot(path)
    snap = path / "snapshot.rc"
    data = bytearray(snap.read_bytes())
    rows = int.from_bytes(data[40:48], "little")
    if damage == "rows":
        data[128 + 120 * (rows // 2) + 3] ^= 0x40
    elif damage == "namespace lists":
        data[128 + 120 * rows + 16 * 3 + 8] ^= 0x01  # the first list's first id
    elif damage == "truncated":
        del data[-5:]
    elif damage == "format 4":
        data[8] = 4
    else:
        data[12] += 8  # the row size of another build
    snap.write_bytes(bytes(data))
    with Memory(path) as m:
        assert m.stats()["snapshot_seq"] == 0  # rebuilt
        assert m.stats()["records"] == 297 and m.get(ids[150]).text == "note 150"
        assert all(v == 0 for k, v in m.verify().items() if k != "lmdb_records")


def test_corrupt_lexical_snapshot_is_rebuilt_from_lmdb(tmp_path):
    with Memory(tmp_path / "s") as m:
        for i in range(30):
            m.add(f"note {i} about kilns and glaze", namespace="n")
        m.add("the passport expires in june", namespace="n")
    lex = tmp_path / "s" / "lexical.idx"
    data = bytearray(lex.read_bytes())
    data[len(data) // 2] ^= 0xFF
    lex.write_bytes(bytes(data))
    with Memory(tmp_path / "s") as m:
        hits = m.recall("passport", namespace="n", k=1, mode="lexical")
        assert hits[0].text == "the passport expires in june"


def test_readonly_store_refuses_writes(tmp_path):
    Memory(tmp_path / "s").close()
    with Memory(tmp_path / "s", readonly=True) as m:
        with pytest.raises(recallcore.StoreError, match="read-only"):
            m.add("x")
        assert m.stats()["records"] == 0


def test_readonly_open_of_a_missing_store_creates_nothing(tmp_path):
    with pytest.raises(recallcore.StoreError, match="no store"):
        Memory(tmp_path / "missing", readonly=True)
    assert not (tmp_path / "missing").exists()


FORK_EXIT = r"""
import os, sys, tempfile
import numpy as np
import recallcore
m = recallcore.Memory(tempfile.mkdtemp(), dim=4)
m.add("x", vector=np.ones(4, np.float32))
pid = os.fork()
if pid == 0:
    sys.exit(0)  # a normal exit: finalizers run on the parent's Memory object; they must not hang
_, status = os.waitpid(pid, 0)
print(os.WEXITSTATUS(status), m.get(1).text)
m.close()
"""


def test_a_forked_child_exits_cleanly_while_holding_the_parents_store():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", FORK_EXIT], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "x"]


def test_close_rewrites_a_snapshot_taken_while_the_graph_was_incomplete(tmp_path):
    rng = np.random.default_rng(5)
    with Memory(tmp_path / "s", dim=16, ef_construction=40) as m:
        m.add_many([{"text": f"r{i}", "namespace": "n", "vector": rng.standard_normal(16).astype(np.float32)}
                    for i in range(3000)])
        m.checkpoint()  # same change sequence as at close, but most vectors are still pending here
        m.verify()  # drains the indexer: the graph now holds every vector
    with Memory(tmp_path / "s") as m:
        s = m.stats()
        assert s["pending_vectors"] == 0 and s["indexed_vectors"] == 3000


def test_reopen_then_close_after_only_indexing_writes_a_snapshot_safely(tmp_path):
    # Regression: a store reopened from a snapshot whose graph then grew (re-queued vectors indexed),
    # closed without any lexical use in between, serialised a lexical index it had not installed yet.
    rng = np.random.default_rng(6)
    with Memory(tmp_path / "s", dim=16, ef_construction=40) as m:
        m.add_many([{"text": f"note {i}", "namespace": "n", "vector": rng.standard_normal(16).astype(np.float32)}
                    for i in range(3000)])
    with Memory(tmp_path / "s") as m:
        m.verify()
    with Memory(tmp_path / "s") as m:
        assert m.recall("note", namespace="n", k=3, mode="lexical")
        assert m.stats()["pending_vectors"] == 0


def test_a_deleted_records_header_does_not_stay_in_the_snapshot(tmp_path):
    # The header snapshot (snapshot.rc) holds every slot up to the last live id: a deleted record's
    # slot must be written as zeros, not as its old header (namespace, session, times).
    marker = 1234567.890625  # a timestamp whose 8 bytes occur nowhere else
    with Memory(tmp_path / "s", dim=4, durable=False) as m:
        gone = m.add("private", namespace="a", session="s", ts=marker, vector=np.ones(4, np.float32))
        kept = m.add("public", namespace="b", ts=10.0, vector=np.full(4, 2.0, np.float32))
        m.delete([gone])
    data = (tmp_path / "s" / "snapshot.rc").read_bytes()
    assert struct.pack("<d", marker) not in data
    assert struct.pack("<d", 10.0) in data  # the live record's header is there
    with Memory(tmp_path / "s") as m:
        assert m.get(gone) is None and m.get(kept).text == "public"
