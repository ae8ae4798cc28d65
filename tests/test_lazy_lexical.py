"""The store's lexical index after a reopen: partitions (one per namespace) decoded lazily from the
snapshot image must behave exactly like an index rebuilt from LMDB, keep writes made before they were
decoded, and rebuild a damaged partition from LMDB (engine/snapshot.cpp, text/bm25.cpp format 3)."""

from __future__ import annotations

import random
import struct

import pytest

from recallcore import Memory

WORDS = "kiln glaze mug shop price week lisbon porto flight hotel dinner doctor train ticket coffee".split()
QUERIES = ["kiln glaze", "flight lisbon", "coffee", "doctor train ticket", "porto hotel dinner", "nothing"]
NAMESPACES = [f"user{i}" for i in range(6)]


def fill(path, n=240, seed=5):
    rng = random.Random(seed)
    with Memory(path) as m:
        for i in range(n):
            m.add(" ".join(rng.choice(WORDS) for _ in range(12)), namespace=NAMESPACES[i % len(NAMESPACES)])


def results(m):
    out = {}
    for ns in NAMESPACES:
        for q in QUERIES:
            out[ns, q] = [(h.id, h.bm25, h.text) for h in m.recall(q, namespace=ns, k=20, mode="lexical")]
    return out


def directory(path):
    """(partition, offset in the file, length) of each block of lexical.idx (after its 8-byte stamp)."""
    data = (path / "lexical.idx").read_bytes()
    image = data[8:]
    assert image[:8] == b"RCBM25\r\n" and struct.unpack_from("<I", image, 8)[0] == 3
    n_parts = struct.unpack_from("<I", image, 24)[0]
    entries = []
    for i in range(n_parts):
        pid, _docs, _lo, _hi, off, length, _sum = struct.unpack_from("<IIQQQQQ", image, 40 + 48 * i)
        entries.append((pid, 8 + off, length))
    return entries


def reference(tmp_path, src):
    """The same store with its lexical image removed: every index is rebuilt from LMDB."""
    ref = tmp_path / "ref"
    ref.mkdir()
    for f in src.iterdir():
        if f.name != "lexical.idx":
            (ref / f.name).write_bytes(f.read_bytes())
    with Memory(ref) as m:
        return results(m)


def test_lazy_partitions_match_a_rebuilt_index(tmp_path):
    path = tmp_path / "s"
    fill(path)
    assert len(directory(path)) == len(NAMESPACES)
    expected = reference(tmp_path, path)
    with Memory(path) as m:
        assert m.stats()["lexical_docs"] == 240  # counted without decoding
        assert results(m) == expected


def test_a_damaged_partition_is_rebuilt_from_lmdb(tmp_path):
    path = tmp_path / "s"
    fill(path)
    expected = reference(tmp_path, path)
    data = bytearray((path / "lexical.idx").read_bytes())
    _pid, off, length = directory(path)[2]
    data[off + length // 2] ^= 0x40
    (path / "lexical.idx").write_bytes(bytes(data))
    with Memory(path) as m:
        assert results(m) == expected
        assert m.stats()["lexical_docs"] == 240
    # The snapshot written on close holds the repaired partition.
    with Memory(path) as m:
        assert results(m) == expected


@pytest.mark.parametrize("where", ["header", "directory"])
def test_a_damaged_directory_rebuilds_the_whole_index(tmp_path, where):
    path = tmp_path / "s"
    fill(path)
    expected = reference(tmp_path, path)
    data = bytearray((path / "lexical.idx").read_bytes())
    data[8 + (20 if where == "header" else 40 + 48 + 3)] ^= 0x01
    (path / "lexical.idx").write_bytes(bytes(data))
    with Memory(path) as m:
        assert results(m) == expected


def test_writes_to_undecoded_partitions_are_kept(tmp_path):
    path = tmp_path / "s"
    fill(path)
    with Memory(path) as m:
        ids = {ns: [r.id for r in m.history(ns)] for ns in NAMESPACES}
        # Nothing has been queried: every partition is still undecoded when these land.
        new = m.add("zebra kiln", namespace="user0")
        m.update(ids["user1"][0], text="zebra porto")
        m.delete(ids["user2"][0])
        m.add("zebra brand new namespace", namespace="fresh")
        after = results(m)
        assert [h.id for h in m.recall("zebra", namespace="user0", k=5, mode="lexical")] == [new]
        assert [h.id for h in m.recall("zebra", namespace="user1", k=5, mode="lexical")] == [ids["user1"][0]]
        assert ids["user2"][0] not in {h.id for h in m.recall("kiln glaze mug", namespace="user2", k=100,
                                                              mode="lexical")}
        assert len(m.recall("zebra", namespace="fresh", k=5, mode="lexical")) == 1
        assert m.stats()["lexical_docs"] == 240 + 2 - 1
    with Memory(path) as m:
        assert results(m) == after
        assert len(m.recall("zebra", namespace="fresh", k=5, mode="lexical")) == 1
    assert reference(tmp_path, path) == after


def test_forget_of_an_undecoded_namespace(tmp_path):
    path = tmp_path / "s"
    fill(path)
    with Memory(path) as m:
        assert m.forget(namespace="user3") == 40
        assert m.recall("kiln", namespace="user3", k=5, mode="lexical") == []
        assert m.verify_forgotten("user3") == 0
        kept = results(m)
    with Memory(path) as m:
        assert results(m) == kept
