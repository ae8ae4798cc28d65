"""Assembling the context for the next model call: :meth:`recallcore.Memory.context`.

The context is assembled in C++ (``cpp/engine/context_assembly.cpp``, one call with the GIL released) from
four sources, each a section of the packer:

1. ``state`` (pinned): the namespace's state mapping, one ``key: <compact JSON>`` item per key;
2. ``pinned`` (pinned): currently valid records of the pinned kinds (default ``preference``);
3. ``recent`` (priority 0): the session's last ``recent_turns`` turns;
4. ``memories`` (priority 1): what :meth:`~recallcore.Memory.recall` finds for the query.

Selection never exceeds the budget: token counts of texts and summaries were computed at write time
by the store's counter; framing (the ``YYYY-MM-DD role:`` prefix, or the caller's ``template``) and
the separator are counted with the same counter (the built-in estimator in C++, any other counter
called back from C++), and the rendered text is counted once more at the end (items are dropped,
least important first, in the rare case a counter is not additive across pieces). Order: the pinned block
first, then memories in ``edges`` order (best first, second best last, the least important in the
middle, where long-context models attend least), then the recent turns in time order, closest to the
question.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from .records import Record
from .tokens import EstimateCounter

if TYPE_CHECKING:
    from .memory import Memory

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


class Context:
    """A packed context: ``text`` (or ``messages()``), its ``tokens``, and a ``manifest``.

    Assembled and packed in C++ by one call; the per-item objects (``items``/``manifest``,
    ``dropped``) are built on first access, so a caller who only sends ``text`` pays for none.

    Example::

        ctx = memory.context("what does Ana like?", budget=1024, namespace="ana")
        prompt = ctx.text                      # or ctx.messages(system="You are ...")
        for item in ctx.manifest:              # what went in, where, and why
            print(item.position, item.section, item.fidelity, item.tokens, item.id)
    """

    __slots__ = ("_raw", "_items", "_dropped", "tokens", "budget", "separator", "format")

    def __init__(self, raw: Any, budget: int, separator: str = SEPARATOR, format: str = "text") -> None:
        self._raw = raw  # _core.ContextResult, or None for an empty context
        self._items: Optional[tuple[ContextItem, ...]] = None
        self._dropped: Optional[tuple[DroppedContextItem, ...]] = None
        self.tokens: int = int(raw.tokens) if raw is not None else 0
        self.budget = budget
        self.separator = separator
        self.format = format  # what render() returns: "text" or "messages"

    @property
    def items(self) -> tuple[ContextItem, ...]:
        if self._items is None:
            rows = self._raw.items() if self._raw is not None else []
            self._items = tuple(
                ContextItem(rid, section, fidelity, tokens, score, pos, text, role or None,
                            Record._from_core(rec) if rec is not None else None)
                for pos, (rid, section, fidelity, tokens, score, text, role, rec) in enumerate(rows))
        return self._items

    @property
    def dropped(self) -> tuple[DroppedContextItem, ...]:
        if self._dropped is None:
            rows = self._raw.dropped() if self._raw is not None else []
            self._dropped = tuple(DroppedContextItem(rid, section, reason, score)
                                  for rid, section, reason, score in rows)
        return self._dropped

    @property
    def manifest(self) -> tuple[ContextItem, ...]:
        return self.items

    @property
    def text(self) -> str:
        return self._raw.text if self._raw is not None else ""

    def render(self, *, system: Optional[str] = None) -> Any:
        """The context in the form asked for with ``Memory.context(format=...)``: ``text`` (a str,
        ``system`` prepended on its own line when given) or ``messages()``."""
        if self.format == "messages":
            return self.messages(system=system)
        return f"{system}\n{self.text}" if system else self.text

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


def build_context(memory: Memory, query: Optional[str], *, budget: int, vector: Any, namespace: str,
                  session: Optional[str], recent_turns: int, pinned: Iterable[str], k: int, order: str,
                  template: Optional[str], as_of: Any, include_history: bool, now: float,
                  recall_kwargs: dict[str, Any], format: str = "text") -> Context:
    pinned = tuple(pinned)
    args = memory._recall_args(query, vector=vector, namespace=namespace, k=k, as_of=as_of,
                               include_history=include_history, now=now, allow_empty=True,
                               **recall_kwargs)
    args.update({
        "context_session": session, "budget": budget, "recent_turns": recent_turns,
        "include_state": "state" in pinned, "pinned_kinds": [p for p in pinned if p != "state"],
        "order": order, "separator": SEPARATOR,
    })
    counter = memory.token_counter
    # The built-in estimator is counted in C++; any other counter is called back (with the GIL).
    count = None if isinstance(counter, EstimateCounter) else counter.count
    render = None
    if template is not None:
        def render(t: tuple[Any, ...], section: str, body: str, date: str) -> str:
            record = Record._from_core(t)
            return template.format(text=body, role=record.role or "", kind=record.kind,
                                   session=record.session or "", date=date, time=record.time,
                                   id=record.id, section=section, namespace=record.namespace)
    raw = memory._store.context(args, count, render)
    return Context(raw if len(raw) else None, budget, format=format)
