"""Assembling the context for the next model call: :meth:`recallcore.Memory.context`.

The context is built from four sources, each a section of the packer (``recallcore._core.pack_sections``):

1. ``state`` (pinned): the namespace's state mapping, one item per key;
2. ``pinned`` (pinned): currently valid records of the pinned kinds (default ``preference``);
3. ``recent`` (priority 0): the session's last ``recent_turns`` turns;
4. ``memories`` (priority 1): what :meth:`~recallcore.Memory.recall` finds for the query.

Selection never exceeds the budget: token counts of texts and summaries were computed at write time
by the store's counter; framing (the ``[date] role:`` prefix) and the separator are counted with the
same counter, and the rendered text is counted once more at the end (items are dropped, least
important first, in the rare case a counter is not additive across pieces). Order: the pinned block
first, then memories in ``edges`` order (best first, second best last, the least important in the
middle, where long-context models attend least), then the recent turns in time order, closest to the
question.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from . import _core
from .records import Hit, Record

if TYPE_CHECKING:
    from .memory import Memory

_REASONS = tuple(_core.PACK_DROP_REASONS)
SEPARATOR = "\n"


@dataclass(frozen=True)
class ContextItem:
    """One entry of the manifest: what went in, where, and why."""

    id: Any  # record id, or "state:<key>" for state entries
    section: str
    fidelity: str  # "full" or "summary"
    tokens: int  # tokens of the rendered item (framing included)
    score: float
    position: int  # 0 = first in the context
    text: str  # the rendered item
    role: Optional[str] = None
    record: Optional[Record] = field(default=None, repr=False)


@dataclass(frozen=True)
class DroppedContextItem:
    id: Any
    section: str
    reason: str  # budget | quota | duplicate | pinned_over_budget
    score: float


@dataclass(frozen=True)
class Context:
    """A packed context: ``text`` (or ``messages()``), its ``tokens``, and a ``manifest``."""

    items: tuple[ContextItem, ...]
    dropped: tuple[DroppedContextItem, ...]
    tokens: int
    budget: int
    separator: str = SEPARATOR

    @property
    def manifest(self) -> tuple[ContextItem, ...]:
        return self.items

    @property
    def text(self) -> str:
        return self.separator.join(i.text for i in self.items)

    def messages(self, *, system: Optional[str] = None) -> list[dict[str, str]]:
        """Chat messages in the usual ``{"role", "content"}`` form: one system message holding the
        pinned items and the memories (in context order), then the recent turns as their own
        user/assistant messages.
        """
        head = [i.text for i in self.items if i.section != "recent"]
        out: list[dict[str, str]] = []
        content = "\n".join(([system] if system else []) + (["Relevant memories:"] if head else []) + head)
        if content:
            out.append({"role": "system", "content": content})
        for i in self.items:
            if i.section == "recent":
                role = i.role if i.role in ("user", "assistant", "system", "tool") else "user"
                body = i.record.text if i.record is not None else i.text
                out.append({"role": role, "content": body})
        return out

    def __repr__(self) -> str:
        sections: dict[str, int] = {}
        for i in self.items:
            sections[i.section] = sections.get(i.section, 0) + 1
        return f"Context(tokens={self.tokens}/{self.budget}, items={sections}, dropped={len(self.dropped)})"


def memory_value(rank: int) -> float:
    """What a recalled memory at 1-based ``rank`` is worth to the packer: halves every 5 ranks."""
    return 2.0 ** (-(rank - 1) / 5.0)


@functools.lru_cache(maxsize=4096)
def _day(day: int) -> str:
    return datetime.fromtimestamp(day * 86400, tz=timezone.utc).strftime("%Y-%m-%d")


def _date(ts: float) -> str:
    return _day(int(ts // 86400))  # UTC days: one strftime per day, not per item


def _prefix(record: Record, section: str, template: Optional[str]) -> str:
    if template is not None:
        return ""
    if section == "recent" or record.kind == "turn":
        # No role is invented for a turn stored without one (its text often names the speaker).
        return f"{_date(record.ts)} {record.role}: " if record.role else f"{_date(record.ts)} "
    return f"{_date(record.ts)} ({record.kind}) "


def _render(record: Record, section: str, body: str, template: Optional[str]) -> str:
    if template is None:
        return _prefix(record, section, None) + body
    return template.format(text=body, role=record.role or "", kind=record.kind, session=record.session or "",
                           date=_date(record.ts), time=record.time, id=record.id, section=section,
                           namespace=record.namespace)


def build_context(memory: Memory, query: Optional[str], *, budget: int, vector: Any, namespace: str,
                  session: Optional[str], recent_turns: int, pinned: Iterable[str], k: int, order: str,
                  template: Optional[str], as_of: Any, include_history: bool, now: float,
                  recall_kwargs: dict[str, Any]) -> Context:
    count = memory.token_counter.count
    sep_tokens = count(SEPARATOR)
    pinned = tuple(pinned)
    sections: list[dict[str, Any]] = []
    names: list[str] = []
    rows: list[list[tuple[Any, str, str, Optional[str], Optional[Record], float]]] = []

    def add_section(name: str, entries: list[tuple[Any, Optional[Record], str, int, str, int, float, float]],
                    *, pinned_: bool, priority: int) -> None:
        # entries: (id, record, full_text, full_tokens, summary_text, summary_tokens, score, time)
        if not entries:
            return
        names.append(name)
        sec_rows = []
        ids = np.arange(len(entries), dtype=np.uint64) + np.uint64(len(sections) << 32)
        sections.append({
            "name": name, "pinned": pinned_, "priority": priority, "ids": ids,
            "scores": np.array([max(0.0, e[6]) for e in entries], dtype=np.float32),
            "tokens": np.array([e[3] for e in entries], dtype=np.uint32),
            "summary_tokens": np.array([e[5] for e in entries], dtype=np.uint32),
            "time": np.array([e[7] for e in entries], dtype=np.float64),
        })
        for e in entries:
            sec_rows.append((e[0], e[2], e[4], e[1].role if e[1] is not None else None, e[1], e[6]))
        rows.append(sec_rows)

    prefix_cache: dict[str, int] = {}

    def prefix_count(prefix: str) -> int:
        n = prefix_cache.get(prefix)
        if n is None:
            n = prefix_cache[prefix] = count(prefix)
        return n

    def record_entry(r: Record, section: str, score: float) -> tuple[Any, ...]:
        if template is None:  # the prefix is rendered and counted once (counts cached per prefix)
            prefix = _prefix(r, section, None)
            full, prefix_tokens = prefix + r.text, prefix_count(prefix)
            summary = (prefix + r.summary) if r.summary else ""
        else:
            full = _render(r, section, r.text, template)
            summary = _render(r, section, r.summary, template) if r.summary else ""
            prefix_tokens = count(full) - r.tokens
        return (r.id, r, full, r.tokens + max(0, prefix_tokens), summary,
                (r.summary_tokens + max(0, prefix_tokens)) if r.summary else 0, score, r.ts)

    taken: set[int] = set()
    # 1. state (pinned)
    if "state" in pinned:
        entries = []
        for key, value in memory.state(namespace).items():
            text = f"{key}: {json.dumps(value, ensure_ascii=False)}"
            entries.append((f"state:{key}", None, text, count(text), "", 0, 1.0, 0.0))
        add_section("state", entries, pinned_=True, priority=-2)
    # 2. pinned kinds
    pinned_kinds = [p for p in pinned if p != "state"]
    if pinned_kinds:
        t_valid = now if as_of is None else as_of
        rows_ = memory._store.select_kinds(namespace, list(pinned_kinds), t_valid, now, include_history, 1000)
        entries = []
        for t in rows_:
            r = Record._from_core(t)
            entries.append(record_entry(r, "pinned", r.importance))
            taken.add(r.id)
        add_section("pinned", entries, pinned_=True, priority=-1)
    # 3. recent turns of the session
    if recent_turns > 0:
        recent = [r for r in memory.history(namespace, session, last=recent_turns * 4)
                  if r.kind == "turn" and not r.archived and r.id not in taken][-recent_turns:]
        entries = [record_entry(r, "recent", 1.0 + i / max(1, len(recent))) for i, r in enumerate(recent)]
        taken.update(r.id for r in recent)
        add_section("recent", entries, pinned_=False, priority=0)
    # 4. recalled memories
    hits: list[Hit] = []
    if query or vector is not None:
        hits = memory.recall(query, vector=vector, namespace=namespace, k=k, as_of=as_of,
                             include_history=include_history, now=now, **recall_kwargs)
    # The packer maximises total value per token, so the value must fall with rank as fast as the
    # chance that a memory helps does: fused scores (reciprocal ranks) are nearly flat and would let
    # many short, low-ranked items crowd out a longer, better one. Halving every 5 ranks matched a
    # steeper rank-order packing on held-out conversations while still trading near-ties for space.
    entries = [record_entry(h.record, "memories", memory_value(rank))
               for rank, h in enumerate(hits, 1) if h.id not in taken]
    add_section("memories", entries, pinned_=False, priority=1)

    if not sections:
        return Context((), (), 0, budget)
    packed = _core.pack_sections(sections, budget, order="score", separator_tokens=sep_tokens,
                                 pinned_overflow="error")
    chosen: dict[int, list[tuple[int, int, float, int]]] = {}
    for sec, idx, fid, score, toks in zip(packed["sections"].tolist(), packed["indices"].tolist(),
                                          packed["fidelity"].tolist(), packed["scores"].tolist(),
                                          packed["tokens"].tolist()):
        chosen.setdefault(sec, []).append((idx, fid, score, toks))
    dropped = tuple(
        DroppedContextItem(rows[sec][idx][0], names[sec], _REASONS[reason], float(score))
        for sec, idx, reason, score in zip(packed["dropped_sections"].tolist(), packed["dropped_indices"].tolist(),
                                           packed["dropped_reasons"].tolist(), packed["dropped_scores"].tolist())
    )

    def ordered(name: str) -> list[tuple[int, int, float, int, int]]:
        if name not in names:
            return []
        sec = names.index(name)
        picks = [(*c, sec) for c in chosen.get(sec, [])]
        if name in ("state", "pinned"):
            return sorted(picks, key=lambda c: c[0])
        if name == "recent" or order == "chronological":
            return sorted(picks, key=lambda c: (float(sections[sec]["time"][c[0]]), c[0]))
        by_score = sorted(picks, key=lambda c: (-c[2], c[0]))
        if order == "score":
            return by_score
        front, back = by_score[0::2], by_score[1::2]  # edges: 1st first, 2nd last, 3rd second, ...
        return front + back[::-1]

    layout = ordered("state") + ordered("pinned") + ordered("memories") + ordered("recent")
    items: list[ContextItem] = []
    for pos, (idx, fid, score, toks, sec) in enumerate(layout):
        rid, full, summary, role, record, _ = rows[sec][idx]
        text = full if fid == 0 else summary
        items.append(ContextItem(rid, names[sec], "full" if fid == 0 else "summary", int(toks), float(score), pos,
                                 text, role, record))
    total = int(packed["total_tokens"])
    ctx = Context(tuple(items), dropped, total, budget)
    # The guarantee is on the rendered text as the store's counter counts it; drop the least important
    # non-pinned item until it holds. Stored counts of texts plus counted prefixes are not exactly
    # additive for BPE-like counters (a prefix can merge with the text's first word), so this final
    # count of the whole text is what makes "never over budget" true (tests/test_context.py).
    extra: list[DroppedContextItem] = []
    while items and count(ctx.text) > budget:
        victims = [i for i in items if i.section not in ("state", "pinned")]
        if not victims:
            raise ValueError(f"pinned items need {count(ctx.text)} tokens, budget is {budget}")
        victim = min(victims, key=lambda i: (i.section == "recent", i.score))
        extra.append(DroppedContextItem(victim.id, victim.section, "budget", victim.score))
        items = [i for i in items if i is not victim]
        items = [ContextItem(i.id, i.section, i.fidelity, i.tokens, i.score, p, i.text, i.role, i.record)
                 for p, i in enumerate(items)]
        ctx = Context(tuple(items), dropped + tuple(extra), sum(i.tokens for i in items) +
                      sep_tokens * max(0, len(items) - 1), budget)
    return ctx
