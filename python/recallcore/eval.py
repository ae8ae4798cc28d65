"""Retrieval evaluation for conversational memory: metrics, a LoCoMo-layout loader, and a runner.

Three parts:

* **Metrics** over ranked lists of ids: :func:`recall_at_k` (share of the relevant ids found in the
  top k), :func:`all_evidence_at_k`, :func:`mrr`, :func:`ndcg_at_k` (binary relevance), and for packed
  contexts :func:`evidence_in_context` and :func:`evidence_positions` (where in the prompt the
  evidence landed: start, middle or end third, the "lost in the middle" question).
* **Data**: :func:`load_locomo` reads any file in the LoCoMo layout (LoCoMo itself, and REALTALK as
  converted under ``shared/data/realtalk``) into :class:`Conversation` objects; :func:`load_realtalk_vectors`
  maps precomputed embedding rows to (conversation, dia_id) turns and (conversation, qa index) questions.
* **Runner**: :func:`run_eval` ingests each conversation into a ``recallcore.Memory`` (one namespace per
  conversation), asks every usable question, and aggregates per category into an :class:`EvalReport`.

The runner codes against this ``Memory`` contract (the store itself lives in ``recallcore.Memory``)::

    Memory(path, *, dim=None, metric="cosine", embedder=None, token_counter=None)   # context manager
    .add_many(items: list[dict], *, batch_size=..., progress=False) -> list[int]
    .recall(query, *, vector=None, namespace="default", k=10, mode="hybrid") -> list[Hit]
        # Hit: .id, .score, .record (.metadata["dia_id"])
    .context(query, *, budget, vector=None, namespace="default", session=None, recent_turns=5) -> Context
        # Context: .text, .tokens, .manifest: entries with .id, .section, .position, .tokens

Each turn is stored as ``text="<speaker>: <text>"`` (plus `` [shares <caption>]`` for shared images,
the same string the REALTALK vectors embed), ``namespace=<conversation id>``, ``session="session_<n>"``,
``ts=<session start, epoch seconds>``, ``metadata={"dia_id": ..., "speaker": ...}``, ``kind="turn"``.

>>> recall_at_k(["a", "x", "b"], {"a", "b", "c"}, k=2)
0.3333333333333333
>>> mrr(["x", "y", "a"], {"a"})
0.3333333333333333
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

__all__ = [
    "Conversation",
    "EvalReport",
    "EvidencePosition",
    "QuestionResult",
    "Question",
    "RowVectors",
    "Session",
    "Turn",
    "Vectors",
    "all_evidence_at_k",
    "evidence_in_context",
    "evidence_positions",
    "load_locomo",
    "load_realtalk_vectors",
    "mrr",
    "ndcg_at_k",
    "parse_date_time",
    "recall_at_k",
    "run_eval",
    "score_ranking",
]

Id = Any  # hashable: a dia_id string, a record id, ...

# --------------------------------------------------------------------------------------- metrics


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}")


def _relevant_set(relevant: Iterable[Id]) -> set:
    rel = set(relevant)
    if not rel:
        raise ValueError("relevant must not be empty (a question without evidence cannot be scored)")
    return rel


def recall_at_k(retrieved: Sequence[Id], relevant: Iterable[Id], k: int) -> float:
    """Share of the relevant ids that appear among the first ``k`` retrieved (duplicates count once).

    >>> recall_at_k(["a", "b"], ["a", "c"], k=10)
    0.5
    """
    _check_k(k)
    rel = _relevant_set(relevant)
    return len(rel.intersection(retrieved[:k])) / len(rel)


def all_evidence_at_k(retrieved: Sequence[Id], relevant: Iterable[Id], k: int) -> float:
    """1.0 when every relevant id is in the top ``k``, else 0.0 (multi-hop questions need them all).

    >>> all_evidence_at_k(["a", "b", "c"], ["a", "c"], k=2)
    0.0
    """
    _check_k(k)
    rel = _relevant_set(relevant)
    return 1.0 if rel.issubset(retrieved[:k]) else 0.0


def mrr(retrieved: Sequence[Id], relevant: Iterable[Id], k: Optional[int] = None) -> float:
    """Reciprocal rank (1-based) of the first relevant id, 0.0 when none is found (in the top ``k``).

    >>> mrr(["x", "a"], ["a"])
    0.5
    """
    if k is not None:
        _check_k(k)
    rel = _relevant_set(relevant)
    for rank, item in enumerate(retrieved[:k] if k is not None else retrieved, start=1):
        if item in rel:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(retrieved: Sequence[Id], relevant: Iterable[Id], k: int) -> float:
    """Normalised discounted cumulative gain with binary relevance: gain ``1/log2(rank+1)``.

    A relevant id counts once (a repeat later in the list gains nothing). The ideal ranking puts
    ``min(len(relevant), k)`` relevant ids first.

    >>> ndcg_at_k(["a", "x"], ["a"], k=2)
    1.0
    >>> round(ndcg_at_k(["x", "a"], ["a"], k=2), 4)
    0.6309
    """
    _check_k(k)
    rel = _relevant_set(relevant)
    seen: set = set()
    dcg = 0.0
    for i, item in enumerate(retrieved[:k]):
        if item in rel and item not in seen:
            seen.add(item)
            dcg += 1.0 / math.log2(i + 2)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), k)))
    return dcg / ideal


def evidence_in_context(context_ids: Iterable[Id], relevant: Iterable[Id]) -> float:
    """Share of the relevant ids present anywhere in a packed context.

    >>> evidence_in_context([3, 1, 2], [1, 9])
    0.5
    """
    rel = _relevant_set(relevant)
    return len(rel.intersection(context_ids)) / len(rel)


THIRDS = ("start", "middle", "end")


@dataclass(frozen=True)
class EvidencePosition:
    """Where one piece of evidence sits in a packed context of ``n_items`` items.

    ``relative`` is the centre of its slot, ``(index + 0.5) / n_items``, in (0, 1): the three thirds
    then hold equal numbers of slots, and a lone item is in the middle.
    """

    id: Id
    index: int
    n_items: int
    relative: float
    third: str

    def __repr__(self) -> str:
        where = f"{self.index + 1}/{self.n_items}"
        return f"EvidencePosition({self.id!r}, {where}, {self.relative:.2f}, {self.third})"


def evidence_positions(manifest_ids_in_order: Sequence[Id], relevant: Iterable[Id]) -> list[EvidencePosition]:
    """For each relevant id found in the ordered context, its relative position and third.

    Ids are in prompt order (first = start of the prompt). An id packed twice counts at its first
    position. Results follow prompt order.

    >>> [p.third for p in evidence_positions(["a", "b", "c", "d", "e", "f"], {"a", "d", "f", "z"})]
    ['start', 'middle', 'end']
    """
    rel = set(relevant)
    n = len(manifest_ids_in_order)
    out: list[EvidencePosition] = []
    seen: set = set()
    for i, item in enumerate(manifest_ids_in_order):
        if item in rel and item not in seen:
            seen.add(item)
            r = (i + 0.5) / n
            third = THIRDS[min(int(r * 3), 2)]
            out.append(EvidencePosition(item, i, n, r, third))
    return out


# ------------------------------------------------------------------------------------ data model


@dataclass
class Turn:
    """One message. ``session`` is the session number; ``ts`` the session's start (epoch seconds, UTC)."""

    speaker: str
    dia_id: str
    text: str
    session: int
    ts: Optional[float] = None
    blip_caption: Optional[str] = None
    index: int = 0  # position in the whole conversation

    @property
    def content(self) -> str:
        """``"<speaker>: <text>"``, plus ``" [shares <caption>]"`` when an image was shared."""
        s = f"{self.speaker}: {self.text}"
        return f"{s} [shares {self.blip_caption}]" if self.blip_caption else s

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return f"Turn({self.dia_id}, {self.speaker!r}, {text!r})"


@dataclass
class Session:
    number: int
    date_time: Optional[str]
    ts: Optional[float]
    turns: list[Turn] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"session_{self.number}"

    def __repr__(self) -> str:
        return f"Session({self.number}, {self.date_time!r}, {len(self.turns)} turns)"


@dataclass
class Question:
    """A question with its gold answer and evidence.

    ``evidence`` holds the dia_ids that resolve to turns of the conversation; ``raw_evidence`` the
    strings as written. A question is ``usable`` when at least one evidence id resolves.
    """

    question: str
    answer: Optional[str]
    evidence: tuple[str, ...]
    category: Optional[int]
    index: int  # position in the conversation's qa list (the key of question vectors)
    raw_evidence: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. synthetic data: fact kind, asked_after

    @property
    def usable(self) -> bool:
        return bool(self.evidence)

    def __repr__(self) -> str:
        ev = list(self.evidence)
        return f"Question({self.index}, cat={self.category}, {self.question!r}, evidence={ev})"


@dataclass
class Conversation:
    id: str
    sessions: list[Session]
    questions: list[Question]
    speakers: tuple[str, ...] = ()

    @property
    def turns(self) -> list[Turn]:
        return [t for s in self.sessions for t in s.turns]

    @property
    def usable_questions(self) -> list[Question]:
        return [q for q in self.questions if q.usable]

    def render(self, *, dated: bool = True) -> str:
        """The whole history as one prompt: a line ``"(<session date>) <speaker>: <text>"`` per turn.

        This is the "context-only" alternative a memory layer is measured against.
        """
        lines = []
        for s in self.sessions:
            prefix = f"({s.date_time}) " if dated and s.date_time else ""
            lines.extend(prefix + t.content for t in s.turns)
        return "\n".join(lines)

    def turn(self, dia_id: str) -> Turn:
        for t in self.turns:
            if t.dia_id == dia_id:
                return t
        raise KeyError(dia_id)

    def __repr__(self) -> str:
        return (
            f"Conversation({self.id!r}, {len(self.sessions)} sessions, {len(self.turns)} turns, "
            f"{len(self.usable_questions)}/{len(self.questions)} usable questions)"
        )


# ---------------------------------------------------------------------------------------- loader

_DATE_FORMATS = (
    "%d.%m.%Y, %H:%M:%S",  # REALTALK: 29.12.2023, 22:42:04
    "%d.%m.%Y, %H:%M",
    "%I:%M %p on %d %B, %Y",  # LoCoMo: 1:56 pm on 8 May, 2023
    "%I:%M %p on %d %b, %Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%d %B %Y",
    "%B %d, %Y",
)


def parse_date_time(value: Optional[str]) -> Optional[float]:
    """Epoch seconds (read as UTC) of a session date string, or None when no known format matches.

    >>> parse_date_time("29.12.2023, 22:42:04")
    1703889724.0
    >>> parse_date_time("1:56 pm on 8 May, 2023") == parse_date_time("2023-05-08 13:56:00")
    True
    """
    if not value or not isinstance(value, str):
        return None
    s = " ".join(value.strip().split())
    for fmt in _DATE_FORMATS:
        try:
            dt = datetime.strptime(s, fmt)
        except ValueError:
            continue
        return dt.replace(tzinfo=timezone.utc).timestamp()
    return None


_QA_KEYS = frozenset({"question", "answer", "adversarial_answer", "evidence", "category"})
_SESSION_KEY = re.compile(r"^session_(\d+)$")
_EVIDENCE_SPLIT = re.compile(r"[;,\s]+")


def _resolve_evidence(raw: Iterable[Any], known: set[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split evidence strings on ``;``, ``,`` and blanks; keep the pieces that name a turn exactly.

    Ranges ("D12:3-D12:5") and typos ("D17;39", "D20:6.") are not guessed at: they stay unresolved.
    """
    found: list[str] = []
    missing: list[str] = []
    for item in raw:
        for piece in _EVIDENCE_SPLIT.split(str(item).strip()):
            if not piece:
                continue
            if piece in known:
                if piece not in found:
                    found.append(piece)
            elif piece not in missing:
                missing.append(piece)
    return tuple(found), tuple(missing)


def _parse_conversation(sample: Mapping[str, Any], position: int) -> Conversation:
    conv = sample.get("conversation")
    if not isinstance(conv, Mapping):
        raise ValueError(f"sample {position}: no 'conversation' object")
    conv_id = str(sample.get("sample_id", f"conv-{position}"))
    numbers = sorted(int(m.group(1)) for key in conv if (m := _SESSION_KEY.match(key)))
    sessions: list[Session] = []
    index = 0
    for n in numbers:
        turns_raw = conv.get(f"session_{n}")
        if not isinstance(turns_raw, list):
            continue
        date_time = conv.get(f"session_{n}_date_time")
        ts = parse_date_time(date_time)
        session = Session(n, date_time if isinstance(date_time, str) else None, ts)
        for t in turns_raw:
            if not isinstance(t, Mapping) or "dia_id" not in t:
                continue
            caption = t.get("blip_caption")
            session.turns.append(
                Turn(
                    speaker=str(t.get("speaker", "")),
                    dia_id=str(t["dia_id"]),
                    text=str(t.get("text", "")),
                    session=n,
                    ts=ts,
                    blip_caption=str(caption) if caption else None,
                    index=index,
                )
            )
            index += 1
        sessions.append(session)
    known = {t.dia_id for s in sessions for t in s.turns}
    questions: list[Question] = []
    for i, q in enumerate(sample.get("qa", []) or []):
        if not isinstance(q, Mapping):
            continue
        raw = q.get("evidence", []) or []
        if isinstance(raw, str):
            raw = [raw]
        evidence, missing = _resolve_evidence(raw, known)
        answer = q.get("answer", q.get("adversarial_answer"))
        category = q.get("category")
        if not (isinstance(category, (int, str)) and str(category).isdigit()):
            category = None
        questions.append(
            Question(
                question=str(q.get("question", "")),
                answer=None if answer is None else str(answer),
                evidence=evidence,
                category=None if category is None else int(category),
                index=i,
                raw_evidence=tuple(str(e) for e in raw),
                unresolved=missing,
                meta={k: v for k, v in q.items() if k not in _QA_KEYS},
            )
        )
    speakers = tuple(str(conv[k]) for k in ("speaker_a", "speaker_b") if k in conv)
    return Conversation(conv_id, sessions, questions, speakers)


def load_locomo(path: Union[str, Path]) -> list[Conversation]:
    """Read a LoCoMo-layout JSON file (a list of samples, or one sample) into conversations.

    Each sample has ``sample_id``, ``conversation`` (``speaker_a``/``speaker_b``, ``session_N`` lists
    of ``{speaker, dia_id, text, [img_url, blip_caption, ...]}``, ``session_N_date_time``) and ``qa``
    (``{question, answer, evidence, category}``). Extra keys are ignored. Evidence ids that name no
    turn are kept in ``Question.unresolved``; a question none of whose ids resolve is not ``usable``
    (REALTALK: 696 usable of 728).

    >>> convs = load_locomo("realtalk10.json")  # doctest: +SKIP
    >>> sum(len(c.usable_questions) for c in convs)  # doctest: +SKIP
    696
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of samples in the LoCoMo layout")
    return [_parse_conversation(sample, i) for i, sample in enumerate(data)]


# --------------------------------------------------------------------------------------- vectors


@dataclass
class RowVectors:
    """A matrix whose rows are keyed, e.g. by ``(conversation id, dia_id)``.

    >>> v = RowVectors(np.eye(2, dtype=np.float32), [("c", "D1:1"), ("c", "D1:2")])
    >>> v[("c", "D1:2")].tolist()
    [0.0, 1.0]
    """

    matrix: np.ndarray
    keys: list[tuple[Any, ...]]
    _rows: dict[tuple[Any, ...], int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.keys):
            raise ValueError(
                f"RowVectors: matrix of shape {self.matrix.shape} does not match {len(self.keys)} keys"
            )
        self._rows = {k: i for i, k in enumerate(self.keys)}
        if len(self._rows) != len(self.keys):
            raise ValueError("RowVectors: duplicate keys")

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def __getitem__(self, key: tuple[Any, ...]) -> np.ndarray:
        return self.matrix[self._rows[key]]

    def get(self, key: tuple[Any, ...]) -> Optional[np.ndarray]:
        row = self._rows.get(key)
        return None if row is None else self.matrix[row]

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"RowVectors({len(self.keys)} x {self.dim}, {self.matrix.dtype})"


@dataclass
class Vectors:
    """Precomputed embeddings: ``turns[(conv_id, dia_id)]`` and ``questions[(conv_id, qa_index)]``."""

    turns: RowVectors
    questions: RowVectors
    model: Optional[str] = None

    @property
    def dim(self) -> int:
        return self.turns.dim

    def turn(self, conv_id: str, dia_id: str) -> Optional[np.ndarray]:
        return self.turns.get((conv_id, dia_id))

    def question(self, conv_id: str, qa_index: int) -> Optional[np.ndarray]:
        return self.questions.get((conv_id, qa_index))


def load_realtalk_vectors(
    directory: Union[str, Path],
    *,
    index_file: str = "index.json",
    turn_file: str = "turn_emb.npy",
    question_file: str = "question_emb.npy",
) -> Vectors:
    """Map ``turn_emb.npy``/``question_emb.npy`` rows to turns and questions through ``index.json``.

    ``index.json`` lists ``turns`` (``conv``, ``dia_id``) and ``questions`` (``conv``, ``qa_idx``) in row
    order; any directory laid out this way loads.
    """
    d = Path(directory)
    with open(d / index_file, encoding="utf-8") as f:
        index = json.load(f)
    turn_m = np.load(d / turn_file)
    question_m = np.load(d / question_file)
    turn_keys = [(str(t["conv"]), str(t["dia_id"])) for t in index["turns"]]
    question_keys = [(str(q["conv"]), int(q["qa_idx"])) for q in index["questions"]]
    turns = RowVectors(np.ascontiguousarray(turn_m, dtype=np.float32), turn_keys)
    questions = RowVectors(np.ascontiguousarray(question_m, dtype=np.float32), question_keys)
    if turns.dim != questions.dim:
        raise ValueError(f"turn vectors have dim {turns.dim}, question vectors {questions.dim}")
    return Vectors(turns, questions, index.get("model"))


# ---------------------------------------------------------------------------------------- runner


@dataclass
class QuestionResult:
    """One question asked in one mode: what came back and how it scored."""

    conversation: str
    qa_index: int
    category: Optional[int]
    mode: str
    evidence: tuple[str, ...]
    retrieved: list[str]  # dia_ids, best first
    recall: dict[int, float]
    all_evidence: dict[int, float]
    mrr: float
    ndcg: dict[int, float]
    # Filled for one mode only (the context packer has no mode): budget -> share / thirds / tokens.
    in_context: dict[int, float] = field(default_factory=dict)
    thirds: dict[int, dict[str, int]] = field(default_factory=dict)
    context_tokens: dict[int, int] = field(default_factory=dict)

    def __repr__(self) -> str:
        r = ", ".join(f"R@{k}={v:.2f}" for k, v in self.recall.items())
        return f"QuestionResult({self.conversation}#{self.qa_index}, {self.mode}, {r}, MRR={self.mrr:.2f})"


def score_ranking(
    retrieved: Sequence[str], evidence: Sequence[str], ks: Sequence[int]
) -> tuple[dict[int, float], dict[int, float], float, dict[int, float]]:
    """Recall, all-evidence and nDCG at each k, and MRR, for one ranked list."""
    return (
        {k: recall_at_k(retrieved, evidence, k) for k in ks},
        {k: all_evidence_at_k(retrieved, evidence, k) for k in ks},
        mrr(retrieved, evidence),
        {k: ndcg_at_k(retrieved, evidence, k) for k in ks},
    )


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else float("nan")


@dataclass
class EvalReport:
    """Per-question results and their per-category and overall means.

    Recall@k etc. are means over questions (each question's share of its own evidence). Budget
    columns: ``ctx@b`` is the mean share of a question's evidence packed into a ``b``-token context;
    the thirds pool every packed evidence item of every question at that budget.
    """

    results: list[QuestionResult]
    modes: tuple[str, ...]
    ks: tuple[int, ...]
    budgets: tuple[int, ...]
    n_conversations: int
    n_questions: int
    n_skipped: int
    conversation_tokens: Optional[float] = None  # mean tokens of a whole conversation, when counted

    def categories(self) -> list[Optional[int]]:
        cats = {r.category for r in self.results}
        return sorted(cats, key=lambda c: (c is None, c if c is not None else 0))

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{mode: {"all" | "cat <c>": {metric: mean, "n": count}}}``."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for mode in self.modes:
            rows = [r for r in self.results if r.mode == mode]
            groups: dict[str, list[QuestionResult]] = {"all": rows}
            for cat in self.categories():
                groups[f"cat {cat}"] = [r for r in rows if r.category == cat]
            out[mode] = {name: self._aggregate(g) for name, g in groups.items() if g}
        return out

    def _aggregate(self, rows: list[QuestionResult]) -> dict[str, float]:
        agg: dict[str, float] = {"n": float(len(rows))}
        for k in self.ks:
            agg[f"R@{k}"] = _mean([r.recall[k] for r in rows])
        for k in self.ks:
            agg[f"All@{k}"] = _mean([r.all_evidence[k] for r in rows])
        agg["MRR"] = _mean([r.mrr for r in rows])
        for k in self.ks:
            agg[f"nDCG@{k}"] = _mean([r.ndcg[k] for r in rows])
        with_ctx = [r for r in rows if r.in_context]
        for b in self.budgets:
            vals = [r.in_context[b] for r in with_ctx if b in r.in_context]
            if vals:
                agg[f"ctx@{b}"] = _mean(vals)
                counts = {t: sum(r.thirds[b][t] for r in with_ctx if b in r.thirds) for t in THIRDS}
                total = sum(counts.values())
                for t in THIRDS:
                    agg[f"{t}@{b}"] = counts[t] / total if total else float("nan")
                tokens = [float(r.context_tokens[b]) for r in with_ctx if b in r.context_tokens]
                agg[f"tokens@{b}"] = _mean(tokens)
        return agg

    def table(self) -> str:
        """Aligned plain-text tables: retrieval per mode, then context packing per budget."""
        summary = self.summary()
        parts = [
            f"{self.n_conversations} conversations, {self.n_questions} questions "
            f"({self.n_skipped} skipped: no resolvable evidence)"
            + (f", whole conversation ≈ {self.conversation_tokens:,.0f} tokens"
               if self.conversation_tokens is not None else "")
        ]
        ret_cols = [f"R@{k}" for k in self.ks] + [f"All@{self.ks[-1]}", "MRR", f"nDCG@{self.ks[-1]}"]
        header = ("mode", "group", "n", *ret_cols)
        rows = []
        for mode, groups in summary.items():
            for name, agg in groups.items():
                rows.append((mode, name, f"{int(agg['n'])}", *(_fmt3(agg[c]) for c in ret_cols)))
        parts.append(_render(header, rows))
        ctx_rows = []
        for groups in summary.values():
            for name, agg in groups.items():
                for b in self.budgets:
                    if f"ctx@{b}" in agg:
                        ctx_rows.append((
                            name, f"{b:,}", f"{int(agg['n'])}", _fmt3(agg[f"ctx@{b}"]),
                            *(_fmt3(agg[f"{t}@{b}"]) for t in THIRDS), f"{agg[f'tokens@{b}']:,.0f}",
                        ))
            if ctx_rows:
                break  # the packed context does not depend on the recall mode
        if ctx_rows:
            header2 = ("group", "budget", "n", "evidence in context", "start", "middle", "end", "tokens used")
            parts.append(_render(header2, ctx_rows))
        return "\n\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_conversations": self.n_conversations,
            "n_questions": self.n_questions,
            "n_skipped": self.n_skipped,
            "conversation_tokens": self.conversation_tokens,
            "modes": list(self.modes),
            "ks": list(self.ks),
            "budgets": list(self.budgets),
            "summary": self.summary(),
        }

    def __repr__(self) -> str:
        return (
            f"EvalReport({self.n_conversations} conversations, {self.n_questions} questions, "
            f"modes={list(self.modes)}, ks={list(self.ks)}, budgets={list(self.budgets)})"
        )


def _fmt3(x: float) -> str:
    return "n/a" if x != x else f"{x:.3f}"


def _render(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    left = 2 if header[:2] == ("mode", "group") else 1
    lines = []
    for j, r in enumerate([header, *rows]):
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _ordered_ids(manifest: Sequence[Any]) -> list[Any]:
    entries = list(manifest)
    if entries and all(getattr(e, "position", None) is not None for e in entries):
        entries.sort(key=lambda e: e.position)
    return [e.id for e in entries]


def context_k(budget: int) -> int:
    """Candidates offered to the packer for a budget: enough to fill it (about 12 tokens per memory at
    the least), never fewer than Memory.context's default 50."""
    return max(50, budget // 12)


def run_eval(
    conversations: Sequence[Conversation],
    memory_factory: Callable[[], Any],
    *,
    vectors: Optional[Vectors] = None,
    modes: Sequence[str] = ("hybrid", "vector", "lexical"),
    ks: Sequence[int] = (5, 10, 20),
    budgets: Sequence[int] = (512, 1024, 2048, 4096),
    token_counter: Optional[Callable[[str], int]] = None,
    progress: bool = False,
) -> EvalReport:
    """Ingest every conversation into one ``Memory`` and ask every usable question.

    ``memory_factory()`` returns a fresh ``Memory`` (used as a context manager); each conversation
    goes into its own namespace. With ``vectors``, turns and questions carry their precomputed
    embeddings (a "vector" mode needs them unless the Memory has an embedder). ``token_counter``, when
    given, counts the tokens of ``Conversation.render()`` for the report (the context-only
    alternative).

    >>> report = run_eval(load_locomo(path), lambda: Memory(tmp, dim=384),
    ...                   vectors=load_realtalk_vectors(dir))  # doctest: +SKIP
    >>> print(report.table())  # doctest: +SKIP
    """
    ks = tuple(sorted(set(ks)))
    budgets = tuple(sorted(set(budgets)))
    modes = tuple(modes)
    if not ks or not modes:
        raise ValueError("ks and modes must not be empty")
    for k in ks:
        _check_k(k)
    for b in budgets:
        _check_k(b)
    k_max = ks[-1]
    results: list[QuestionResult] = []
    n_questions = n_skipped = 0
    conv_tokens: list[int] = []
    bar = _progress(len(conversations), progress)
    with memory_factory() as memory:
        for conv in conversations:
            items = []
            for t in conv.turns:
                item: dict[str, Any] = {
                    "text": t.content,
                    "namespace": conv.id,
                    "session": f"session_{t.session}",
                    "kind": "turn",
                    "ts": t.ts,
                    "metadata": {"dia_id": t.dia_id, "speaker": t.speaker},
                }
                if vectors is not None:
                    vec = vectors.turn(conv.id, t.dia_id)
                    if vec is None:
                        raise KeyError(f"no vector for turn {t.dia_id} of {conv.id}")
                    item["vector"] = vec
                items.append(item)
            ids = memory.add_many(items)
            if hasattr(memory, "verify"):
                # Let the background indexer finish (verify drains it): a vector still pending is scored by
                # an equally exact but differently rounded path, which can reorder exact ties between runs.
                memory.verify()
            id_to_dia = {rid: t.dia_id for rid, t in zip(ids, conv.turns)}
            if token_counter is not None:
                conv_tokens.append(int(token_counter(conv.render())))
            for q in conv.questions:
                if not q.usable:
                    n_skipped += 1
                    continue
                n_questions += 1
                qvec = vectors.question(conv.id, q.index) if vectors is not None else None
                if vectors is not None and qvec is None:
                    raise KeyError(f"no vector for question {q.index} of {conv.id}")
                in_ctx: dict[int, float] = {}
                thirds: dict[int, dict[str, int]] = {}
                used: dict[int, int] = {}
                for b in budgets:
                    ctx = memory.context(q.question, vector=qvec, namespace=conv.id, budget=b, recent_turns=0,
                                         k=context_k(b))
                    order = [id_to_dia.get(i, i) for i in _ordered_ids(ctx.manifest)]
                    in_ctx[b] = evidence_in_context(order, q.evidence)
                    counts = dict.fromkeys(THIRDS, 0)
                    for p in evidence_positions(order, q.evidence):
                        counts[p.third] += 1
                    thirds[b] = counts
                    used[b] = int(ctx.tokens)
                for j, mode in enumerate(modes):
                    hits = memory.recall(q.question, vector=qvec, namespace=conv.id, k=k_max, mode=mode)
                    retrieved = [id_to_dia.get(h.id) or _hit_dia_id(h) for h in hits]
                    rec, alle, rr, nd = score_ranking(retrieved, q.evidence, ks)
                    results.append(QuestionResult(
                        conv.id, q.index, q.category, mode, q.evidence, retrieved, rec, alle, rr, nd,
                        in_context=in_ctx if j == 0 else {},
                        thirds=thirds if j == 0 else {},
                        context_tokens=used if j == 0 else {},
                    ))
            bar(1)
    bar(0, close=True)
    return EvalReport(
        results, modes, ks, budgets, len(conversations), n_questions, n_skipped,
        _mean([float(x) for x in conv_tokens]) if conv_tokens else None,
    )


def _hit_dia_id(hit: Any) -> str:
    meta = getattr(getattr(hit, "record", None), "metadata", None) or {}
    return str(meta.get("dia_id", hit.id))


def _progress(total: int, enabled: bool) -> Callable[..., None]:
    if not enabled:
        return lambda n, close=False: None
    try:
        from tqdm import tqdm
    except ImportError:
        done = [0]

        def step(n: int, close: bool = False) -> None:
            done[0] += n
            if n:
                print(f"\r{done[0]}/{total} conversations", end="", flush=True)
            if close:
                print()

        return step
    bar = tqdm(total=total, unit="conv")

    def tq(n: int, close: bool = False) -> None:
        if n:
            bar.update(n)
        if close:
            bar.close()

    return tq

