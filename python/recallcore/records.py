"""Typed result objects of the memory store."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional

_new = object.__new__
_set = object.__setattr__


@dataclass(frozen=True)
class Record:
    """One stored memory.

    Times are float Unix seconds (UTC); ``valid_to``/``expires_at`` are ``inf`` when open-ended.

    >>> r = Record(id=1, text="I live in Lisbon", namespace="u1")
    >>> r.text
    'I live in Lisbon'
    """

    id: int
    text: str
    namespace: str = "default"
    session: Optional[str] = None
    kind: str = "turn"
    role: Optional[str] = None
    ts: float = 0.0
    importance: float = 0.5
    metadata: dict[str, Any] = field(default_factory=dict)
    entities: tuple[str, ...] = ()
    summary: Optional[str] = None
    tokens: int = 0
    summary_tokens: int = 0
    created: float = 0.0
    updated: float = 0.0
    valid_from: float = -math.inf
    valid_to: float = math.inf
    expires_at: float = math.inf
    archived: bool = False
    repeats: int = 1
    supersedes: Optional[int] = None
    superseded_by: Optional[int] = None
    sources: tuple[int, ...] = ()
    has_vector: bool = False

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        extra = f", session={self.session!r}" if self.session else ""
        return (f"Record(id={self.id}, namespace={self.namespace!r}{extra}, kind={self.kind!r}, ts={self.ts:.0f}, "
                f"text={text!r})")

    @property
    def time(self) -> datetime:
        """``ts`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.ts, tz=timezone.utc)

    def is_valid_at(self, t: float) -> bool:
        """True when this version of a fact was current at Unix time ``t``."""
        return self.valid_from <= t < self.valid_to

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes missing from the instance dict: ``metadata`` of a record built
        # by _from_core, whose JSON is parsed on first access (most recall callers never read it).
        if name == "metadata":
            raw = self.__dict__.get("_metadata_json", "")
            value = json.loads(raw) if raw else {}
            object.__setattr__(self, "metadata", value)
            return value
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def _from_core(cls, t: tuple[Any, ...]) -> Record:
        (rid, text, summary, ns, session, kind, role, ts, importance, metadata, entities, tokens, summary_tokens,
         created, updated, valid_from, valid_to, expires_at, archived, repeats, supersedes, superseded_by, sources,
         has_vector) = t
        # Filled directly rather than through the frozen dataclass __init__ (which sets each of the 24
        # fields through object.__setattr__): recall builds k of these per call. Same values.
        r = _new(cls)
        _set(r, "__dict__", {
            "id": rid, "text": text, "namespace": ns, "session": session or None, "kind": kind,
            "role": role or None, "ts": ts, "importance": importance, "_metadata_json": metadata,
            "entities": tuple(entities), "summary": summary or None, "tokens": tokens,
            "summary_tokens": summary_tokens, "created": created, "updated": updated,
            "valid_from": valid_from, "valid_to": valid_to, "expires_at": expires_at, "archived": archived,
            "repeats": repeats, "supersedes": supersedes or None, "superseded_by": superseded_by or None,
            "sources": tuple(sources), "has_vector": has_vector,
        })
        return r


@dataclass(frozen=True)
class Hit:
    """One recall result: the record (fetched in the same read transaction as the search) and why
    it ranked where it did. Ranks are 1-based; ``None`` means "not in that list".

    ``score`` is the fused score: in hybrid mode the weighted sum of the min-max normalised vector
    similarity and BM25 (``fusion="relative"``, default) or of reciprocal ranks (``fusion="rrf"``),
    in vector mode the similarity, in lexical mode BM25 — each multiplied by the recency factor and
    the importance factor ``1 + w·(importance − 0.5)``. ``text`` is the record's text.
    """

    id: int
    score: float
    record: Record
    vector_rank: Optional[int] = None
    vector_similarity: Optional[float] = None
    lexical_rank: Optional[int] = None
    bm25: Optional[float] = None
    recency: float = 1.0
    importance: float = 0.5

    if TYPE_CHECKING:
        @property
        def text(self) -> str:
            """The record's text (``record.text``)."""

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes missing from the instance dict. A hit built by _from_core
        # holds ``text`` in its dict (a plain attribute read: most callers read only the text) and
        # makes ``record`` on first access from the search's results (the record was read in the
        # search's transaction; building its 24 fields for every hit costs a tenth of the search).
        # A hit made by the constructor reads ``text`` from its record.
        if name == "record":
            d = self.__dict__
            value = Record._from_core(d["_results"].record(d["_index"]))
            object.__setattr__(self, "record", value)
            return value
        if name == "text":
            return self.record.text
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        parts = [f"id={self.id}", f"score={self.score:.4g}"]
        if self.vector_rank:
            parts.append(f"vector_rank={self.vector_rank} sim={self.vector_similarity:.3f}")
        if self.lexical_rank:
            parts.append(f"lexical_rank={self.lexical_rank} bm25={self.bm25:.3f}")
        text = self.record.text if len(self.record.text) <= 60 else self.record.text[:57] + "..."
        return f"Hit({', '.join(parts)}, text={text!r})"

    def __getstate__(self) -> dict[str, Any]:
        # A hit from the core refers to the search's results (a C++ object): pickled and copied with
        # its Record instead.
        d = dict(self.__dict__)
        if "_results" in d:
            d["record"] = self.record
            del d["_results"], d["_index"]
        return d

    @classmethod
    def _from_core(cls, hit: tuple[Any, ...], results: Any, index: int) -> Hit:
        rid, score, vrank, vsim, lrank, bm25, recency, importance, text = hit
        h = _new(cls)  # see Record._from_core
        _set(h, "__dict__", {
            "id": rid, "score": score, "_results": results, "_index": index, "text": text,
            "vector_rank": vrank or None, "vector_similarity": None if not vrank else vsim,
            "lexical_rank": lrank or None, "bm25": None if not lrank else bm25, "recency": recency,
            "importance": importance,
        })
        return h
