"""Context versus memory: what each request costs, and where the planted fact ends up.

100 synthetic conversations of 50 turns (``recallcore.synth.planted_conversations``: facts planted at
known turns, some updated later, asked about after they were stated). Each conversation is written
turn by turn into its own namespace of one store (model-free ``HashingEmbedder`` vectors, the
built-in token estimator). Two ways to build the prompt of every request:

(a) context-only: the whole history so far (``"[date] role: text"`` lines, as ``Memory.context``
    renders turns), read from the store with ``Memory.history``;
(b) recallcore: ``Memory.context(query, budget=B, session=<current>, recent_turns=5, k=K)``: the
    last 5 turns of the session plus the top-K recalled memories (default 10), never more than B tokens.

Requests: every user turn (query = the user's message), and every planted question, asked right
after its ``asked_after`` turn. Reported per turn index: prompt tokens (built-in estimator, the
question/message included on both sides), prefill FLOPs and estimated prefill time
(``recallcore.cost``, Llama 3.1 8B, A100 312 TFLOP/s x 0.5), context-assembly time (measured), and
for questions whether the evidence turn is in the prompt and in which third (start / middle / end)
of the prompt's items it sits.

    PYTHONPATH=python python3 benchmarks/bench_conversations.py            # the full run (~15 s here)
    PYTHONPATH=python python3 benchmarks/bench_conversations.py --conversations 10 --no-plots

Writes ``benchmarks/results/conversations_tokens_flops.png`` and
``benchmarks/results/conversations_fact_position.png`` and prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

import numpy as np

from recallcore import Memory, cost
from recallcore.embedders import HashingEmbedder
from recallcore.eval import THIRDS, evidence_positions
from recallcore.synth import planted_conversations
from recallcore.tokens import get_counter

MODEL = "llama-3.1-8b"


def _line(ts: float, role: str, text: str) -> str:
    return f"{datetime.fromtimestamp(ts, tz=timezone.utc).strftime('%Y-%m-%d')} {role}: {text}"


def run(n_conversations: int, n_turns: int, budget: int, recent: int, seed: int,
        k: int = 10) -> dict[str, Any]:
    """Run the experiment; returns per-request rows."""
    counter = get_counter(None)
    convs = planted_conversations(n_conversations, n_turns, seed=seed)
    turn_rows: list[dict[str, Any]] = []
    q_rows: list[dict[str, Any]] = []
    tmp = tempfile.mkdtemp(prefix="bench-conv-")
    try:
        bar: Any = None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm

                bar = tqdm(total=len(convs), unit="conv", file=sys.stderr)
            except ImportError:
                bar = None
        with Memory(os.path.join(tmp, "store"), embedder=HashingEmbedder(256), durable=False,
                    map_size=1 << 30) as m:
            for conv in convs:
                ns = conv.id
                asked: dict[str, list[Any]] = defaultdict(list)
                for q in conv.questions:
                    asked[q.meta["asked_after"]].append(q)
                dia_to_id: dict[str, int] = {}
                for t in conv.turns:
                    ts = float(t.ts or 0.0) + 60.0 * t.index
                    role = "user" if t.speaker == "user" else "assistant"
                    session = f"session_{t.session}"
                    rid = m.add(t.text, namespace=ns, session=session, kind="turn", role=role, ts=ts,
                                metadata={"dia_id": t.dia_id})
                    dia_to_id[t.dia_id] = rid
                    requests: list[tuple[str, Any]] = []
                    if role == "user":
                        requests.append(("turn", None))
                    requests.extend(("question", q) for q in asked.get(t.dia_id, []))
                    for _kind, q in requests:
                        query = t.text if q is None else q.question
                        extra = "" if q is None else "\n" + _line(ts, "user", q.question)
                        # (a) the whole history, as the app would read and render it
                        t0 = time.perf_counter()
                        hist = m.history(ns)
                        full_text = "\n".join(_line(r.ts, r.role or "user", r.text) for r in hist) + extra
                        t_full = time.perf_counter() - t0
                        full_tokens = counter.count(full_text)
                        # (b) recallcore's packed context
                        t0 = time.perf_counter()
                        ctx = m.context(query, budget=budget, namespace=ns, session=session,
                                        recent_turns=recent, k=k)
                        t_mem = time.perf_counter() - t0
                        mem_tokens = ctx.tokens + (counter.count(extra) if extra else 0)
                        row = {"conv": ns, "turn": t.index, "full_tokens": full_tokens,
                               "mem_tokens": mem_tokens, "t_full": t_full, "t_mem": t_mem}
                        if q is None:
                            turn_rows.append(row)
                            continue
                        ev_id = dia_to_id[q.evidence[0]]
                        full_ids = [r.id for r in hist] + ["question"]
                        ordered = sorted(ctx.manifest, key=lambda i: i.position)
                        mem_ids = [i.id for i in ordered] + ["question"]
                        pa = evidence_positions(full_ids, [ev_id])
                        pb = evidence_positions(mem_ids, [ev_id])
                        section = next((i.section for i in ctx.manifest if i.id == ev_id), None)
                        row.update(category=q.category, fact_turn=conv.turn(q.evidence[0]).index,
                                   full_in=bool(pa), full_third=pa[0].third if pa else None,
                                   full_rel=pa[0].relative if pa else None,
                                   mem_in=bool(pb), mem_third=pb[0].third if pb else None,
                                   mem_rel=pb[0].relative if pb else None, mem_section=section)
                        q_rows.append(row)
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"turns": turn_rows, "questions": q_rows, "counter": counter.name}


def _flops(n: int) -> float:
    return float(cost.prefill_flops(MODEL, n).total)


def _secs(n: int) -> float:
    return cost.prefill_time(MODEL, n)


def summarize(res: dict[str, Any], budget: int, recent: int, k: int = 10) -> str:
    """A Markdown summary of the run."""
    turns, qs = res["turns"], res["questions"]
    by_turn: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in turns:
        by_turn[r["turn"]].append(r)
    out = []
    out.append("| turn | context-only tokens | recallcore tokens | prefill FLOPs (a / b) "
               "| est. prefill time (a / b) | assembly time (a / b, median) |")
    out.append("| ---: | ---: | ---: | ---: | ---: | ---: |")
    idx = sorted(by_turn)
    picks = [i for i in idx if i in (0, 10, 20, 30, 40) or i == idx[-1]]
    for i in picks:
        rows = by_turn[i]
        fa = statistics.mean(r["full_tokens"] for r in rows)
        mb = statistics.mean(r["mem_tokens"] for r in rows)
        out.append(
            f"| {i} | {fa:,.0f} | {mb:,.0f} | {cost._fmt_flops(_flops(round(fa)))} / "
            f"{cost._fmt_flops(_flops(round(mb)))} | {cost._fmt_seconds(_secs(round(fa)))} / "
            f"{cost._fmt_seconds(_secs(round(mb)))} | "
            f"{statistics.median(r['t_full'] for r in rows) * 1e3:.2f} ms / "
            f"{statistics.median(r['t_mem'] for r in rows) * 1e3:.2f} ms |")
    n = len(qs)
    mem_in = sum(r["mem_in"] for r in qs)
    full_mid = sum(r["full_third"] == "middle" for r in qs)
    lines = ["", f"Planted-fact questions: {n} (asked after turns "
                 f"{min(r['turn'] for r in qs)}-{max(r['turn'] for r in qs)}).", "",
             "| | fact in prompt | in start third | in middle third | in end third | mean prompt tokens |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    label_b = f"(b) recallcore: budget {budget:,}, last {recent} turns + top-{k} recall"
    for label, key in (("(a) context-only: whole history", "full"), (label_b, "mem")):
        inn = [r for r in qs if r[f"{key}_in"]]
        thirds = {t: sum(r[f"{key}_third"] == t for r in inn) for t in THIRDS}
        tok = statistics.mean(r[f"{key}_tokens"] for r in qs)
        lines.append(f"| {label} | {len(inn) / n:.1%} ({len(inn)}/{n}) | "
                     + " | ".join(f"{thirds[t] / max(1, len(inn)):.1%}" for t in THIRDS) + f" | {tok:,.0f} |")
    cats = sorted({r["category"] for r in qs})
    per_cat = []
    for c in cats:
        rows_c = [r for r in qs if r["category"] == c]
        per_cat.append(f"cat {c}: {sum(r['mem_in'] for r in rows_c) / len(rows_c):.1%} (n={len(rows_c)})")
    lines += ["", "recallcore fact-in-prompt rate by question category (1 literal, 2 paraphrased, 3 updated "
              "fact): " + ", ".join(per_cat) + "."]
    sec: dict[str, int] = defaultdict(int)
    for r in qs:
        if r["mem_in"]:
            sec[r["mem_section"]] += 1
    found = ", ".join(f"{name} {v}" for name, v in sorted(sec.items()))
    lines.append(f"Sections holding the facts (b) found: {found}; (a) holds the fact in the middle third "
                 f"for {full_mid / n:.1%} of questions, "
                 f"(b) has it in the prompt for {mem_in / n:.1%}.")
    return "\n".join(out + lines)


def plot(res: dict[str, Any], budget: int, out_dir: str, k: int = 10) -> list[str]:
    """Write the PNG plots; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    by_turn: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in res["turns"]:
        by_turn[r["turn"]].append(r)
    idx = sorted(by_turn)
    fa = np.array([np.mean([r["full_tokens"] for r in by_turn[i]]) for i in idx])
    mb = np.array([np.mean([r["mem_tokens"] for r in by_turn[i]]) for i in idx])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(idx, fa, "o-", ms=3, label="(a) context-only: whole history")
    ax1.plot(idx, mb, "o-", ms=3, label=f"(b) recallcore: last 5 turns + top-{k} recall, budget {budget:,}")
    ax1.axhline(budget, color="grey", lw=0.8, ls="--", label=f"budget ({budget:,} tokens)")
    ax1.set_xlabel("turn index of the request")
    ax1.set_ylabel("prompt tokens (built-in cl100k estimator)")
    ax1.set_title("Prompt tokens per request (mean of conversations)")
    ax1.legend(fontsize=8)
    ax2.plot(idx, [_flops(round(x)) for x in fa], "o-", ms=3, label="(a) context-only")
    ax2.plot(idx, [_flops(round(x)) for x in mb], "o-", ms=3, label="(b) recallcore")
    ax2.set_yscale("log")
    ax2.set_xlabel("turn index of the request")
    ax2.set_ylabel("prefill FLOPs (Llama 3.1 8B, cost model)")
    ax2.set_title("Prefill FLOPs per request")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    p1 = os.path.join(out_dir, "conversations_tokens_flops.png")
    fig.savefig(p1, dpi=110)
    plt.close(fig)

    qs = res["questions"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    bins = np.linspace(0, 1, 13)
    ax1.hist([r["full_rel"] for r in qs if r["full_in"]], bins=bins, alpha=0.6, label="(a) context-only")
    ax1.hist([r["mem_rel"] for r in qs if r["mem_in"]], bins=bins, alpha=0.6, label="(b) recallcore")
    for x in (1 / 3, 2 / 3):
        ax1.axvline(x, color="grey", lw=0.8, ls="--")
    ax1.set_xlabel("relative position of the planted fact in the prompt (0 = start, 1 = end)")
    ax1.set_ylabel("questions")
    ax1.set_title("Where the planted fact sits")
    ax1.legend(fontsize=8)
    n = len(qs)
    width = 0.38
    x = np.arange(4)
    for k, (key, label) in enumerate((("full", "(a) context-only"), ("mem", "(b) recallcore"))):
        vals = [sum(r[f"{key}_third"] == t for r in qs) / n for t in THIRDS]
        vals.append(sum(not r[f"{key}_in"] for r in qs) / n)
        ax2.bar(x + (k - 0.5) * width, vals, width, label=label)
    ax2.set_xticks(x, ["start third", "middle third", "end third", "not in prompt"])
    ax2.set_ylabel("share of questions")
    ax2.set_title(f"Planted fact by prompt third ({n} questions)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    p2 = os.path.join(out_dir, "conversations_fact_position.png")
    fig.savefig(p2, dpi=110)
    plt.close(fig)
    return [p1, p2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conversations", type=int, default=100)
    ap.add_argument("--turns", type=int, default=50)
    ap.add_argument("--budget", type=int, default=1024)
    ap.add_argument("--recent", type=int, default=5)
    ap.add_argument("--k", type=int, default=10, help="memories recalled as candidates (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = run(args.conversations, args.turns, args.budget, args.recent, args.seed, args.k)
    elapsed = time.perf_counter() - t0
    print(f"{args.conversations} conversations x {args.turns} turns, seed {args.seed}, budget {args.budget}, "
          f"recent {args.recent}, k {args.k}: "
          f"{len(res['turns'])} turn requests + {len(res['questions'])} questions in {elapsed:.1f} s "
          f"(tokens: {res['counter']})\n")
    print(summarize(res, args.budget, args.recent, args.k))
    if not args.no_plots:
        for p in plot(res, args.budget, args.out, args.k):
            print(f"\nwrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
