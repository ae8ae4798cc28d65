"""Context packing speed: the C++ packer alone, through the binding, and through recallcore.pack.

    PYTHONPATH=python python3 benchmarks/bench_pack.py            # all cases
    PYTHONPATH=python python3 benchmarks/bench_pack.py --repeat 20000

"core" times ctx::pack() in C++ (arguments parsed once, GIL released, steady_clock around each call);
"binding" times _core.pack_sections (numpy in and out); "pack()" times recallcore.pack on texts,
token counting and rendering included. The peer is a plain Python greedy packer (sort by score, add
while it fits), the loop most applications write by hand. Prints medians and p99s; asserts nothing.
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Callable

import numpy as np

import recallcore
from recallcore import _core


def make_section(n: int, rng: np.random.Generator, *, summaries: bool = True, dim: int = 0) -> dict:
    tokens = rng.integers(8, 40, n).astype(np.uint32)
    sec = {
        "name": "memories",
        "ids": np.arange(n, dtype=np.uint64),
        "scores": rng.random(n).astype(np.float32),
        "tokens": tokens,
        "time": 1.7e9 + rng.random(n) * 1e6,
        "framing": np.full(n, 6, dtype=np.uint32),  # "(2026-01-01) user: "
    }
    if summaries:
        sec["summary_tokens"] = np.maximum(tokens // 4, 1).astype(np.uint32)
    if dim:
        sec["vectors"] = rng.standard_normal((n, dim)).astype(np.float32)
    return sec


def stats(seconds: np.ndarray | list[float]) -> tuple[float, float]:
    a = np.asarray(seconds) * 1e6
    return float(np.median(a)), float(np.percentile(a, 99))


def time_calls(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def naive_pack(texts: list[str], scores: list[float], budget: int, sep: str) -> tuple[str, list[int]]:
    """The hand-written peer: best score first, add while the running estimate fits."""
    count = recallcore.packing._default_count
    chosen: list[int] = []
    used, sep_t = 0, count(sep)
    for i in sorted(range(len(texts)), key=lambda i: -scores[i]):
        cost = count(texts[i]) + (sep_t if chosen else 0)
        if used + cost <= budget:
            chosen.append(i)
            used += cost
    return sep.join(texts[i] for i in chosen), chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"recallcore {recallcore.__version__}, SIMD {recallcore.simd_level()}, "
          f"python {platform.python_version()}, {platform.machine()}")
    print(f"{'case':58s} {'median µs':>10s} {'p99 µs':>9s}")

    def row(name: str, secs) -> float:
        med, p99 = stats(secs)
        print(f"{name:58s} {med:10.2f} {p99:9.2f}")
        return med

    sec200 = make_section(200, rng)
    sec1000 = make_section(1000, rng)
    sec64 = make_section(64, rng)
    big64 = make_section(64, rng)
    big64["tokens"] = big64["tokens"] * 4  # ~4,700 tokens of candidates: the DP really runs at 2,048
    secv = make_section(200, rng, dim=384)
    pinned = make_section(5, rng)
    pinned.update(name="state", pinned=True, ids=np.arange(10_000, 10_005, dtype=np.uint64))
    core_cases = [
        # (label, sections, budget, options, repeat divisor)
        ("200 cand -> 2048 tok, greedy, edges", [sec200], 2048, {"mode": "greedy"}, 1),
        ("200 cand -> 2048 tok, greedy, chronological", [sec200], 2048,
         {"mode": "greedy", "order": "chronological"}, 1),
        ("200 cand -> 2048 tok, greedy, score", [sec200], 2048, {"mode": "greedy", "order": "score"}, 1),
        ("200 cand -> 2048 tok, auto (greedy at this size)", [sec200], 2048, {}, 1),
        ("5 pinned + 200 cand -> 2048 tok, greedy", [pinned, sec200], 2048, {"mode": "greedy"}, 1),
        ("1000 cand -> 8192 tok, greedy", [sec1000], 8192, {"mode": "greedy"}, 5),
        ("64 cand -> 512 tok, greedy", [sec64], 512, {"mode": "greedy"}, 1),
        ("64 cand -> 512 tok, auto (exact DP)", [sec64], 512, {}, 5),
        ("64 cand -> 2048 tok, greedy", [big64], 2048, {"mode": "greedy"}, 1),
        ("64 cand -> 2048 tok, exact DP", [big64], 2048, {"mode": "exact"}, 10),
        ("200 cand (dim 384) -> 2048 tok, greedy + dedupe 0.9", [secv], 2048,
         {"mode": "greedy", "dedupe": 0.9}, 10),
    ]
    for label, sections, budget, opts, div in core_cases:
        reps = max(100, args.repeat // div)
        secs = _core._pack_sections_timing(sections, budget, separator_tokens=2, repeat=reps, **opts)
        row("core  " + label, secs)
    huge64 = make_section(64, rng)
    huge64["tokens"] = huge64["tokens"] * 16  # the auto ceiling: 64 candidates, 8,192 tokens
    row("core  64 cand -> 8192 tok, auto (exact DP at the ceiling)",
        _core._pack_sections_timing([huge64], 8192, separator_tokens=2, repeat=max(50, args.repeat // 50)))
    for label, sec, budget in (("64 cand -> 512 tok", sec64, 512), ("64 cand -> 2048 tok", big64, 2048),
                               ("64 cand -> 8192 tok", huge64, 8192)):
        value = {}
        for mode in ("greedy", "exact"):
            r = _core.pack_sections([sec], budget, mode=mode, separator_tokens=2)
            full = r["fidelity"] == 0
            value[mode] = float(r["scores"][full].sum() + 0.5 * r["scores"][~full].sum())
        print(f"      value {label}: exact {value['exact']:.3f} vs greedy {value['greedy']:.3f} "
              f"(+{100 * (value['exact'] / value['greedy'] - 1):.2f}%)")
    row("binding pack_sections, 200 cand -> 2048 tok (numpy in/out)",
        time_calls(lambda: _core.pack_sections([sec200], 2048, mode="greedy", separator_tokens=2),
                   args.repeat))

    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "while", "agent", "remembers"]
    texts = [" ".join(rng.choice(words, int(rng.integers(20, 120)))) for _ in range(200)]
    scores = rng.random(200).tolist()
    items = [{"text": t, "score": s, "summary": t[: len(t) // 4]} for t, s in zip(texts, scores)]
    plain = [{"text": t, "score": s} for t, s in zip(texts, scores)]
    reps = max(50, args.repeat // 50)
    ours = row("pack()  200 texts + summaries -> 2048 tok, greedy",
               time_calls(lambda: recallcore.pack(items, 2048, mode="greedy"), reps))
    ours_plain = row("pack()  200 texts -> 2048 tok, greedy",
                     time_calls(lambda: recallcore.pack(plain, 2048, mode="greedy"), reps))
    peer = row("peer  naive Python greedy, 200 texts -> 2048 tok",
               time_calls(lambda: naive_pack(texts, scores, 2048, "\n\n"), reps))
    print(f"ratio pack() / naive greedy (no summaries): {ours_plain / peer:.2f}x; "
          f"with summaries: {ours / peer:.2f}x")
    got = recallcore.pack(plain, 2048, mode="greedy")
    _, naive_ids = naive_pack(texts, scores, 2048, "\n\n")
    print(f"total score packed: pack() {sum(i.score for i in got.items):.2f} ({len(got.items)} items, "
          f"{got.tokens} tok); naive greedy {sum(scores[i] for i in naive_ids):.2f} ({len(naive_ids)} items)")


if __name__ == "__main__":
    main()
