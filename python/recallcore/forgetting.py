"""Forgetting on purpose: retention policies, expiry reports, the extractive summarizer, the expiry thread.

The store-side operations are methods of :class:`recallcore.Memory` (``supersede``, ``versions``,
``set_policy``, ``expire``, ``compact``, ``restore``, ``forget``, ``verify_forgotten``, ``vacuum``);
this module holds the pieces they share.

>>> from recallcore.forgetting import extractive_summary
>>> extractive_summary(["I moved to Porto.", "Porto is sunny.", "ok"], max_chars=40)
'I moved to Porto. Porto is sunny.'
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = ["ExpireReport", "ExpiryThread", "RetentionPolicy", "extractive_summary"]

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class RetentionPolicy:
    """A retention policy for a namespace and/or kind (``None`` = any), as stored by ``Memory.set_policy``.

    ``ttl``: records older than ``ts + ttl`` seconds expire. ``max_items`` / ``max_tokens``: caps per
    namespace over the records the policy matches; the lowest retention scores are evicted first.
    ``half_life``: seconds, the age decay of the retention score (default 30 days).

    >>> RetentionPolicy(namespace="bob", max_items=100)
    RetentionPolicy(namespace='bob', kind=None, ttl=None, max_items=100, max_tokens=None, half_life=None)
    """

    namespace: Optional[str] = None
    kind: Optional[str] = None
    ttl: Optional[float] = None
    max_items: Optional[int] = None
    max_tokens: Optional[int] = None
    half_life: Optional[float] = None

    def to_json(self) -> str:
        return json.dumps({"ttl": self.ttl, "max_items": self.max_items, "max_tokens": self.max_tokens,
                           "half_life": self.half_life}, sort_keys=True)

    @classmethod
    def from_stored(cls, key: str, value: str) -> RetentionPolicy:
        ns, _, kind = key.partition("\0")
        d = json.loads(value)
        return cls(namespace=ns or None, kind=kind or None, ttl=d.get("ttl"), max_items=d.get("max_items"),
                   max_tokens=d.get("max_tokens"), half_life=d.get("half_life"))

    def _core(self) -> tuple[str, str, float, int, int, float]:
        return (self.namespace or "", self.kind or "", float(self.ttl or 0.0), int(self.max_items or 0),
                int(self.max_tokens or 0), float(self.half_life or 0.0))


@dataclass
class ExpireReport:
    """What :meth:`Memory.expire` removed: ``expired`` (TTL) and ``evicted`` (caps) counts, and the ids.

    >>> ExpireReport(expired=2, evicted=1, ids=[3, 4, 9]).removed
    3
    """

    expired: int = 0
    evicted: int = 0
    ids: list[int] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return self.expired + self.evicted

    def __int__(self) -> int:
        return self.removed


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def extractive_summary(texts: Sequence[str], *, max_chars: int = 600) -> str:
    """A summary of ``texts`` without a model: the most informative sentences, in their original order.

    Sentences are scored by the mean TF-IDF weight of their words (document = sentence), so rare,
    specific words ("Porto", "allergic") outweigh filler ("ok", "thanks"); the best are kept until
    ``max_chars`` is reached (at least one sentence, cut to ``max_chars``). Sentences of fewer than
    three words are left out unless nothing else is there.

    >>> extractive_summary(["thanks!", "My flight to Lisbon leaves at 9am."], max_chars=50)
    'My flight to Lisbon leaves at 9am.'
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not a string")
    if not isinstance(max_chars, int) or max_chars <= 0:
        raise ValueError(f"max_chars must be a positive int, got {max_chars!r}")
    sents = [s for t in texts for s in _sentences(str(t))]
    if not sents:
        return ""
    docs = [[w.lower() for w in _WORD.findall(s)] for s in sents]
    df: Counter[str] = Counter(w for d in docs for w in set(d))
    n = len(docs)
    scores = []
    for i, d in enumerate(docs):
        if not d:
            scores.append((0.0, i))
            continue
        tf = Counter(d)
        weight = sum(c * math.log(1.0 + n / df[w]) for w, c in tf.items())
        scores.append((weight / math.sqrt(len(d)) * math.log(2.0 + len(d)), i))
    # Very short sentences ("ok", "thanks!") carry no content worth the space when others exist.
    if any(len(d) >= 3 for d in docs):
        scores = [(sc, i) for sc, i in scores if len(docs[i]) >= 3]
    chosen: list[int] = []
    used = 0
    for _, i in sorted(scores, key=lambda x: (-x[0], x[1])):
        extra = len(sents[i]) + (1 if chosen else 0)
        if used + extra > max_chars:
            continue
        chosen.append(i)
        used += extra
    if not chosen:
        return sents[max(scores)[1]][:max_chars]
    return " ".join(sents[i] for i in sorted(chosen))


Summarizer = Callable[[list[str]], str]


class ExpiryThread:
    """Runs ``memory.expire()`` every ``interval`` seconds on a daemon thread until :meth:`stop`.

    Errors are kept in ``last_error`` (the thread keeps going); ``runs`` counts completed passes.
    """

    def __init__(self, memory: Any, interval: float) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0 \
                or not math.isfinite(interval):
            raise ValueError(f"interval_seconds must be a positive finite number, got {interval!r}")
        self._memory = memory
        self.interval = float(interval)
        self._stop = threading.Event()
        self.runs = 0
        self.last_error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="recallcore-expiry", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._memory.expire()
                self.runs += 1
            except Exception as exc:  # noqa: BLE001 - a background pass must not kill the thread
                self.last_error = exc

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
