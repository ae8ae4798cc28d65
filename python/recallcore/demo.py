"""The offline demo behind ``recallcore demo`` (the README's first command).

It writes the scripted six-session conversation shipped with the package
(:func:`recallcore.synth.load_demo_conversation`) to a fresh temporary store with model-free
:class:`~recallcore.embedders.HashingEmbedder` vectors and the built-in token counter, adds the
preferences, facts (one of them superseded: the move from Leeds to Manchester) and agent state an
agent would keep, and then, for a new question, shows what :meth:`Memory.recall` finds, the context
:meth:`Memory.context` packs (with its manifest and where each item sits), how long each step took,
and what the packed prompt costs against sending the whole history (:mod:`recallcore.cost`).
No network, no model download; a few seconds.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import textwrap
import time
from typing import Any, Callable

from . import cost
from .cli import print_table
from .embedders import HashingEmbedder
from .eval import THIRDS
from .memory import Memory
from .synth import load_demo_conversation
from .tokens import get_counter

NAMESPACE = "maya"
QUESTION = "Can you suggest a dog-friendly vegetarian lunch spot near where I live?"
NEW_SESSION = "session_7"
MODEL = "llama-3.1-8b"
BUDGET = 512

# What an agent would extract and keep beside the raw turns: (kind, text, dia_id it came from, extra).
PREFERENCES = [
    ("Maya wants short answers in bullet points; longer explanations are fine for technical questions.",
     "D4:7"),
    ("Maya is vegetarian.", "D1:11"),
    ("Maya's dog Olive goes everywhere with her: prefer dog-friendly places.", "D1:13"),
]
FACTS = [  # (key, text, dia_id); a later fact with the same key supersedes the earlier one
    ("home", "Maya lives in Leeds.", "D1:3"),
    ("job", "Maya works as a data analyst at Northwind Freight in Leeds.", "D1:3"),
    ("mug_price", "Kiln & Clover sells mugs at £28.", "D2:5"),
    ("wedding", "Maya's sister Ada gets married in Lisbon on 15 June 2024; Maya is maid of honour.", "D2:13"),
    ("job", "Maya is a senior analyst at Brightgrid, a climate-tech startup in Manchester, since 2 April "
     "2024.", "D3:5"),
    ("home", "Maya lives in Manchester, in Ancoats near the canal (moved from Leeds in April 2024).", "D4:1"),
    ("mug_price", "Kiln & Clover sells mugs at £32 (raised from £28 in April 2024).", "D4:11"),
]
STATE = {
    "shop": {"name": "Kiln & Clover", "platform": "Etsy", "launch": "2024-05-04",
             "discount": "10% launch weekend"},
    "open_tasks": ["announce the launch on Instagram", "tell the Ancoats studio"],
}


def _median_ms(fn: Callable[[], Any], repeat: int = 25) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def _heading(title: str) -> None:
    print()
    print(title)
    print("-" * len(title))


def _third(position: int, n: int) -> str:
    return THIRDS[min(int((position + 0.5) / n * 3), 2)]


def _short(text: str, n: int = 64) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _date(ts: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d")


def _superseded_ids(m: Memory, current: dict[str, int]) -> list[int]:
    out = []
    for rid in current.values():
        r = m.get(rid)
        while r is not None and r.supersedes is not None:
            out.append(r.supersedes)
            r = m.get(r.supersedes)
    return out


def run_demo() -> int:
    """Run the demo; prints its report and returns 0."""
    conv = load_demo_conversation()
    embedder = HashingEmbedder(256)
    counter = get_counter(None)
    tmp = tempfile.mkdtemp(prefix="recallcore-demo-")
    try:
        return _run(conv, embedder, counter, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(conv: Any, embedder: HashingEmbedder, counter: Any, tmp: str) -> int:
    turns = conv.turns
    ts_of: dict[str, float] = {}
    print("recallcore demo: an agent's memory of a six-session conversation, offline, in a temporary store")
    print(f"store: {tmp}  (embedder {embedder.name}: model-free hashing; tokens: {counter.name})")

    # ---------------------------------------------------------------------------------- ingest
    t0 = time.perf_counter()
    with Memory(tmp, embedder=embedder, durable=False) as m:
        items = []
        for t in turns:
            ts = float(t.ts or 0.0) + 60.0 * t.index  # a minute per turn inside its session
            ts_of[t.dia_id] = ts
            items.append({"text": t.text, "namespace": NAMESPACE, "session": f"session_{t.session}",
                          "kind": "turn", "role": "user" if t.speaker == "Maya" else "assistant", "ts": ts,
                          "metadata": {"dia_id": t.dia_id},
                          "entities": ["Maya"] if t.speaker == "Maya" else []})
        turn_ids = m.add_many(items)
        t_turns = time.perf_counter() - t0
        t1 = time.perf_counter()
        for text, dia in PREFERENCES:
            m.add(text, namespace=NAMESPACE, kind="preference", ts=ts_of[dia], importance=0.8,
                  metadata={"source": dia})
        current: dict[str, int] = {}
        n_superseding = 0
        for key, text, dia in FACTS:
            old = current.get(key)
            current[key] = m.add(text, namespace=NAMESPACE, kind="fact", ts=ts_of[dia], importance=0.7,
                                 metadata={"source": dia, "key": key}, supersedes=old)
            n_superseding += old is not None
        state = m.state(NAMESPACE)
        for k, v in STATE.items():
            state[k] = v
        t_facts = time.perf_counter() - t1
        stats = m.stats()
        n_sessions = len(conv.sessions)
        print(f"\nIngested {len(turn_ids)} turns from {n_sessions} sessions "
              f"({conv.sessions[0].date_time[:10]} .. {conv.sessions[-1].date_time[:10]}), "
              f"{len(PREFERENCES)} preferences, {len(FACTS)} facts ({n_superseding} superseding older ones) "
              f"and {len(STATE)} state keys: {stats['records']} records, {stats['vectors']} vectors.")

        # ------------------------------------------------------------------- a superseded fact
        _heading("Facts change: 'supersedes' keeps history, recall returns the current version")
        q_home = "Which city does Maya live in now?"
        print(f"recall({q_home!r}, kinds=['fact'], k=3): only facts valid now come back")
        for h in m.recall(q_home, namespace=NAMESPACE, kinds=["fact"], k=3):
            print(f"  {h.score:.4f}  {_short(h.text, 90)}")
        print("the replaced versions stay in the store with their validity window:")
        for old_id in sorted(i for i in _superseded_ids(m, current)):
            old = m.get(old_id)
            assert old is not None and old.superseded_by is not None
            print(f"  #{old.id:<3d} valid until {_date(old.valid_to)}, superseded by #{old.superseded_by}: "
                  f"{_short(old.text, 70)}")
        as_of = ts_of["D2:1"]
        print(f"recall(..., as_of={_date(as_of)}, k=3): what was true then")
        for h in m.recall(q_home, namespace=NAMESPACE, kinds=["fact"], k=3, as_of=as_of):
            print(f"  {h.score:.4f}  {_short(h.text, 90)}")

        # --------------------------------------------------------------------------- recall
        _heading(f"A new question, in a new session: {QUESTION!r}")
        hits = m.recall(QUESTION, namespace=NAMESPACE, k=8)
        rows = []
        for i, h in enumerate(hits, 1):
            vec = f"#{h.vector_rank} {h.vector_similarity:.3f}" if h.vector_rank else "-"
            lex = f"#{h.lexical_rank} {h.bm25:.2f}" if h.lexical_rank else "-"
            rows.append((str(i), f"{h.score:.4f}", vec, lex, f"{h.importance:.2f}", h.record.kind,
                         _short(h.text, 58)))
        print_table(("#", "score", "vector #, cos", "BM25 #, score", "importance", "kind", "text"), rows,
                    align="rrrrrll",
                    title="recall: hybrid (reciprocal-rank fusion of vector and BM25) x importance")

        # -------------------------------------------------------------------------- context
        last_session = f"session_{conv.sessions[-1].number}"
        ctx = m.context(QUESTION, budget=BUDGET, namespace=NAMESPACE, session=last_session, recent_turns=4,
                        k=20)
        n = len(ctx.manifest)
        print()
        rows = []
        for item in ctx.manifest:
            rows.append((str(item.position), _third(item.position, n), item.section, item.fidelity,
                         str(item.tokens), f"{item.score:.3f}", _short(item.text, 60)))
        print_table(("pos", "third", "section", "fidelity", "tokens", "score", "item"), rows, align="rlllrrl",
                    title=f"context: {ctx.tokens} of {BUDGET} tokens, {n} items "
                          f"(state and preferences pinned first, best memories at the edges, "
                          f"recent turns last); {len(ctx.dropped)} candidates dropped")
        print("\nThe packed prompt (Context.text):")
        for line in ctx.text.splitlines():
            print(textwrap.indent(textwrap.fill(line, 108, subsequent_indent="    "), "  │ "))

        # -------------------------------------------------------------------------- latency
        t_recall = _median_ms(lambda: m.recall(QUESTION, namespace=NAMESPACE, k=8))
        t_context = _median_ms(lambda: m.context(QUESTION, budget=BUDGET, namespace=NAMESPACE,
                                                 session=last_session, recent_turns=4, k=20))
    _heading("Latency of each step (this machine, wall clock)")
    print_table(("step", "time"), [
        (f"ingest {len(turn_ids)} turns (embed + count tokens + one LMDB transaction)",
         f"{t_turns * 1e3:.1f} ms"),
        (f"ingest {len(PREFERENCES) + len(FACTS)} preferences/facts + {len(STATE)} state keys "
         "(one transaction each)", f"{t_facts * 1e3:.1f} ms"),
        ("recall, k=8 (median of 25, query embedding included)", f"{t_recall:.2f} ms"),
        (f"context, budget {BUDGET} (median of 25: recall + state + recent + pack)", f"{t_context:.2f} ms"),
    ], left=1)

    # ------------------------------------------------------------------------------- cost
    history = conv.render() + "\n" + f"user: {QUESTION}"
    full_tokens = counter.count(history)
    packed_tokens = ctx.tokens + counter.count(f"user: {QUESTION}")
    _heading(f"Sending the whole history vs the packed context ({MODEL}, cost model)")
    print(f"whole history: {len(turns)} turns + the question = {full_tokens:,} tokens; "
          f"packed context + the question = {packed_tokens:,} tokens")
    cmp = cost.compare(MODEL, full_tokens, packed_tokens, price_per_hour=2.0)
    print(cmp.table())
    print("(prefill only; FLOPs = 2 x multiply-adds; time at A100 312 TFLOP/s x 0.5 utilization; $2/hour. "
          "This conversation is short:\n the gap grows with every session, see 'recallcore cost' and "
          "benchmarks/RESULTS.md.)")
    print("\nDone: the temporary store is removed. Next: 'recallcore --help'.")
    return 0
