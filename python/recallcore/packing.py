"""Token-budgeted context packing for any list of texts, dicts or record-like objects.

``pack`` chooses which items go into a prompt, at full text or summary, and in which order, so that the
rendered context never exceeds a token budget. It works on its own (RAG chunks, notes, turns from your
own store); the C++ core behind it (``recallcore._core.pack_sections``) is what ``Memory`` uses.

>>> from recallcore import pack
>>> ctx = pack(["the cat sat", "on the mat", "and purred"], budget=6, separator=" ")
>>> ctx.text
'the cat sat on the mat'
>>> [(i.id, i.fidelity, i.tokens) for i in ctx.items], ctx.tokens, ctx.dropped[0].reason
([(0, 'full', 3), (1, 'full', 2)], 6, 'budget')

Token accounting. Every item is rendered (framing applied) at full text and, when it has one, at its
summary; the counter counts each rendered string and the separator once. The packer then guarantees

    sum(count(rendered item) for chosen items) + count(separator) * (len(items) - 1) <= budget - margin

which bounds ``count(ctx.text)`` by the budget whenever the counter is additive over these pieces
(``count(a + sep + b) == count(a) + count(sep) + count(b)``), as word or byte estimates are. A BPE
tokenizer can merge tokens across a boundary, usually downwards but not always; reserve ``margin=``
tokens (a few per item is plenty) when you count with one and must never overflow.
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
import string
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional, Protocol, Union

import numpy as np

from . import _core

__all__ = ["DroppedItem", "PackedContext", "PackedItem", "pack"]

Order = Literal["edges", "chronological", "score"]
Mode = Literal["auto", "greedy", "exact"]
PinnedOverflow = Literal["error", "truncate"]
Reason = Literal["budget", "quota", "duplicate", "pinned_over_budget"]

_ORDERS = ("edges", "chronological", "score")
_MODES = ("auto", "greedy", "exact")
_OVERFLOW = ("error", "truncate")
_ITEM_KEYS = ("text", "score", "id", "summary", "time", "section", "pinned", "vector")
_SECTION_KEYS = ("priority", "quota", "pinned")
_DEFAULT_SECTION = "default"


class SupportsCount(Protocol):
    """Any token counter object with a ``count(text) -> int`` method."""

    def count(self, text: str) -> int: ...


TokenCounter = Union[Callable[[str], int], SupportsCount]
Framing = Union[str, Callable[[Mapping[str, Any]], str]]


def _default_count(text: str) -> int:
    """Placeholder token estimate: about four UTF-8 bytes per token, at least one for non-empty text.

    TODO(recallcore.tokens): replace with the built-in estimator from ``recallcore.tokens`` once it lands
    (the lead switches this default); keep it additive-friendly (a sum over pieces).
    """
    if not text:
        return 0
    return max(1, round(len(text.encode("utf-8")) / 4))


@dataclass(frozen=True)
class PackedItem:
    """One item of the packed context, in output order (``position`` 0 comes first)."""

    id: Hashable
    section: str
    fidelity: Literal["full", "summary"]
    tokens: int  # of the rendered item (framing included, separators not)
    score: float
    position: int
    pinned: bool
    text: str = field(repr=False)  # the rendered item as it appears in PackedContext.text


@dataclass(frozen=True)
class DroppedItem:
    """An item left out, and why: ``budget``, ``quota``, ``duplicate`` or ``pinned_over_budget``."""

    id: Hashable
    section: str
    reason: Reason
    score: float


@dataclass(frozen=True)
class PackedContext:
    """The result of :func:`pack`: the rendered text and a manifest of what went in and what did not."""

    text: str
    items: tuple[PackedItem, ...]
    dropped: tuple[DroppedItem, ...]
    tokens: int  # counted on the pieces: rendered items + separators
    budget: int
    exact: bool  # whether a section was solved by the exact knapsack programme

    @property
    def manifest(self) -> tuple[PackedItem, ...]:
        """Alias of ``items``: id, section, fidelity, tokens, score and position of each chosen item."""
        return self.items

    def __repr__(self) -> str:
        summaries = sum(1 for i in self.items if i.fidelity == "summary")
        pinned = sum(1 for i in self.items if i.pinned)
        reasons: dict[str, int] = {}
        for d in self.dropped:
            reasons[d.reason] = reasons.get(d.reason, 0) + 1
        dropped = ", ".join(f"{k}={v}" for k, v in sorted(reasons.items()))
        return (
            f"PackedContext(tokens={self.tokens}/{self.budget}, items={len(self.items)} "
            f"(summaries={summaries}, pinned={pinned}), dropped={len(self.dropped)}"
            + (f" ({dropped})" if dropped else "")
            + ")"
        )


def _resolve_counter(token_counter: Optional[TokenCounter]) -> Callable[[str], int]:
    if token_counter is None:
        return _default_count
    if isinstance(token_counter, (str, bytes)):
        raise TypeError("token_counter must be a callable str -> int or an object with .count(str)")
    if callable(token_counter):
        return token_counter
    count = getattr(token_counter, "count", None)
    if callable(count):
        return count
    raise TypeError(
        "token_counter must be a callable str -> int or an object with .count(str), got "
        f"{type(token_counter).__name__}"
    )


def _checked_count(count: Callable[[str], int], text: str) -> int:
    n = count(text)
    if type(n) is int and n >= 0:
        return n
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"token_counter must return an int, got {type(n).__name__} for {text[:40]!r}")
    if n < 0:
        raise ValueError(f"token_counter returned {n} (< 0) for {text[:40]!r}")
    return int(n)


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    t = type(x)
    return t is float or t is int or (isinstance(x, numbers.Real) and t is not bool)


def _getter(item: Any) -> Callable[[str], Any]:
    """How to read a field of one item (decided once per item: the ABC check is the slow part)."""
    if type(item) is dict or isinstance(item, Mapping):
        return item.get
    if isinstance(item, str):
        return lambda key: item if key == "text" else None
    return lambda key: getattr(item, key, None)


def _template_uses_text(template: str) -> bool:
    try:
        return any(name is not None and name.split(".")[0].split("[")[0] == "text"
                   for _, name, _, _ in string.Formatter().parse(template))
    except ValueError as e:
        raise ValueError(
            f"framing is not a valid format string ({e}); write literal braces as {{{{ }}}}"
        ) from e


def _validate_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


@dataclass
class _Rows:
    """The items read once into parallel lists (index = position in the input)."""

    items: Sequence[Any]
    texts: list[str] = field(default_factory=list)
    ids: list[Hashable] = field(default_factory=list)
    scores: list[Optional[float]] = field(default_factory=list)
    times: list[Optional[float]] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    pinned: list[bool] = field(default_factory=list)
    vectors: list[Any] = field(default_factory=list)
    summaries: list[Optional[str]] = field(default_factory=list)


def _read_rows(items: Sequence[Any], want_vectors: bool) -> _Rows:
    rows = _Rows(items)
    for i, item in enumerate(items):
        get = _getter(item)
        text = get("text")
        if not isinstance(text, str):
            raise TypeError(f"item {i} needs a str 'text' (a str, a dict with 'text', an object with .text)")
        rows.texts.append(text)
        ident = get("id")
        rows.ids.append(i if ident is None else ident)
        s = get("score")
        if s is not None:
            if not _is_real(s) or not math.isfinite(s) or s < 0:
                raise ValueError(f"item {i}: score must be a finite number >= 0, got {s!r}")
            s = float(s)
        rows.scores.append(s)
        t = get("time")
        if t is not None:
            if not _is_real(t) or not math.isfinite(t):
                raise ValueError(f"item {i}: time must be finite Unix seconds, got {t!r}")
            t = float(t)
        rows.times.append(t)
        sec = get("section")
        rows.sections.append(_DEFAULT_SECTION if sec is None else str(sec))
        rows.pinned.append(bool(get("pinned")))
        rows.vectors.append(get("vector") if want_vectors else None)
        rows.summaries.append(get("summary"))
    return rows


def _index_ids(ids: list[Hashable]) -> tuple[dict[Hashable, int], list[int]]:
    """Position of every id, and the input positions sorted by id (by position when ids do not compare)."""
    index_of: dict[Hashable, int] = {}
    for i, ident in enumerate(ids):
        if ident in index_of:
            raise ValueError(f"item ids must be unique: {ident!r} is used by items {index_of[ident]} and {i}")
        index_of[ident] = i
    try:
        by_id = sorted(range(len(ids)), key=lambda i: ids[i])
    except TypeError:
        by_id = list(range(len(ids)))
    return index_of, by_id


def _read_sections(sections: Optional[Mapping[str, Mapping[str, Any]]]) -> dict[str, Mapping[str, Any]]:
    spec: dict[str, Mapping[str, Any]] = dict(sections or {})
    for name, opts in spec.items():
        unknown = set(opts) - set(_SECTION_KEYS)
        if unknown:
            raise ValueError(f"sections[{name!r}] has unknown keys {sorted(unknown)}; known: {_SECTION_KEYS}")
        quota = opts.get("quota")
        if quota is not None and (not _is_int(quota) or quota < 0):
            raise ValueError(f"sections[{name!r}]['quota'] must be an int >= 0 tokens, got {quota!r}")
        priority = opts.get("priority", 0)
        if not _is_int(priority):
            raise ValueError(f"sections[{name!r}]['priority'] must be an int, got {priority!r}")
    return spec


def _renderer(framing: Framing, rows: _Rows, scores: list[float]) -> Callable[[int, str, str], str]:
    """render(i, body, fidelity): item i with `body` (its text or summary) wrapped by the framing."""
    uses_text = isinstance(framing, str) and _template_uses_text(framing)

    def render(i: int, body: str, fidelity: str) -> str:
        if isinstance(framing, str) and not framing:
            return body
        item, t = rows.items[i], rows.times[i]
        fields: dict[str, Any] = dict(item) if isinstance(item, Mapping) else {}
        fields.update(
            text=body, id=rows.ids[i], section=rows.sections[i], score=scores[i], time=t, fidelity=fidelity,
            item=item,
            date="" if t is None else _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%d"),
        )
        if callable(framing):
            out = framing(fields)
            if not isinstance(out, str):
                raise TypeError(f"framing must return a str, got {type(out).__name__}")
            return out
        try:
            head = framing.format_map(fields)
        except (KeyError, AttributeError, IndexError) as e:
            raise ValueError(f"framing {framing!r} refers to {e}, which item {i} does not have") from e
        return head if uses_text else head + body

    return render


def _vector_dim(vectors: list[Any]) -> Optional[int]:
    """Converts the given vectors to float32 in place; returns their common dimension (None: no vectors)."""
    dim = None
    for i, v in enumerate(vectors):
        if v is None:
            continue
        arr = np.asarray(v, dtype=np.float32)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"item {i}: vector must be a non-empty 1-D array, got shape {arr.shape}")
        if dim is None:
            dim = arr.size
        elif arr.size != dim:
            raise ValueError(f"item {i}: vector has {arr.size} dimensions, earlier items have {dim}")
        if not np.isfinite(arr).all():
            raise ValueError(f"item {i}: vector holds NaN or inf")
        vectors[i] = arr
    return dim


def pack(
    items: Sequence[Any],
    budget: int,
    *,
    order: Order = "edges",
    token_counter: Optional[TokenCounter] = None,
    summaries: Optional[Union[Mapping[Hashable, str], Sequence[Optional[str]]]] = None,
    framing: Framing = "",
    separator: str = "\n\n",
    mode: Mode = "auto",
    dedupe: Optional[float] = None,
    pinned: Iterable[Hashable] = (),
    sections: Optional[Mapping[str, Mapping[str, Any]]] = None,
    summary_fidelity: float = 0.5,
    pinned_overflow: PinnedOverflow = "error",
    margin: int = 0,
) -> PackedContext:
    """Pack ``items`` into at most ``budget`` tokens and render them.

    Args:
        items: texts, dicts with keys ``text`` (required), ``score``, ``id``, ``summary``, ``time`` (Unix
            seconds), ``section``, ``pinned``, ``vector``, or objects with those attributes. Scores must
            be finite and >= 0 (higher is better); when no item has one, rank order is used (the first
            item scores highest); pinned items may omit it (score 0) when the others have one. Ids
            default to the position in ``items`` and must be unique; ties in score or time are broken
            by id (by input position when the ids cannot be compared with each other).
        budget: the token budget (> 0) for the rendered text, separators and framing included.
        order: ``"edges"`` (best first, second best last, the least important in the middle),
            ``"chronological"`` (by ``time``; input order when no item has one) or ``"score"``.
            Pinned items always come first, as a block, in their input order.
        token_counter: ``str -> int`` callable or object with ``.count(str)``; default: a rough
            built-in estimate. It counts every rendered item and the separator once.
        summaries: summaries by item id, or one per item (``None`` = none); overrides an item's
            ``summary``. A summary is used when the full text does not fit or is worth too little per
            token.
        framing: a ``str.format`` template applied to every item, e.g. ``"({date}) {role}: {text}"``.
            Fields: ``text``, ``id``, ``section``, ``score``, ``time``, ``date`` (UTC, from ``time``),
            ``fidelity`` (``"full"``/``"summary"``), ``item`` (the original), and a dict item's own
            keys. A template without ``{text}`` is a prefix. Or a callable ``fields -> str`` that returns
            the whole rendered item.
        separator: placed between consecutive items.
        mode: ``"greedy"`` (value per token), ``"exact"`` (dynamic programme, maximises the total score
            of each section) or ``"auto"`` (exact for sections of <= 64 items and <= 8192 tokens).
        dedupe: cosine similarity threshold in (0, 1]; of two items whose ``vector`` are at least this
            similar, the lower-scored one is dropped (reason ``"duplicate"``). Pinned items are kept.
        pinned: ids of items that must go in (as do items with ``pinned=True`` and sections with
            ``{"pinned": True}``). Pinned items are packed first: full text if all fit, else the least
            important switch to summaries, else ``pinned_overflow`` applies.
        sections: per-section options by name: ``priority`` (lower packs first; default 0, ties by first
            appearance), ``quota`` (max tokens of the section's non-pinned items, separators between
            them included), ``pinned`` (bool).
        summary_fidelity: the value of a summary relative to its full text, in [0, 1].
        pinned_overflow: ``"error"`` raises ValueError when pinned items cannot fit even as summaries;
            ``"truncate"`` keeps the most important that fit and reports the rest as
            ``"pinned_over_budget"``.
        margin: tokens held back from the budget, for counters that are not additive (BPE merges).

    Returns:
        A :class:`PackedContext`; ``.tokens`` never exceeds ``budget - margin``.

    Raises:
        ValueError: budget <= 0 or margin >= budget, unknown order/mode/pinned_overflow, bad score,
            duplicate id, unknown pinned id, pinned items over budget with ``pinned_overflow="error"``.
        TypeError: an item without text, a bad token counter.

    >>> ctx = pack([{"text": "x " * 40, "summary": "x", "score": 1.0}], budget=5, separator="")
    >>> ctx.items[0].fidelity, ctx.tokens
    ('summary', 1)
    """
    if not _is_int(budget):
        raise TypeError(f"budget must be an int, got {type(budget).__name__}")
    if budget <= 0:
        raise ValueError(f"budget must be > 0 tokens, got {budget}")
    if not _is_int(margin) or margin < 0:
        raise ValueError(f"margin must be an int >= 0, got {margin!r}")
    if margin >= budget:
        raise ValueError(f"margin ({margin}) must be smaller than the budget ({budget})")
    _validate_choice("order", order, _ORDERS)
    _validate_choice("mode", mode, _MODES)
    _validate_choice("pinned_overflow", pinned_overflow, _OVERFLOW)
    if dedupe is not None and not (isinstance(dedupe, numbers.Real) and 0.0 < float(dedupe) <= 1.0):
        raise ValueError(f"dedupe must be a cosine similarity threshold in (0, 1], got {dedupe!r}")
    if not (isinstance(summary_fidelity, numbers.Real) and 0.0 <= float(summary_fidelity) <= 1.0):
        raise ValueError(f"summary_fidelity must be in [0, 1], got {summary_fidelity!r}")
    if not isinstance(separator, str):
        raise TypeError(f"separator must be a str, got {type(separator).__name__}")
    if not (isinstance(framing, str) or callable(framing)):
        raise TypeError(f"framing must be a str template or a callable, got {type(framing).__name__}")
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise TypeError("items must be a sequence (list or tuple) of texts, dicts or records")
    count = _resolve_counter(token_counter)
    budget = int(budget)

    rows = _read_rows(items, want_vectors=dedupe is not None)
    n = len(rows.texts)
    index_of, by_id = _index_ids(rows.ids)
    # The core breaks ties by a uint64 id: each item's rank by id, so ties follow the user's ids
    # whatever the input order.
    core_id = [0] * n
    for rank, i in enumerate(by_id):
        core_id[i] = rank

    if isinstance(pinned, (str, bytes)):
        raise TypeError("pinned takes a collection of item ids; to pin a section use "
                        "sections={name: {'pinned': True}}")
    for ident in pinned:
        if ident not in index_of:
            raise ValueError(f"pinned names id {ident!r}, which no item has")
        rows.pinned[index_of[ident]] = True
    spec = _read_sections(sections)
    for i in range(n):
        if spec.get(rows.sections[i], {}).get("pinned"):
            rows.pinned[i] = True

    # Pinned items go in regardless of score (it only ranks them against each other when they overflow),
    # so they may omit it when the others have one; then they score 0 and rank by id.
    if any(s is not None for s in rows.scores):
        for i in range(n):
            if rows.scores[i] is None and not rows.pinned[i]:
                raise ValueError(f"item {i} has no score but others do: give every item a score, or none")
        scores = [s if s is not None else 0.0 for s in rows.scores]
    else:
        scores = [float(n - i) for i in range(n)]

    # Chronological order applies to the non-pinned items only (the pinned block keeps its given order).
    if order == "chronological" and any(t is not None for t in rows.times):
        for i in range(n):
            if rows.times[i] is None and not rows.pinned[i]:
                raise ValueError(f"order='chronological' needs a time on every item; item {i} has none")
    time_values = [t if t is not None else float(i) for i, t in enumerate(rows.times)]

    summary_of = rows.summaries
    if summaries is not None:
        if isinstance(summaries, Mapping):
            for ident, s in summaries.items():
                if ident not in index_of:
                    raise ValueError(f"summaries names id {ident!r}, which no item has")
                summary_of[index_of[ident]] = s
        else:
            if len(summaries) != n:
                raise ValueError(f"summaries must have one entry per item ({n}), got {len(summaries)}")
            summary_of = list(summaries)
    for i, s in enumerate(summary_of):
        if s is not None and not isinstance(s, str):
            raise TypeError(f"item {i}: summary must be a str or None, got {type(s).__name__}")

    # Count what will be emitted: each item rendered at each fidelity, and the separator once.
    render = _renderer(framing, rows, scores)
    full_text = [render(i, rows.texts[i], "full") for i in range(n)]
    full_tokens = [_checked_count(count, s) for s in full_text]
    summary_text: list[Optional[str]] = [None] * n
    summary_tokens = [0] * n
    for i, s in enumerate(summary_of):
        if s:
            summary_text[i] = render(i, s, "summary")
            summary_tokens[i] = _checked_count(count, summary_text[i])
    sep_tokens = _checked_count(count, separator)
    dim = _vector_dim(rows.vectors) if dedupe is not None else None

    if n == 0:
        return PackedContext(text="", items=(), dropped=(), tokens=0, budget=budget, exact=False)

    # One core section per (section name, pinned): a section's pinned items form their own pinned section.
    groups: dict[tuple[str, bool], list[int]] = {}
    for i in range(n):
        groups.setdefault((rows.sections[i], rows.pinned[i]), []).append(i)
    core_sections = []
    for (name, is_pinned), members in groups.items():
        opts = spec.get(name, {})
        sec: dict[str, Any] = {
            "name": name,
            "priority": int(opts.get("priority", 0)),
            "pinned": is_pinned,
            "quota": None if is_pinned else opts.get("quota"),
            "ids": np.asarray([core_id[i] for i in members], dtype=np.uint64),
            "scores": np.asarray([scores[i] for i in members], dtype=np.float32),
            "tokens": np.asarray([full_tokens[i] for i in members], dtype=np.uint32),
            "summary_tokens": np.asarray([summary_tokens[i] for i in members], dtype=np.uint32),
            "time": np.asarray([time_values[i] for i in members], dtype=np.float64),
        }
        if dim is not None:
            mat = np.zeros((len(members), dim), dtype=np.float32)  # a zero row is similar to nothing
            for r, i in enumerate(members):
                if rows.vectors[i] is not None:
                    mat[r] = rows.vectors[i]
            sec["vectors"] = mat
        core_sections.append(sec)

    try:
        res = _core.pack_sections(
            core_sections, budget - int(margin), order=order, mode=mode, separator_tokens=sep_tokens,
            dedupe=None if dedupe is None else float(dedupe), summary_fidelity=float(summary_fidelity),
            pinned_overflow=pinned_overflow,
        )
    except ValueError as e:
        if margin and str(e).startswith("pinned items need"):
            raise ValueError(f"{e} [the budget {budget} minus margin {margin}]") from None
        raise

    packed: list[PackedItem] = []
    for pos, (internal, fid) in enumerate(zip(res["ids"].tolist(), res["fidelity"].tolist())):
        i = by_id[internal]
        is_summary = fid == 1
        rendered = summary_text[i] if is_summary else full_text[i]
        assert rendered is not None
        packed.append(PackedItem(
            id=rows.ids[i], section=rows.sections[i], fidelity="summary" if is_summary else "full",
            tokens=summary_tokens[i] if is_summary else full_tokens[i], score=scores[i], position=pos,
            pinned=rows.pinned[i], text=rendered,
        ))
    names = _core.PACK_DROP_REASONS
    dropped = []
    for internal, r in zip(res["dropped_ids"].tolist(), res["dropped_reasons"].tolist()):
        i = by_id[internal]
        dropped.append(DroppedItem(rows.ids[i], rows.sections[i], names[r], scores[i]))
    return PackedContext(
        text=separator.join(p.text for p in packed),
        items=tuple(packed),
        dropped=tuple(dropped),
        tokens=int(res["total_tokens"]),
        budget=budget,
        exact=bool(res["used_exact"]),
    )
