"""Embedders: the built-in hashing embedder, the callable adapter, the protocol, and the store's
refusal to reopen with a different embedder (name or dim)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import recallcore
from recallcore.embedders import CallableEmbedder, Embedder, HashingEmbedder, get_embedder


def test_hashing_embedder_shape_dtype_and_normalisation() -> None:
    e = HashingEmbedder(dim=64)
    out = e.embed(["hello world", "a much longer sentence about the weather in Lisbon", ""])
    assert out.shape == (3, 64) and out.dtype == np.float32
    norms = np.linalg.norm(out, axis=1)
    assert norms[0] == pytest.approx(1.0, abs=1e-6) and norms[1] == pytest.approx(1.0, abs=1e-6)
    assert norms[2] == 0.0  # no features: the zero vector, not NaN
    assert np.all(np.isfinite(out))
    assert e.embed([]).shape == (0, 64)


def test_hashing_embedder_is_deterministic_across_instances() -> None:
    texts = ["My sister Priya lives in Porto", "the flight leaves at nine"]
    a = HashingEmbedder(dim=128).embed(texts)
    b = HashingEmbedder(dim=128).embed(list(reversed(texts)))[::-1]
    assert np.array_equal(a, b)
    assert HashingEmbedder(128).name == "hashing-v1-128" and HashingEmbedder(128).dim == 128


def test_hashing_embedder_reflects_word_overlap() -> None:
    e = HashingEmbedder(dim=256)
    q, near, far = e.embed(["where does Priya live", "Priya lives in Porto", "the train was late"])
    assert float(q @ near) > float(q @ far)


@pytest.mark.parametrize("dim", [0, 7, -1, 8.0, True, "64"])
def test_hashing_embedder_rejects_bad_dim(dim: object) -> None:
    with pytest.raises(ValueError):
        HashingEmbedder(dim=dim)  # type: ignore[arg-type]


def test_hashing_embedder_rejects_non_text() -> None:
    with pytest.raises(TypeError):
        HashingEmbedder(16).embed([b"bytes"])  # type: ignore[list-item]


def test_callable_embedder_validates() -> None:
    fn = lambda texts: np.ones((len(texts), 4))  # noqa: E731
    e = CallableEmbedder(fn, dim=4, name="ones")
    out = e.embed(["a", "b"])
    assert out.shape == (2, 4) and out.dtype == np.float32
    assert isinstance(e, Embedder)
    with pytest.raises(TypeError):
        CallableEmbedder("not callable", dim=4, name="x")  # type: ignore[arg-type]
    for dim in (0, -3, True, 2.0):
        with pytest.raises(ValueError):
            CallableEmbedder(fn, dim=dim, name="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CallableEmbedder(fn, dim=4, name="")
    with pytest.raises(ValueError, match="shape"):
        CallableEmbedder(fn, dim=5, name="wrong").embed(["a"])


def test_get_embedder_specs() -> None:
    assert get_embedder("hashing").name == "hashing-v1-256"
    assert get_embedder("hashing:32").dim == 32
    e = HashingEmbedder(16)
    assert get_embedder(e) is e
    with pytest.raises(ValueError):
        get_embedder("word2vec")
    with pytest.raises(TypeError):
        get_embedder(42)


def test_store_embeds_with_its_embedder(tmp_path: Path) -> None:
    with recallcore.Memory(tmp_path / "s", embedder=HashingEmbedder(64)) as m:
        assert m.dim == 64 and m.stats()["embedder"] == "hashing-v1-64"
        m.add("Priya moved to Porto in May", namespace="u")
        m.add("the weather was grey", namespace="u")
        hits = m.recall("where did Priya move?", namespace="u", k=2, mode="vector")
        assert hits[0].text == "Priya moved to Porto in May"


def test_store_refuses_a_different_embedder_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with recallcore.Memory(path, embedder=HashingEmbedder(64)) as m:
        m.add("hello")
    other = CallableEmbedder(lambda t: np.ones((len(t), 64)), dim=64, name="other")
    with pytest.raises(ValueError, match="embedder"):
        recallcore.Memory(path, embedder=other)
    with pytest.raises(ValueError, match="dim"):
        recallcore.Memory(path, embedder=HashingEmbedder(128))
    with pytest.raises(ValueError, match="embedder"):
        recallcore.Memory(path, readonly=True, embedder=other)
    with recallcore.Memory(path, embedder=HashingEmbedder(64)) as m:  # the same one is fine
        assert [h.text for h in m.recall("hello")] == ["hello"]
    with recallcore.Memory(path) as m:  # no embedder: vectors or text only; the record stays
        assert m.stats()["embedder"] == "hashing-v1-64"
    with recallcore.Memory(path, readonly=True, embedder=HashingEmbedder(64)) as m:
        assert m.recall("hello")[0].text == "hello"


def test_store_without_embedder_refuses_one_later(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with recallcore.Memory(path, dim=64) as m:
        m.add("hello", vector=np.ones(64, np.float32))
    with pytest.raises(ValueError, match="embedder"):
        recallcore.Memory(path, embedder=HashingEmbedder(64))
