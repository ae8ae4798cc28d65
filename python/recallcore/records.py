"""Typed result objects of the memory store."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional


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

    @property
    def time(self) -> datetime:
        """``ts`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.ts, tz=timezone.utc)

    def is_valid_at(self, t: float) -> bool:
        """True when this version of a fact was current at Unix time ``t``."""
        return self.valid_from <= t < self.valid_to

    @classmethod
    def _from_core(cls, t: tuple[Any, ...]) -> Record:
        (rid, text, summary, ns, session, kind, role, ts, importance, metadata, entities, tokens, summary_tokens,
         created, updated, valid_from, valid_to, expires_at, archived, repeats, supersedes, superseded_by, sources,
         has_vector) = t
        return cls(
            id=rid, text=text, namespace=ns, session=session or None, kind=kind, role=role or None, ts=ts,
            importance=importance, metadata=json.loads(metadata) if metadata else {}, entities=tuple(entities),
            summary=summary or None, tokens=tokens, summary_tokens=summary_tokens, created=created, updated=updated,
            valid_from=valid_from, valid_to=valid_to, expires_at=expires_at, archived=archived, repeats=repeats,
            supersedes=supersedes or None, superseded_by=superseded_by or None, sources=tuple(sources),
            has_vector=has_vector,
        )
