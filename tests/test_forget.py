"""Compaction (summaries + archived originals) and the right to be forgotten (forget, verify, vacuum)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from recallcore import Memory
from recallcore.embedders import HashingEmbedder
from recallcore.forgetting import extractive_summary

HOUR = 3600.0


@pytest.fixture
def mem(tmp_path):
    with Memory(tmp_path / "store", dim=16) as m:
        yield m


def rvec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(16).astype(np.float32)


# -- compaction ---------------------------------------------------------------------------------------

def seed_turns(mem: Memory) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for s, sess in enumerate(("s1", "s2")):
        ids = []
        for i in range(4):
            ids.append(mem.add(f"session {sess} turn {i} mentions quokka{s}{i}", namespace="u", session=sess,
                               ts=1000 + i * 60 + s, vector=rvec(s * 10 + i)))
        out[sess] = ids
    return out


def test_compact_writes_one_linked_summary_per_session_and_archives_originals(mem):
    turns = seed_turns(mem)
    recent = mem.add("recent turn quokka99", namespace="u", session="s1", ts=100_000)
    sids = mem.compact("u", older_than=HOUR, now=100_000)
    assert len(sids) == 2
    summaries = [mem.get(i) for i in sids]
    assert {s.kind for s in summaries} == {"summary"}
    assert sorted(tuple(sorted(s.sources)) for s in summaries) == sorted(tuple(v) for v in turns.values())
    for s in summaries:
        assert s.text and all(mem.get(src).session == s.session for src in s.sources)
    for ids in turns.values():
        assert all(mem.get(i).archived for i in ids)
    assert not mem.get(recent).archived


def test_recall_ignores_archived_originals_unless_asked(mem):
    turns = seed_turns(mem)
    mem.compact("u", older_than=HOUR, now=100_000, summarizer=lambda texts: f"{len(texts)} turns summarised")
    target = turns["s1"][2]
    hits = mem.recall("quokka02", namespace="u", k=10, now=100_000, mode="lexical")
    assert target not in [h.id for h in hits]
    hits = mem.recall("quokka02", namespace="u", k=10, now=100_000, mode="lexical", include_archived=True)
    assert target in [h.id for h in hits]


def test_restore_makes_originals_recallable_again(mem):
    turns = seed_turns(mem)
    mem.compact("u", older_than=HOUR, now=100_000, summarizer=lambda t: "summary")
    mem.restore(turns["s1"])
    hits = mem.recall("quokka02", namespace="u", k=10, now=100_000, mode="lexical")
    assert turns["s1"][2] in [h.id for h in hits]


def test_compact_drop_deletes_originals_in_same_step(mem):
    turns = seed_turns(mem)
    sids = mem.compact("u", older_than=HOUR, now=100_000, keep_original="drop")
    assert all(mem.get(i) is None for ids in turns.values() for i in ids)
    assert mem.stats()["records"] == len(sids) == 2
    assert mem.verify()["missing_in_state"] == 0


def test_compact_windows_split_groups(mem):
    for i in range(6):
        mem.add(f"turn {i}", namespace="u", session="s", ts=1000 + i * 1000)
    sids = mem.compact("u", older_than=HOUR, now=100_000, window=2500)
    assert [len(mem.get(i).sources) for i in sids] == [3, 3]


def test_compact_twice_does_not_resummarise(mem):
    seed_turns(mem)
    assert len(mem.compact("u", older_than=HOUR, now=100_000)) == 2
    assert mem.compact("u", older_than=HOUR, now=100_000) == []


def test_compact_bad_input_changes_nothing(mem):
    seed_turns(mem)
    before = mem.stats()["seq"]
    with pytest.raises(ValueError):
        mem.compact("u", older_than=HOUR, keep_original="shred")
    with pytest.raises(TypeError):
        mem.compact("u", older_than=HOUR, summarizer=lambda t: 42, now=100_000)
    with pytest.raises(TypeError):
        mem.compact("u", older_than="yesterday")
    assert mem.stats()["seq"] == before


def test_extractive_summary_prefers_informative_sentences_and_respects_cap():
    texts = ["ok", "thanks!", "My passport number expires in March 2027.", "sure", "yes"]
    assert extractive_summary(texts, max_chars=60) == "My passport number expires in March 2027."
    assert extractive_summary(["ok", "yes"]) == "ok yes"  # nothing longer: short sentences are kept
    assert len(extractive_summary(["a" * 1000], max_chars=50)) == 50


# -- right to be forgotten ----------------------------------------------------------------------------

SECRET = [f"zx{i}secret private text of eve number {i} qwv" for i in range(30)]


def populate(path: Path) -> Memory:
    m = Memory(path, embedder=HashingEmbedder(dim=64), checkpoint_every=0)
    for i, t in enumerate(SECRET):
        m.add(t, namespace="eve", session=f"evesession{i % 3}", entities=[f"evefriend{i % 4}"],
              kind="turn" if i % 2 else "fact", ts=1000 + i)
    for i in range(30):
        m.add(f"bob likes topic{i} and hiking", namespace="bob", session="shared-session", ts=1000 + i)
    m.add("eve shares this session", namespace="eve", session="shared-session", ts=5000)
    m.state("eve")["evestatekey"] = {"x": "evestatevalue"}
    m.set_policy("eve", max_items=1000)
    m.checkpoint()
    m.expire(now=2000)
    return m


def files_containing(root: Path, needles: list[bytes]) -> dict[str, list[bytes]]:
    found: dict[str, list[bytes]] = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            data = (Path(dirpath) / n).read_bytes()
            hit = [x for x in needles if x in data]
            if hit:
                found[os.path.join(dirpath, n)] = hit
    return found


UNIQUE = [t.encode() for t in SECRET] + [b"zx7secret", b"evesession1", b"evefriend2", b"evestatevalue"]


def test_byte_search_finds_texts_before_forget(tmp_path):
    # The oracle of the test below: without forget+vacuum the unique texts are on disk.
    m = populate(tmp_path / "store")
    m.close()
    assert files_containing(tmp_path / "store", UNIQUE)


def test_forget_namespace_then_vacuum_leaves_no_trace_on_disk(tmp_path):
    store, vac = tmp_path / "store", tmp_path / "vacuumed"
    m = populate(store)
    assert m.verify_forgotten("eve") > 0
    assert m.forget(namespace="eve") == 31
    assert m.verify_forgotten("eve") == 0
    m.vacuum(vac)
    m.checkpoint()
    assert files_containing(vac, UNIQUE + [b"eve"]) == {}
    snapshot_files = {p for p in store.iterdir() if p.name not in ("data.mdb", "lock.mdb")}
    assert snapshot_files and {Path(p) for p in files_containing(store, UNIQUE)} <= {store / "data.mdb"}
    # the other namespace is untouched and searchable, including the shared session name
    assert m.stats()["counts"] == {"bob": {"turn": 30}}
    assert m.recall("topic7 hiking", namespace="bob", k=1)[0].text == "bob likes topic7 and hiking"
    assert [r.namespace for r in m.history("bob", "shared-session")] == ["bob"] * 30
    assert m.state("eve").to_dict() == {} and m.policies() == []
    assert m.recall("secret private text", namespace="eve", k=5) == []
    m.close()
    with Memory(vac) as v:
        assert v.verify_forgotten("eve") == 0
        assert v.stats()["counts"] == {"bob": {"turn": 30}}
        assert v.recall("topic7 hiking", namespace="bob", k=1)[0].text == "bob likes topic7 and hiking"
    with Memory(store) as again:
        assert again.verify_forgotten("eve") == 0


def test_forget_by_ids_session_before_and_kinds(mem):
    ids = [mem.add(f"t{i}", namespace="u", session="a" if i % 2 else "b", kind="fact" if i < 4 else "turn",
                   ts=100 + i, vector=rvec(i)) for i in range(8)]
    keep = mem.add("other ns", namespace="v", vector=rvec(99))
    assert mem.forget(ids=[ids[0], ids[0], 12345]) == 1
    assert mem.forget("u", session="a", before=104) == 2  # ids 1, 3
    assert mem.forget("u", kinds=["turn"], before=106) == 2  # ids 4, 5
    assert mem.forget("v", ids=[ids[2]]) == 0  # ids must also match the namespace
    left = sorted(r.id for r in mem.history("u"))
    assert left == [ids[2], ids[6], ids[7]]
    assert mem.get(keep) is not None
    c = mem.verify()
    assert c["missing_in_state"] == c["extra_in_state"] == c["missing_vectors"] == c["extra_vectors"] == 0
    assert mem.recall(vector=rvec(1), namespace="u", k=1, mode="vector")[0].id != ids[1]


def test_forget_requires_a_selector(mem):
    mem.add("x", namespace="u")
    with pytest.raises(ValueError):
        mem.forget()
    assert mem.stats()["records"] == 1


def test_forget_unknown_namespace_is_zero(mem):
    assert mem.forget("nobody") == 0


def test_writes_after_forget_work_and_reopen_is_consistent(tmp_path):
    path = tmp_path / "store"
    with Memory(path, dim=16) as m:
        for i in range(10):
            m.add(f"u{i}", namespace="u", vector=rvec(i))
        m.forget("u")
        new = m.add("fresh", namespace="u", vector=rvec(50))
        assert m.recall(vector=rvec(50), namespace="u", k=1, mode="vector")[0].id == new
    with Memory(path) as m:
        c = m.verify()
        assert c["lmdb_records"] == 1 and c["missing_in_state"] == c["extra_in_state"] == 0


READER = r"""
import sys
import recallcore
m = recallcore.Memory(sys.argv[1])
for line in sys.stdin:
    if line.startswith("add"):
        m.add("written after the forget", namespace="u")
    m.history("u")  # caches the namespace's name id in this process
    print(m.stats()["records"], m.verify_forgotten("u"), flush=True)
"""


def test_another_process_catches_up_after_forget(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "store"
    with Memory(path, dim=16) as a:
        for i in range(5):
            a.add(f"u{i}", namespace="u", vector=rvec(i))
        child = subprocess.Popen([sys.executable, "-c", READER, str(path)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write("?\n")
            child.stdin.flush()
            assert child.stdout.readline().split()[0] == "5"
            a.forget("u")
            child.stdin.write("?\n")
            child.stdin.flush()
            assert child.stdout.readline().split() == ["0", "0"]  # log truncated -> the child rebuilds
            a.add("again", namespace="u")
            child.stdin.write("?\n")
            child.stdin.flush()
            assert child.stdout.readline().split()[0] == "1"
            a.forget("u")
            child.stdin.write("add\n")  # its name cache must not write under the forgotten namespace id
            child.stdin.flush()
            assert child.stdout.readline().split()[0] == "1"
            assert [r.text for r in a.history("u")] == ["written after the forget"]
            assert a.recall("written after", namespace="u", k=1)[0].record.namespace == "u"
        finally:
            child.stdin.close()
            child.wait(timeout=60)
            child.stdout.close()


STALE_WRITER = r"""
import sys
import recallcore
m = recallcore.Memory(sys.argv[1])
m.add("unsnapshotted change", namespace="v")
print("ready", flush=True)
sys.stdin.readline()
m.close()  # writes a snapshot: it must not carry the namespace forgotten meanwhile
print("closed", flush=True)
"""


def test_other_process_closing_after_forget_does_not_write_forgotten_rows_back(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "store"
    with Memory(path, dim=16, checkpoint_every=0) as a:
        for i in range(5):
            a.add(f"uniqtokenq{i}", namespace="u", vector=rvec(i))
        a.checkpoint()
        child = subprocess.Popen([sys.executable, "-c", STALE_WRITER, str(path)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdin is not None and child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "ready"
            a.forget("u")
            child.stdin.write("close\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "closed"
        finally:
            child.stdin.close()
            child.wait(timeout=60)
            child.stdout.close()
        # Checked on the files as the child left them (verify_forgotten would write a fresh snapshot).
        assert {Path(p).name for p in files_containing(path, [b"uniqtokenq"])} <= {"data.mdb"}
        assert a.verify_forgotten("u") == 0


def test_vacuum_refuses_existing_store_or_own_directory(mem, tmp_path):
    mem.add("x")
    with pytest.raises(ValueError):
        mem.vacuum(mem.path)
    mem.vacuum(tmp_path / "copy")
    with pytest.raises(ValueError):
        mem.vacuum(tmp_path / "copy")


def test_verify_forgotten_ignores_later_deletes_elsewhere(mem):
    for i in range(6):
        mem.add(f"x{i}", namespace="x", vector=rvec(i))
        mem.add(f"y{i}", namespace="y", vector=rvec(100 + i))
    mem.checkpoint()
    mem.forget("x")
    mem.delete([r.id for r in mem.history("y")[:3]])  # tombstones and a stale snapshot, unrelated to x
    assert mem.verify_forgotten("x") == 0
    assert mem.verify_forgotten("y") > 0  # a live namespace is all references
