"""Embedders: turn texts into vectors for :class:`recallcore.Memory`.

An embedder is any object with ``name: str``, ``dim: int`` and ``embed(texts: list[str]) -> np.ndarray``
(float32, shape ``(len(texts), dim)``). The store records the embedder's name and dim at creation and
refuses to open with a different one (vectors from two models are not comparable).

- :class:`HashingEmbedder` — the built-in default: no model, no download, no dependency. It hashes
  word unigrams, bigrams and character trigrams into a signed sparse vector (the "hashing trick")
  and L2-normalises it. Honest quality note: it captures lexical overlap (shared words, spelling
  variants through trigrams), not meaning — "car" and "automobile" are unrelated to it. It is a
  useful fallback and a fast test double; for semantic recall use a real model.
- :class:`SentenceTransformerEmbedder` — any sentence-transformers model (optional extra, imported
  lazily), e.g. ``all-MiniLM-L6-v2``.
- :class:`CallableEmbedder` — wrap any function ``list[str] -> array``.

>>> e = HashingEmbedder(dim=64)
>>> e.embed(["hello world"]).shape
(1, 64)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


_WORD = re.compile(r"\w+", re.UNICODE)


def _h(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


class HashingEmbedder:
    """Feature-hashing embedder (lexical, model-free). See the module docstring for its quality."""

    def __init__(self, dim: int = 256) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 8:
            raise ValueError(f"dim must be an int >= 8, got {dim!r}")
        self.dim = dim
        self.name = f"hashing-v1-{dim}"

    def _features(self, text: str) -> list[tuple[str, float]]:
        words = [w.lower() for w in _WORD.findall(text)]
        feats: list[tuple[str, float]] = [("w:" + w, 1.0) for w in words]
        feats += [("b:" + a + " " + b, 0.7) for a, b in zip(words, words[1:])]
        for w in words:
            padded = f"#{w}#"
            feats += [("c:" + padded[i:i + 3], 0.3) for i in range(len(padded) - 2)]
        return feats

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts must be str, got {type(text).__name__}")
            for feat, weight in self._features(text):
                h = _h(feat)
                out[row, h % self.dim] += weight if (h >> 63) & 1 else -weight
            n = float(np.linalg.norm(out[row]))
            if n > 0:
                out[row] /= n
        return out


class SentenceTransformerEmbedder:
    """A sentence-transformers model (``pip install sentence-transformers``), loaded lazily."""

    def __init__(self, model: Any = "all-MiniLM-L6-v2", *, normalize: bool = True, batch_size: int = 64) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise ImportError("SentenceTransformerEmbedder needs 'pip install sentence-transformers'") from exc
        self._model = SentenceTransformer(model) if isinstance(model, str) else model
        self.dim = int(self._model.get_sentence_embedding_dimension())
        model_name = model if isinstance(model, str) else type(model).__name__
        self.name = f"sentence-transformers:{model_name}"
        self._normalize = normalize
        self._batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vecs = self._model.encode(list(texts), batch_size=self._batch_size, normalize_embeddings=self._normalize,
                                  convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)


class CallableEmbedder:
    """Wraps ``fn(list[str]) -> array`` of shape ``(n, dim)`` as an embedder named ``name``."""

    def __init__(self, fn: Callable[[list[str]], Any], dim: int, name: str) -> None:
        if not callable(fn):
            raise TypeError("fn must be callable")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty string (the store records it)")
        self._fn = fn
        self.dim = dim
        self.name = name

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.asarray(self._fn(list(texts)), dtype=np.float32)
        if out.shape != (len(texts), self.dim):
            raise ValueError(f"embedder {self.name!r} returned shape {out.shape}, expected {(len(texts), self.dim)}")
        return out


def get_embedder(spec: Any) -> Embedder:
    """An embedder from an embedder object, ``"hashing"``/``"hashing:<dim>"``, or
    ``"sentence-transformers:<model>"``."""
    if isinstance(spec, str):
        if spec == "hashing":
            return HashingEmbedder()
        if spec.startswith("hashing:"):
            return HashingEmbedder(int(spec.split(":", 1)[1]))
        if spec.startswith("sentence-transformers:"):
            return SentenceTransformerEmbedder(spec.split(":", 1)[1])
        raise ValueError(f"unknown embedder {spec!r} (use 'hashing', 'hashing:<dim>', "
                         "'sentence-transformers:<model>' or an embedder object)")
    if isinstance(spec, Embedder):
        return spec
    raise TypeError("embedder must have name, dim and embed(list[str]); wrap a function with CallableEmbedder")
