"""HNSWIndex snapshots: identical results after a round trip, mmap, and rejection of damaged files."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import recallcore
from hnsw_files import as_version
from hnsw_oracle import clustered
from recallcore import HNSWIndex

DIM = 16


def make(storage: str = "f32", n: int = 800) -> tuple[HNSWIndex, np.ndarray]:
    x = clustered(n + 20, DIM, seed=2)
    idx = HNSWIndex(DIM, metric="cosine", storage=storage, ef_construction=64)
    idx.add(x[:n], np.arange(n, dtype=np.uint64) + 1000)
    idx.remove(np.arange(1000, 1050, dtype=np.uint64))
    return idx, x[n:]


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("storage", ["f32", "f16", "i8"])
def test_round_trip_gives_identical_results(tmp_path, storage, mmap):
    idx, q = make(storage)
    path = tmp_path / "index.rchnsw"
    idx.save(str(path))
    loaded = HNSWIndex.load(str(path), mmap=mmap)
    assert len(loaded) == len(idx) and loaded.storage == storage and loaded.metric == "cosine"
    assert loaded.stats()["mapped"] == mmap
    a = idx.search(q, k=10)
    b = loaded.search(q, k=10)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert 1000 not in loaded and 1100 in loaded


def test_a_loaded_index_accepts_adds_and_removes_without_touching_the_file(tmp_path):
    idx, q = make()
    path = tmp_path / "index.rchnsw"
    idx.save(str(path))
    before = path.read_bytes()
    loaded = HNSWIndex.load(str(path), mmap=True)
    loaded.add(q[:5], np.arange(5, dtype=np.uint64))
    loaded.remove(np.array([1100], dtype=np.uint64))
    assert loaded.search(q[0], k=1)[0][0] == 0
    assert path.read_bytes() == before
    assert len(HNSWIndex.load(str(path))) == len(idx)


def test_stamp_is_stored_in_the_header(tmp_path):
    idx, _ = make(n=50)
    path = tmp_path / "s.rchnsw"
    idx.save(str(path), stamp=123456789)
    assert HNSWIndex.load(str(path)).stamp == 123456789
    assert HNSWIndex.load(str(path), mmap=True).stats()["stamp"] == 123456789


def test_empty_index_round_trips(tmp_path):
    path = tmp_path / "e.rchnsw"
    HNSWIndex(DIM).save(str(path))
    for mmap in (False, True):
        loaded = HNSWIndex.load(str(path), mmap=mmap)
        assert len(loaded) == 0
        loaded.add(np.ones((1, DIM), dtype=np.float32), np.array([4], dtype=np.uint64))
        assert loaded.search(np.ones(DIM, dtype=np.float32), k=1)[0][0] == 4


@pytest.mark.parametrize("cut", [0, 10, 100, 143, 1000, -1])
def test_truncated_file_is_rejected(tmp_path, cut):
    idx, _ = make()
    path = tmp_path / "t.rchnsw"
    idx.save(str(path))
    data = path.read_bytes()
    path.write_bytes(data[: cut if cut >= 0 else len(data) - 1])
    for mmap in (False, True):
        with pytest.raises(recallcore.CorruptionError):
            HNSWIndex.load(str(path), mmap=mmap)


def test_bad_magic_and_version_are_rejected(tmp_path):
    idx, _ = make(n=50)
    path = tmp_path / "m.rchnsw"
    idx.save(str(path))
    data = bytearray(path.read_bytes())
    bad = bytearray(data)
    bad[0] ^= 0xFF
    path.write_bytes(bytes(bad))
    with pytest.raises(recallcore.CorruptionError, match="magic"):
        HNSWIndex.load(str(path))
    bad = bytearray(data)
    bad[8] = 99  # format version
    path.write_bytes(bytes(bad))
    with pytest.raises(recallcore.CorruptionError, match="version"):
        HNSWIndex.load(str(path))


def test_corruption_anywhere_is_detected_without_mmap(tmp_path):
    idx, _ = make("i8")
    path = tmp_path / "c.rchnsw"
    idx.save(str(path))
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    positions = list(range(0, 144, 7)) + rng.integers(144, len(data), 60).tolist()
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        path.write_bytes(bytes(bad))
        try:
            HNSWIndex.load(str(path))
        except recallcore.CorruptionError:
            continue
        # A flip in alignment padding between sections changes nothing that is read.
        assert data[pos] == 0 and pos > 144, f"corruption at byte {pos} was not detected"


def test_mmap_load_survives_a_corrupted_link_block(tmp_path):
    # mmap=True does not checksum the level-0 block (it is not read up front): every link is
    # bounds-checked where it is followed, so garbage links give bad results, never a crash.
    idx, q = make()
    path = tmp_path / "g.rchnsw"
    idx.save(str(path))
    bad = bytearray(path.read_bytes())
    bad[192 : 192 + 4000] = b"\xff" * 4000
    path.write_bytes(bytes(bad))
    loaded = HNSWIndex.load(str(path), mmap=True)
    ids, dist = loaded.search(q, k=10)
    assert ids.shape == (len(q), 10)
    with pytest.raises(recallcore.CorruptionError):
        HNSWIndex.load(str(path))


def test_a_missing_file_raises_store_error(tmp_path):
    with pytest.raises(recallcore.StoreError):
        HNSWIndex.load(str(tmp_path / "nope"))


# ------------------------------------------------------------------ the saved id map (format 3)
def idmap_section(raw: bytes) -> tuple[int, int]:
    shift = struct.unpack_from("<I", raw, 44)[0]
    size = (1 << shift) * 16 if shift else 0
    return len(raw) - size, size


@pytest.mark.parametrize("mmap", [False, True])
def test_a_damaged_id_map_is_detected_mapped_or_not(tmp_path, mmap):
    # The id map is served from the mapping, so unlike the level-0 block it is verified on every load.
    idx, _ = make()
    path = tmp_path / "m.rchnsw"
    idx.save(str(path))
    data = path.read_bytes()
    at, size = idmap_section(data)
    assert size >= 16 * len(idx) and at % 64 == 0
    rng = np.random.default_rng(1)
    for pos in [at, at + 8, at + size - 1] + rng.integers(at, at + size, 20).tolist():
        bad = bytearray(data)
        bad[pos] ^= 0x21
        path.write_bytes(bytes(bad))
        with pytest.raises(recallcore.CorruptionError):
            HNSWIndex.load(str(path), mmap=mmap)


@pytest.mark.parametrize("mmap", [False, True])
def test_version_2_files_without_an_id_map_still_load(tmp_path, mmap):
    idx, q = make()
    path = tmp_path / "v2.rchnsw"
    idx.save(str(path))
    v2 = as_version(path.read_bytes(), 2)
    assert len(v2) < path.stat().st_size
    path.write_bytes(v2)
    old = HNSWIndex.load(str(path), mmap=mmap)
    assert len(old) == len(idx) and 1100 in old and 1000 not in old
    np.testing.assert_array_equal(old.search(q, k=10)[0], idx.search(q, k=10)[0])
    old.remove(np.array([1100], dtype=np.uint64))
    old.add(q[:3], np.array([1, 2, 3], dtype=np.uint64))
    assert 1100 not in old and old.search(q[1], k=1)[0][0] == 2


def test_a_mapped_id_map_takes_adds_removes_and_growth_without_touching_the_file(tmp_path):
    idx, q = make(n=200)
    path = tmp_path / "g.rchnsw"
    idx.save(str(path))
    before = path.read_bytes()
    loaded = HNSWIndex.load(str(path), mmap=True)
    x = clustered(3000, DIM, seed=7)
    loaded.add(x, np.arange(5000, 8000, dtype=np.uint64))  # grows the table past its saved size
    loaded.remove(np.arange(1050, 1150, dtype=np.uint64))
    assert path.read_bytes() == before
    assert len(loaded) == len(idx) + 3000 - 100 and 7999 in loaded and 1100 not in loaded and 1150 in loaded
    assert loaded.search(x[17], k=1)[0][0] == 5017


def test_filtered_exact_scan_survives_nan_codes_in_a_mapped_file(tmp_path):
    # A mapped load does not verify the level-0 block's checksum: damaged codes may decode to NaN. The
    # exact scan must then keep those rows for its precise pass (the f32 originals are intact) rather
    # than let a NaN bound cut every row.
    rng = np.random.default_rng(3)
    n, dim = 500, 32
    x = rng.standard_normal((n, dim)).astype(np.float32)
    index = recallcore.HNSWIndex(dim, metric="l2", storage="i8")
    ids = index.add(x)
    path = tmp_path / "nan.idx"
    index.save(str(path))
    raw = bytearray(path.read_bytes())
    stride = struct.unpack_from("<I", raw, 36)[0]
    block = 192  # the 144-byte header, 64-aligned
    links = 4 * (1 + 2 * 16)  # a slot starts with its count and M0 = 2M level-0 links
    for s in range(n):
        for off in range(links, stride - 3, 4):  # every float of the traversal copy becomes a NaN
            at = block + s * stride + off
            raw[at:at + 4] = struct.pack("<I", 0x7FC00000)
    path.write_bytes(bytes(raw))
    loaded = recallcore.HNSWIndex.load(str(path), mmap=True)
    allowed = ids[:50]
    q = rng.standard_normal(dim).astype(np.float32)
    got, _ = loaded.search(q, k=10, filter=allowed)
    want = allowed[np.argsort(((x[:50] - q) ** 2).sum(axis=1), kind="stable")[:10]]
    assert list(got) == list(want)
