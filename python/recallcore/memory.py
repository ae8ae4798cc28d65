"""The durable memory store: :class:`Memory`."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from datetime import datetime, timezone
from typing import Any, Optional, Union

import numpy as np

from . import _core
from .context import Context
from .records import Hit, Record

TimeLike = Union[datetime, float, int]

#: Largest text (and summary) accepted by :meth:`Memory.add`, in UTF-8 bytes.
MAX_TEXT_BYTES = 1 << 20
_UNSET: Any = object()


def to_unix(ts: Optional[TimeLike], *, name: str = "ts", default_now: bool = True) -> float:
    """A ``datetime`` (naive ones are taken as UTC) or Unix seconds -> float Unix seconds."""
    if ts is None:
        if default_now:
            return time.time()
        raise ValueError(f"{name} must not be None")
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
        return ts.timestamp()
    if isinstance(ts, bool) or not isinstance(ts, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a datetime or Unix seconds, got {type(ts).__name__}")
    value = float(ts)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _check_text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, got {type(value).__name__}")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name} is not valid UTF-8 (it contains lone surrogates at position {exc.start})") from None
    if len(encoded) > MAX_TEXT_BYTES:
        raise ValueError(f"{name} is {len(encoded)} bytes of UTF-8; the limit is {MAX_TEXT_BYTES}")
    return value


def _check_name(value: Any, name: str, *, optional: bool = False) -> str:
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must be a non-empty string")
    _check_text(value, name)
    return value


def _metadata_json(metadata: Optional[Mapping[str, Any]]) -> str:
    if metadata is None:
        return ""
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        return json.dumps(dict(metadata), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata is not JSON-serialisable: {exc}") from None


def _entities(entities: Iterable[str]) -> list[str]:
    if isinstance(entities, str):
        raise TypeError("entities must be a list of strings, not a single string")
    out = []
    for e in entities:
        out.append(_check_name(e, "entity"))
    return out


def _importance(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"importance must be a number, got {type(value).__name__}")
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"importance must be within [0, 1], got {v}")
    return v


def _ttl(value: Any) -> float:
    if value is None:
        return 0.0
    if hasattr(value, "total_seconds"):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"ttl must be seconds or a timedelta, got {type(value).__name__}")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"ttl must be a positive finite number of seconds, got {v}")
    return v


def _as_vector(vector: Any, dim: int) -> np.ndarray:
    arr = np.asarray(vector)
    if arr.dtype != np.float32:
        if not np.issubdtype(arr.dtype, np.number):
            raise TypeError(f"vector must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float32)
    if arr.ndim != 1:
        raise ValueError(f"vector must be 1-D, got shape {arr.shape}")
    if dim == 0:
        raise ValueError("this store is text-only (created without dim): vectors are not accepted")
    if arr.shape[0] != dim:
        raise ValueError(f"vector has {arr.shape[0]} dimensions; this store's dim is {dim}")
    # NaN/inf are rejected by the core, before anything is written.
    return np.ascontiguousarray(arr)


class State(MutableMapping[str, Any]):
    """A namespace's small structured state (JSON values), each write its own transaction.

    >>> import tempfile, recallcore
    >>> with recallcore.Memory(tempfile.mkdtemp()) as m:
    ...     s = m.state("alice")
    ...     s["task"] = {"goal": "book flights", "step": 2}
    ...     s["task"]["step"]
    2
    """

    def __init__(self, store: _core.Store, namespace: str) -> None:
        self._store = store
        self._ns = namespace

    def __getitem__(self, key: str) -> Any:
        raw = self._store.state_get(self._ns, self._key(key))
        if raw is None:
            raise KeyError(key)
        return json.loads(raw)

    def __setitem__(self, key: str, value: Any) -> None:
        try:
            raw = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"state value for {key!r} is not JSON-serialisable: {exc}") from None
        self._store.state_set(self._ns, self._key(key), raw)

    def __delitem__(self, key: str) -> None:
        if not self._store.state_delete(self._ns, self._key(key)):
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter([k for k, _ in self._store.state_items(self._ns)])

    def __len__(self) -> int:
        return len(self._store.state_items(self._ns))

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return [(k, json.loads(v)) for k, v in self._store.state_items(self._ns)]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.items())

    @staticmethod
    def _key(key: Any) -> str:
        if not isinstance(key, str) or not key:
            raise TypeError("state keys must be non-empty strings")
        return key

    def __repr__(self) -> str:
        return f"State({self._ns!r}, {self.to_dict()!r})"


class Memory:
    """A durable, searchable memory store for agents, in one directory (an LMDB environment).

    LMDB is the source of truth; every acknowledged write is on disk (fsync) unless
    ``durable=False`` (then it survives a process crash but not a power loss). In-memory indexes are
    derived, snapshotted on :meth:`checkpoint`/:meth:`close`, and caught up from the change log on
    open and whenever another process has written.

    Args:
        path: the store's directory (created if missing).
        dim: vector dimension; ``None`` takes the store's (or the embedder's) dim. A store without a
            dim is text-only (lexical search only).
        metric: ``"cosine"``, ``"ip"`` or ``"l2"``; ``None`` takes the store's (cosine for a new one).
        embedder: turns texts into vectors when ``vector=`` is not given (see ``recallcore.embedders``).
        token_counter: counts tokens at write time (see ``recallcore.tokens``); fixed at creation.
        readonly: open for reading only (other processes may write).
        durable: fsync every commit (default) or not.
        scan_cache_bytes: memory for the per-namespace vector copies that recall scans exactly
            (int8 + f32, ~5 bytes per dimension per vector, built on a namespace's second search);
            beyond it the least recently searched namespaces are dropped and rebuilt when searched
            again. See ``stats()["scan_cache"]``.

    >>> import tempfile, numpy as np, recallcore
    >>> with recallcore.Memory(tempfile.mkdtemp(), dim=4) as m:
    ...     rid = m.add("I moved to Lisbon", namespace="alice", kind="fact", vector=np.ones(4, np.float32))
    ...     m.get(rid).text
    'I moved to Lisbon'
    """

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        dim: Optional[int] = None,
        metric: Optional[str] = None,
        embedder: Any = None,
        token_counter: Any = None,
        readonly: bool = False,
        durable: bool = True,
        map_size: int = 64 << 20,
        M: int = 16,
        ef_construction: int = 200,
        ef_search: int = 64,
        storage: str = "f32",
        checkpoint_every: int = 50_000,
        scan_cache_bytes: int = 256 << 20,
    ) -> None:
        from . import tokens as _tokens

        if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        path = os.fspath(path)
        if metric is not None and metric not in ("cosine", "ip", "l2"):
            raise ValueError(f"metric must be 'cosine', 'ip' or 'l2', got {metric!r}")
        self._embedder = None
        if embedder is not None:
            from .embedders import get_embedder

            self._embedder = get_embedder(embedder)
            if dim is not None and dim != self._embedder.dim:
                raise ValueError(f"dim={dim} does not match the embedder's dim {self._embedder.dim}")
            dim = self._embedder.dim
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0):
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        self._counter = _tokens.get_counter(token_counter)
        self._store = _core.Store(
            path, dim=dim or 0, metric=metric or "", embedder=self._embedder.name if self._embedder else "",
            token_counter=self._counter.name if token_counter is not None else "", readonly=readonly,
            durable=durable, map_size=map_size, M=M, ef_construction=ef_construction, ef_search=ef_search,
            storage=storage, checkpoint_every=checkpoint_every, scan_cache_bytes=scan_cache_bytes,
        )
        stored_counter = self._store.token_counter
        if token_counter is None and stored_counter != self._counter.name:
            # The store keeps the counter it was created with; reopen with the same one.
            try:
                self._counter = _tokens.get_counter(stored_counter)
            except (ValueError, ImportError) as exc:
                self._store.close()
                raise ValueError(f"this store counts tokens with {stored_counter!r}; pass token_counter= "
                                 f"with that counter to open it ({exc})") from None
        self.path = path

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Checkpoint the indexes and release the store. Idempotent."""
        self.stop_expiry()
        self._store.close()

    @property
    def closed(self) -> bool:
        return bool(self._store.closed)

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"dim={self.dim}, metric={self.metric!r}"
        return f"Memory({self.path!r}, {state})"

    @property
    def dim(self) -> int:
        return int(self._store.dim)

    @property
    def metric(self) -> str:
        return str(self._store.metric)

    @property
    def token_counter(self) -> Any:
        return self._counter

    @property
    def embedder(self) -> Any:
        return self._embedder

    # -- writes --------------------------------------------------------------------------------
    def _prepare(self, text: Any, *, namespace: Any = "default", session: Any = None, kind: Any = "turn",
                 role: Any = None, ts: Optional[TimeLike] = None, importance: Any = 0.5,
                 metadata: Optional[Mapping[str, Any]] = None, entities: Iterable[str] = (), vector: Any = None,
                 summary: Optional[str] = None, ttl: Any = None, supersedes: Optional[int] = None,
                 ) -> tuple[tuple[Any, ...], Optional[np.ndarray]]:
        text = _check_text(text, "text")
        summary = "" if summary is None else _check_text(summary, "summary")
        ns = _check_name(namespace, "namespace")
        sess = _check_name(session, "session", optional=True)
        kind = _check_name(kind, "kind")
        role = _check_name(role, "role", optional=True)
        vec = None if vector is None else _as_vector(vector, self.dim)
        if supersedes is not None and (isinstance(supersedes, bool) or not isinstance(supersedes, (int, np.integer))):
            raise TypeError("supersedes must be a record id (int)")
        item = (text, summary, ns, sess, kind, role, _metadata_json(metadata), _entities(entities),
                to_unix(ts), _importance(importance), _ttl(ttl), 0, 0, -1, int(supersedes or 0))
        return item, vec

    def _write(self, items: list[tuple[Any, ...]], vectors: list[Optional[np.ndarray]], *,
               dedupe: str = "keep", dedupe_threshold: float = 0.95) -> list[int]:
        final, matrix = self._finalise(items, vectors)
        if dedupe == "keep":
            return list(self._store.add_batch(final, matrix))
        return list(self._store.add_batch(final, matrix, dedupe, float(dedupe_threshold)))

    def _finalise(self, items: list[tuple[Any, ...]],
                  vectors: list[Optional[np.ndarray]]) -> tuple[list[tuple[Any, ...]], Optional[np.ndarray]]:
        """Embeds what has no vector and adds token counts: the tuples and matrix add_batch takes."""
        texts = [it[0] for it in items]
        missing = [i for i, v in enumerate(vectors) if v is None]
        if self._embedder is not None and missing:
            embedded = np.asarray(self._embedder.embed([texts[i] for i in missing]), dtype=np.float32)
            if embedded.shape != (len(missing), self.dim):
                raise ValueError(f"embedder returned shape {embedded.shape}, expected {(len(missing), self.dim)}")
            for j, i in enumerate(missing):
                vectors[i] = _as_vector(embedded[j], self.dim)
        counts = self._counter.count_many(texts)
        summaries = [it[1] for it in items]
        summary_idx = [i for i, s in enumerate(summaries) if s]
        summary_counts = self._counter.count_many([summaries[i] for i in summary_idx]) if summary_idx else []
        scount = dict(zip(summary_idx, summary_counts))
        rows: list[np.ndarray] = []
        final = []
        for i, it in enumerate(items):
            row = -1
            if vectors[i] is not None:
                row = len(rows)
                rows.append(vectors[i])  # type: ignore[arg-type]
            final.append(it[:11] + (int(counts[i]), int(scount.get(i, 0)), row, it[14]))
        matrix = np.stack(rows) if rows else None
        return final, matrix

    def add(self, text: str, *, namespace: str = "default", session: Optional[str] = None, kind: str = "turn",
            role: Optional[str] = None, ts: Optional[TimeLike] = None, importance: float = 0.5,
            metadata: Optional[Mapping[str, Any]] = None, entities: Iterable[str] = (), vector: Any = None,
            summary: Optional[str] = None, ttl: Any = None, supersedes: Optional[int] = None,
            dedupe: str = "keep", dedupe_threshold: float = 0.95) -> int:
        """Store one memory durably (one LMDB transaction) and return its id.

        ``kind`` is one of turn, fact, preference, entity, document, summary, state, or your own
        string. ``ts`` defaults to now. ``vector`` (or the store's embedder) makes it searchable by
        similarity; its text is always searchable lexically. Token counts of ``text`` and
        ``summary`` are computed here, once, by the store's token counter. ``supersedes=id`` marks
        an older fact as replaced by this one (temporal validity).

        ``dedupe`` (default ``"keep"``: always write) looks for a current record of the same
        namespace and kind with the same normalised text (case, punctuation and spacing ignored) or,
        with a vector, a cosine/inner-product similarity >= ``dedupe_threshold``: ``"skip"`` returns
        its id without writing; ``"merge"`` folds this one into it (earliest ``ts``, highest
        importance, ``repeats + 1``, union of entities) and returns its id.

        >>> import tempfile, recallcore
        >>> with recallcore.Memory(tempfile.mkdtemp()) as m:
        ...     m.add("Prefers window seats", namespace="bob", kind="preference")
        1
        """
        item, vec = self._prepare(text, namespace=namespace, session=session, kind=kind, role=role, ts=ts,
                                  importance=importance, metadata=metadata, entities=entities, vector=vector,
                                  summary=summary, ttl=ttl, supersedes=supersedes)
        if dedupe not in ("keep", "skip", "merge"):
            raise ValueError(f"dedupe must be 'keep', 'skip' or 'merge', got {dedupe!r}")
        if isinstance(dedupe_threshold, bool) or not isinstance(dedupe_threshold, (int, float)) \
                or not 0.0 < dedupe_threshold <= 1.0:
            raise ValueError(f"dedupe_threshold must be within (0, 1], got {dedupe_threshold!r}")
        return self._write([item], [vec], dedupe=dedupe, dedupe_threshold=dedupe_threshold)[0]

    def add_many(self, items: Iterable[Mapping[str, Any]], *, batch_size: int = 1000,
                 progress: bool = False) -> list[int]:
        """Store many memories: each item is a dict of :meth:`add`'s arguments (``text`` required).

        One LMDB transaction per batch of ``batch_size`` items; ``progress=True`` shows a tqdm bar.
        Every item of a batch is validated before anything of that batch is written.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        items = list(items)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(items), unit="item", desc="recallcore add_many")
        ids: list[int] = []
        try:
            for start in range(0, len(items), batch_size):
                prepared, vectors = [], []
                for raw in items[start:start + batch_size]:
                    if not isinstance(raw, Mapping):
                        raise TypeError(f"add_many items must be dicts, got {type(raw).__name__}")
                    kwargs = dict(raw)
                    if "text" not in kwargs:
                        raise ValueError("every add_many item needs a 'text'")
                    text = kwargs.pop("text")
                    item, vec = self._prepare(text, **kwargs)
                    prepared.append(item)
                    vectors.append(vec)
                ids.extend(self._write(prepared, vectors))
                if bar is not None:
                    bar.update(len(prepared))
        finally:
            if bar is not None:
                bar.close()
        return ids

    def update(self, id: int, *, text: Any = _UNSET, summary: Any = _UNSET, kind: Any = _UNSET,
               role: Any = _UNSET, ts: Any = _UNSET, importance: Any = _UNSET, metadata: Any = _UNSET,
               entities: Any = _UNSET, vector: Any = _UNSET, ttl: Any = _UNSET,
               archived: Any = _UNSET) -> None:
        """Change fields of a record in one transaction (token counts and indexes follow)."""
        patch: dict[str, Any] = {}
        if text is not _UNSET:
            patch["text"] = _check_text(text, "text")
            patch["tokens_text"] = int(self._counter.count(patch["text"]))
        if summary is not _UNSET:
            patch["summary"] = "" if summary is None else _check_text(summary, "summary")
            patch["tokens_summary"] = int(self._counter.count(patch["summary"])) if patch["summary"] else 0
        if kind is not _UNSET:
            patch["kind"] = _check_name(kind, "kind")
        if role is not _UNSET:
            patch["role"] = _check_name(role, "role", optional=True)
        if ts is not _UNSET:
            patch["ts"] = to_unix(ts, default_now=False)
        if importance is not _UNSET:
            patch["importance"] = _importance(importance)
        if metadata is not _UNSET:
            patch["metadata"] = _metadata_json(metadata)
        if entities is not _UNSET:
            patch["entities"] = _entities(entities)
        if vector is not _UNSET:
            patch["vector"] = _as_vector(vector, self.dim)
        if ttl is not _UNSET:
            patch["ttl"] = _ttl(ttl)
        if archived is not _UNSET:
            if not isinstance(archived, bool):
                raise TypeError(f"archived must be a bool, got {type(archived).__name__}")
            patch["archived"] = archived
        self._store.update(self._id(id), patch)

    def delete(self, ids: Union[int, Sequence[int]]) -> None:
        """Delete records (all must exist; otherwise nothing is deleted and ValueError is raised)."""
        id_list = [ids] if isinstance(ids, (int, np.integer)) else list(ids)
        self._store.remove([self._id(i) for i in id_list])

    @staticmethod
    def _id(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"record ids are ints, got {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"unknown record id {value}")
        return int(value)

    # -- reads ---------------------------------------------------------------------------------
    def get(self, id: int) -> Optional[Record]:
        """The record with this id, or None."""
        t = self._store.get(self._id(id))
        return None if t is None else Record._from_core(t)

    def get_vector(self, id: int) -> Optional[np.ndarray]:
        """The vector stored with record ``id`` (float32, exactly as written), or None if it has none.

        Raises ValueError for an unknown id.
        """
        return self._store.get_vectors([self._id(id)])[0]

    def namespaces(self) -> list[str]:
        """Every namespace this store has registered (sorted), including those that only hold state."""
        return list(self._store.namespaces())

    def history(self, namespace: str, session: Optional[str] = None, *, last: Optional[int] = None,
                since: Optional[TimeLike] = None, until: Optional[TimeLike] = None) -> list[Record]:
        """Records of a namespace (or one of its sessions) in time order; ``last=n`` keeps the newest n."""
        if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last <= 0):
            raise ValueError(f"last must be a positive int, got {last!r}")
        rows = self._store.history(_check_name(namespace, "namespace"),
                                   None if session is None else _check_name(session, "session"), last or 0,
                                   -math.inf if since is None else to_unix(since, name="since"),
                                   math.inf if until is None else to_unix(until, name="until"))
        return [Record._from_core(t) for t in rows]

    def list(self, namespace: str, *, kind: Optional[str] = None, since: Optional[TimeLike] = None,
             until: Optional[TimeLike] = None, limit: int = 100,
             cursor: Optional[str] = None) -> tuple[list[Record], Optional[str]]:
        """A page of a namespace's records in time order, and the cursor of the next page (None at the end)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise ValueError(f"limit must be a positive int, got {limit!r}")
        rows, nxt = self._store.list(_check_name(namespace, "namespace"),
                                     None if kind is None else _check_name(kind, "kind"),
                                     -math.inf if since is None else to_unix(since, name="since"),
                                     math.inf if until is None else to_unix(until, name="until"), limit, cursor or "")
        return [Record._from_core(t) for t in rows], (nxt or None)

    def entity(self, namespace: str, name: str) -> list[Record]:
        """Records of a namespace that mention entity ``name`` (case-insensitive), in time order."""
        return [Record._from_core(t) for t in self._store.entity(_check_name(namespace, "namespace"),
                                                                  _check_name(name, "name"))]

    def state(self, namespace: str = "default") -> State:
        """A mutable mapping of small JSON state for a namespace (preferences, current task, ...)."""
        return State(self._store, _check_name(namespace, "namespace"))

    # -- recall --------------------------------------------------------------------------------
    def _query_vector(self, query: Optional[str], vector: Any, mode: str) -> Optional[np.ndarray]:
        if vector is not None:
            return _as_vector(vector, self.dim)
        if self._embedder is not None and query and mode != "lexical":
            return _as_vector(np.asarray(self._embedder.embed([query]), dtype=np.float32)[0], self.dim)
        return None

    def _recall_args(self, query: Optional[str] = None, *, vector: Any = None, namespace: str = "default",
                     k: int = 10, kinds: Optional[Iterable[str]] = None, session: Optional[str] = None,
                     since: Optional[TimeLike] = None, until: Optional[TimeLike] = None,
                     entities: Optional[Iterable[str]] = None, mode: str = "hybrid",
                     recency_half_life: Any = None, diversity: Optional[float] = None,
                     as_of: Optional[TimeLike] = None, include_history: bool = False,
                     include_archived: bool = False, vector_weight: float = 1.0, lexical_weight: float = 1.0,
                     importance_weight: float = 0.5, recency_weight: float = 0.5, now: Optional[TimeLike] = None,
                     fusion: str = "rrf", rrf_k: Optional[int] = None,
                     candidates: Optional[int] = None, allow_empty: bool = False) -> dict[str, Any]:
        """Validated recall arguments as the C++ core takes them (shared by recall and context;
        ``allow_empty``: a context without a query recalls nothing rather than failing)."""
        if mode not in ("hybrid", "vector", "lexical"):
            raise ValueError(f"mode must be 'hybrid', 'vector' or 'lexical', got {mode!r}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if query is not None:
            _check_text(query, "query")
        qvec = self._query_vector(query, vector, mode)
        if not query and qvec is None and not allow_empty:
            raise ValueError("recall needs query text or a vector "
                             "(an empty query with no vector matches nothing)")
        if diversity is not None and not (isinstance(diversity, (int, float)) and 0.0 <= diversity <= 1.0):
            raise ValueError(f"diversity must be within [0, 1], got {diversity!r}")
        if fusion not in ("rrf", "relative"):
            raise ValueError(f"fusion must be 'rrf' or 'relative', got {fusion!r}")
        for opt_name, opt in (("rrf_k", rrf_k), ("candidates", candidates)):
            if opt is not None and (isinstance(opt, bool) or not isinstance(opt, (int, np.integer))
                                    or opt <= 0):
                raise ValueError(f"{opt_name} must be a positive int, got {opt!r}")
        half_life = _ttl(recency_half_life) if recency_half_life is not None else 0.0
        args = {
            "namespace": _check_name(namespace, "namespace"), "text": query or "", "vector": qvec,
            "k": int(k), "mode": mode,
            "kinds": [_check_name(x, "kind") for x in ([kinds] if isinstance(kinds, str) else kinds or [])],
            "session": None if session is None else _check_name(session, "session"),
            "since": -math.inf if since is None else to_unix(since, name="since"),
            "until": math.inf if until is None else to_unix(until, name="until"),
            "entities": [] if entities is None else _entities(entities),
            "now": to_unix(now, name="now"), "as_of": None if as_of is None else to_unix(as_of, name="as_of"),
            "include_history": bool(include_history), "include_archived": bool(include_archived),
            "recency_half_life": half_life, "recency_weight": float(recency_weight),
            "importance_weight": float(importance_weight), "diversity": float(diversity or 0.0),
            "vector_weight": float(vector_weight), "lexical_weight": float(lexical_weight), "fusion": fusion,
            "rrf_k": None if rrf_k is None else int(rrf_k),
            "candidates": None if candidates is None else int(candidates),
        }
        return args

    def recall(self, query: Optional[str] = None, *, vector: Any = None, namespace: str = "default",
               k: int = 10, kinds: Optional[Iterable[str]] = None, session: Optional[str] = None,
               since: Optional[TimeLike] = None, until: Optional[TimeLike] = None,
               entities: Optional[Iterable[str]] = None, mode: str = "hybrid",
               recency_half_life: Any = None, diversity: Optional[float] = None,
               as_of: Optional[TimeLike] = None, include_history: bool = False,
               include_archived: bool = False,
               vector_weight: float = 1.0, lexical_weight: float = 1.0, importance_weight: float = 0.5,
               recency_weight: float = 0.5, now: Optional[TimeLike] = None, fusion: str = "rrf",
               rrf_k: Optional[int] = None, candidates: Optional[int] = None) -> list[Hit]:
        """The ``k`` most relevant live memories of a namespace, best first.

        One C++ call with the GIL released: filters (session, kinds, time range, entities,
        validity, archive, expiry) are applied inside the vector search (an exact scan for small
        namespaces, the HNSW walk with the filter for large ones) and inside BM25. In
        ``mode="hybrid"`` the two candidate lists (``candidates`` deep each, default
        ``max(100, 5k)``) are fused:

        - ``fusion="rrf"`` (default, reciprocal-rank fusion): ``vector_weight / (rrf_k + vector_rank)
          + lexical_weight / (rrf_k + lexical_rank)``; ``rrf_k`` defaults to 10 (see
          ``benchmarks/RESULTS.md`` for the choice).
        - ``fusion="relative"``: ``(vector_weight * norm(similarity) + lexical_weight * norm(bm25)) /
          (vector_weight + lexical_weight)``, each score min-max normalised over its own list's
          candidates (1 when they are all equal), a term dropping out when the record is not in that
          list; so the fused score is within [0, 1]. Slightly better on REALTALK (R@10 0.540 vs 0.535).

        ``mode="vector"`` scores by similarity, ``mode="lexical"`` by BM25. The score is then
        multiplied by the recency factor ``1 - recency_weight + recency_weight * 2**(-age /
        recency_half_life)`` (when ``recency_half_life``, seconds or a timedelta, is given) and the
        importance factor ``1 + importance_weight * (importance - 0.5)``. ``diversity`` in (0, 1]
        applies MMR and drops near-duplicates (cosine >= 0.97 to a better hit). Only facts valid
        now are returned unless ``as_of`` (valid then) or ``include_history=True``. Each
        :class:`Hit` includes its :class:`Record`.

        >>> import tempfile, recallcore
        >>> with recallcore.Memory(tempfile.mkdtemp()) as m:
        ...     _ = m.add("My sister Priya lives in Porto", namespace="u")
        ...     _ = m.add("The weather was nice", namespace="u")
        ...     m.recall("where does Priya live?", namespace="u", k=1)[0].text
        'My sister Priya lives in Porto'
        """
        args = self._recall_args(query, vector=vector, namespace=namespace, k=k, kinds=kinds, session=session,
                                 since=since, until=until, entities=entities, mode=mode,
                                 recency_half_life=recency_half_life, recency_weight=recency_weight,
                                 importance_weight=importance_weight, diversity=diversity, as_of=as_of,
                                 include_history=include_history, include_archived=include_archived, now=now,
                                 vector_weight=vector_weight, lexical_weight=lexical_weight, fusion=fusion,
                                 rrf_k=rrf_k, candidates=candidates)
        results = self._store.recall(args)
        return [Hit._from_core(h, results, i) for i, h in enumerate(results.hits())]

    # -- context -------------------------------------------------------------------------------
    def context(self, query: Optional[str] = None, *, budget: int, vector: Any = None, namespace: str = "default",
                session: Optional[str] = None, recent_turns: int = 5,
                pinned: Iterable[str] = ("state", "preference"), k: int = 50, order: str = "edges",
                format: str = "text", template: Optional[str] = None, as_of: Optional[TimeLike] = None,
                include_history: bool = False, now: Optional[TimeLike] = None, **recall_kwargs: Any) -> Context:
        """Pack the context for the next model call into ``budget`` tokens (never more).

        Assembles the namespace's state and pinned kinds (pinned), the session's last
        ``recent_turns`` turns (in time order, at the end), and the ``k`` memories recalled for
        ``query`` (best first and last, least important in the middle with ``order="edges"``), choosing
        full text or summary per item (see :mod:`recallcore.context`). ``format`` picks what
        ``Context.render()`` returns (``.text`` or ``.messages()``; both are always available). The
        budget holds for ``.text`` as the store's counter counts it; ``.messages()`` carries the same
        items (recent turns as their own messages, without the date prefix, the rest in one system
        message under a one-line header), not counting a chat template's per-message tokens.
        ``template`` is a ``str.format`` template per record with fields text, role, kind,
        session, date, time, id, section, namespace.

        >>> import tempfile, recallcore
        >>> with recallcore.Memory(tempfile.mkdtemp()) as m:
        ...     _ = m.add("Prefers aisle seats", namespace="u", kind="preference", ts=0)
        ...     _ = m.add("Booked Lisbon for May", namespace="u", session="s", role="user", ts=60)
        ...     ctx = m.context("where am I flying?", budget=64, namespace="u", session="s")
        ...     [item.section for item in ctx.manifest], ctx.tokens <= 64
        (['pinned', 'recent'], True)
        """
        from .context import build_context

        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
            raise TypeError(f"budget must be an int, got {type(budget).__name__}")
        if budget <= 0:
            raise ValueError(f"budget must be a positive number of tokens, got {budget}")
        if isinstance(recent_turns, bool) or not isinstance(recent_turns, int) or recent_turns < 0:
            raise ValueError(f"recent_turns must be an int >= 0, got {recent_turns!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if order not in ("edges", "chronological", "score"):
            raise ValueError(f"order must be 'edges', 'chronological' or 'score', got {order!r}")
        if format not in ("text", "messages"):
            raise ValueError(f"format must be 'text' or 'messages', got {format!r}")
        if isinstance(pinned, str):
            pinned = (pinned,)
        if query is not None:
            _check_text(query, "query")
        qvec = None if vector is None else _as_vector(vector, self.dim)
        return build_context(self, query, budget=int(budget), vector=qvec,
                             namespace=_check_name(namespace, "namespace"),
                             session=None if session is None else _check_name(session, "session"),
                             recent_turns=recent_turns, pinned=tuple(pinned), k=k, order=order, template=template,
                             as_of=None if as_of is None else to_unix(as_of, name="as_of"),
                             include_history=include_history, now=to_unix(now, name="now"),
                             recall_kwargs=recall_kwargs, format=format)

    # -- maintenance ---------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Write index snapshots now (also done on close and in the background)."""
        self._store.checkpoint()

    def verify(self) -> dict[str, int]:
        """Check the derived indexes against LMDB: every count except ``lmdb_records`` is 0 when consistent."""
        return dict(self._store.verify())

    def stats(self) -> dict[str, Any]:
        """Counts per namespace and kind, bytes on disk, map size and index state."""
        return dict(self._store.stats())

    # -- forgetting (issue 7; helpers in recallcore.forgetting) -----------------------------------
    _expiry: Any = None

    def supersede(self, old_id: int, text: str, **add_kwargs: Any) -> int:
        """Write a new version of a fact: ``old_id`` stops being valid when the new one starts.

        Namespace and kind default to the old record's; other arguments are :meth:`add`'s.

        >>> import tempfile, recallcore
        >>> with recallcore.Memory(tempfile.mkdtemp()) as m:
        ...     a = m.add("Lives in Lyon", namespace="u", kind="fact", ts=1)
        ...     b = m.supersede(a, "Lives in Porto", ts=2)
        ...     [r.text for r in m.versions(b)]
        ['Lives in Lyon', 'Lives in Porto']
        """
        old = self.get(self._id(old_id))
        if old is None:
            raise ValueError(f"unknown record id {old_id}")
        if "supersedes" in add_kwargs:
            raise TypeError("supersede() sets supersedes itself")
        add_kwargs.setdefault("namespace", old.namespace)
        add_kwargs.setdefault("kind", old.kind)
        return self.add(text, supersedes=old.id, **add_kwargs)

    def versions(self, id: int) -> list[Record]:
        """Every version of the fact ``id`` belongs to (any member of the chain), oldest first.

        A version deleted from the middle of a chain ends the walk in that direction. See
        :meth:`supersede` for an example.
        """
        rec = self.get(self._id(id))
        if rec is None:
            raise ValueError(f"unknown record id {id}")
        chain = [rec]
        seen = {rec.id}
        cur = rec
        while cur.supersedes is not None and cur.supersedes not in seen:
            prev = self.get(cur.supersedes)
            if prev is None:
                break
            chain.insert(0, prev)
            seen.add(prev.id)
            cur = prev
        cur = rec
        while cur.superseded_by is not None and cur.superseded_by not in seen:
            nxt = self.get(cur.superseded_by)
            if nxt is None:
                break
            chain.append(nxt)
            seen.add(nxt.id)
            cur = nxt
        return chain

    def set_policy(self, namespace: Optional[str] = None, kind: Optional[str] = None, *, ttl: Any = None,
                   max_items: Optional[int] = None, max_tokens: Optional[int] = None,
                   half_life: Any = None) -> None:
        """Persist a retention policy for a namespace and/or kind (``None`` = any).

        Passing no setting (all None) removes the policy.
        The most specific policy with a setting applies (namespace+kind, namespace, kind, store-wide).
        Applied by :meth:`expire`. ``ttl``/``half_life``: seconds or a timedelta.

        >>> import tempfile, recallcore
        >>> with recallcore.Memory(tempfile.mkdtemp()) as m:
        ...     m.set_policy("bob", "turn", max_items=1000, half_life=7 * 86400)
        ...     m.policies()[0].max_items
        1000
        """
        from .forgetting import RetentionPolicy

        ns = "" if namespace is None else _check_name(namespace, "namespace")
        kd = "" if kind is None else _check_name(kind, "kind")
        for name, v in (("max_items", max_items), ("max_tokens", max_tokens)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise ValueError(f"{name} must be a positive int or None, got {v!r}")
        ttl_s = None if ttl is None else _ttl(ttl)
        hl_s = None if half_life is None else _ttl(half_life)
        if ttl_s == 0.0 or hl_s == 0.0:
            raise ValueError("ttl and half_life must be > 0 (or None)")
        pol = RetentionPolicy(ns or None, kd or None, ttl_s, max_items, max_tokens, hl_s)
        empty = ttl_s is None and max_items is None and max_tokens is None and hl_s is None
        self._store.policy_put(ns, kd, "" if empty else pol.to_json())

    def policies(self) -> list[Any]:
        """The stored retention policies (:class:`recallcore.forgetting.RetentionPolicy`)."""
        from .forgetting import RetentionPolicy

        return [RetentionPolicy.from_stored(k, v) for k, v in self._store.policy_items()]

    def expire(self, now: Optional[TimeLike] = None, *, prune_log: bool = False) -> Any:
        """Remove expired records (record ``ttl`` or policy ``ttl``) and enforce policy caps.

        Caps evict the lowest retention scores first; one transaction per namespace. ``now``
        (default: the clock) is injectable for tests. ``prune_log=True`` then writes a snapshot and
        drops the change-log entries it covers, so the store file stops growing with the number of
        writes ever made (other processes behind that point rebuild their indexes once). Returns an
        :class:`~recallcore.forgetting.ExpireReport` (``int(report)`` = records removed).

        >>> import tempfile, time, recallcore
        >>> with recallcore.Memory(tempfile.mkdtemp()) as m:
        ...     _ = m.add("one-time code 1234", ttl=60)
        ...     m.expire(now=time.time() + 120).expired
        1
        """
        from .forgetting import ExpireReport

        t = to_unix(now, name="now")
        expired, evicted, ids = self._store.expire(t, [p._core() for p in self.policies()])
        if prune_log:
            self._store.prune_log()
        return ExpireReport(int(expired), int(evicted), [int(i) for i in ids])

    def retention_score(self, id: int, *, now: Optional[TimeLike] = None, half_life: Any = None) -> float:
        """The retention score of a live record (NaN if unknown); see README "Forgetting" for the formula."""
        hl = 0.0 if half_life is None else _ttl(half_life)
        return float(self._store.retention_score(self._id(id), to_unix(now, name="now"), hl))

    def start_expiry(self, interval_seconds: float) -> None:
        """Run :meth:`expire` every ``interval_seconds`` on a background thread (stopped by close)."""
        from .forgetting import ExpiryThread

        if self.closed:
            raise ValueError("the store is closed")
        self.stop_expiry()
        self._expiry = ExpiryThread(self, interval_seconds)

    def stop_expiry(self) -> None:
        """Stop the background expiry thread, if any (waits for a pass in progress)."""
        thread, self._expiry = self._expiry, None
        if thread is not None:
            thread.stop()

    def compact(self, namespace: str, *, older_than: Any, summarizer: Any = None,
                keep_original: str = "archive", window: Any = 3600.0, kind: str = "turn",
                now: Optional[TimeLike] = None, max_chars: int = 600) -> list[int]:
        """Summarise old turns of a namespace: one ``kind="summary"`` record per session and time window.

        ``older_than``: an age (seconds or a timedelta, relative to ``now``) or an absolute time (a
        datetime). Turns are grouped by session and by ``window`` seconds from the first turn of
        each group; ``summarizer`` is any callable ``list[str] -> str`` (default:
        :func:`recallcore.forgetting.extractive_summary`, no model). Each summary lists its
        ``sources``; the originals are archived (kept, not recalled by default, see
        :meth:`restore`) or dropped (``keep_original="drop"``), in the same transaction as the
        summaries. Returns the summary ids.

        >>> import tempfile, recallcore
        >>> with recallcore.Memory(tempfile.mkdtemp()) as m:
        ...     _ = m.add_many([{"text": f"turn {i} about Porto.", "session": "s", "ts": 100 + i}
        ...                     for i in range(3)])
        ...     [s] = m.compact("default", older_than=3600, now=10_000, summarizer=" / ".join)
        ...     m.get(s).text, m.get(s).sources
        ('turn 0 about Porto. / turn 1 about Porto. / turn 2 about Porto.', (1, 2, 3))
        """
        from datetime import timedelta

        from .forgetting import extractive_summary

        ns = _check_name(namespace, "namespace")
        if keep_original not in ("archive", "drop"):
            raise ValueError(f"keep_original must be 'archive' or 'drop', got {keep_original!r}")
        if summarizer is not None and not callable(summarizer):
            raise TypeError("summarizer must be a callable list[str] -> str")
        t_now = to_unix(now, name="now")
        if isinstance(older_than, datetime):
            cutoff = to_unix(older_than, name="older_than")
        elif isinstance(older_than, (timedelta, int, float)) and not isinstance(older_than, bool):
            cutoff = t_now - _ttl(older_than)
        else:
            raise TypeError("older_than must be an age (seconds or timedelta) or a datetime")
        win = _ttl(window)
        if win <= 0:
            raise ValueError("window must be > 0 seconds")
        turns: list[Record] = []
        cursor: Optional[str] = None
        while True:
            page, cursor = self.list(ns, kind=_check_name(kind, "kind"), until=cutoff, limit=1000,
                                     cursor=cursor)
            turns.extend(r for r in page if not r.archived)
            if cursor is None:
                break
        groups: dict[Optional[str], list[list[Record]]] = {}
        for r in turns:  # time order
            sess = groups.setdefault(r.session, [])
            if not sess or r.ts - sess[-1][0].ts >= win:
                sess.append([])
            sess[-1].append(r)
        summarize = summarizer or (lambda texts: extractive_summary(texts, max_chars=max_chars))
        items, vectors, sources = [], [], []
        for sess_name, sess_groups in groups.items():
            for g in sess_groups:
                text = summarize([r.text for r in g])
                if not isinstance(text, str):
                    raise TypeError(f"summarizer returned {type(text).__name__}, expected str")
                ents = list(dict.fromkeys(e for r in g for e in r.entities))
                item, vec = self._prepare(text, namespace=ns, session=sess_name, kind="summary", ts=g[0].ts,
                                          importance=max(r.importance for r in g), entities=ents,
                                          metadata={"compacted": len(g), "until": g[-1].ts})
                items.append(item)
                vectors.append(vec)
                sources.append([r.id for r in g])
        if not items:
            return []
        final, matrix = self._finalise(items, vectors)
        return [int(i) for i in self._store.compact_commit([(f, s) for f, s in zip(final, sources)], matrix,
                                                           keep_original == "drop")]

    def restore(self, ids: Union[int, Sequence[int]]) -> None:
        """Un-archive records (e.g. the originals of a compaction): recalled by default again."""
        id_list = [ids] if isinstance(ids, (int, np.integer)) else list(ids)
        self._store.set_archived([self._id(i) for i in id_list], False)

    def forget(self, namespace: Optional[str] = None, *, ids: Optional[Iterable[int]] = None,
               session: Optional[str] = None, before: Optional[TimeLike] = None,
               kinds: Optional[Iterable[str]] = None) -> int:
        """Delete every trace of the selected records in one transaction; returns how many were deleted.

        Select by ``namespace`` (alone: the whole namespace, including its state, policies, names
        and sessions used nowhere else), ``ids``, ``session``, ``before`` (ts earlier than) and
        ``kinds``; the conditions combine. Records, vectors, secondary keys, entity links and
        dedupe hashes go; the change log is truncated; the in-memory indexes are rebuilt and a fresh
        snapshot replaces the old files. Freed LMDB pages may still hold the text until
        :meth:`vacuum`. Unknown ids are ignored.

        >>> import tempfile, recallcore
        >>> with recallcore.Memory(tempfile.mkdtemp()) as m:
        ...     _ = m.add("my card is 4111", namespace="eve")
        ...     m.forget(namespace="eve"), m.verify_forgotten("eve")
        (1, 0)
        """
        ns = None if namespace is None else _check_name(namespace, "namespace")
        id_list = [] if ids is None else [self._id(i) for i in ([ids] if isinstance(ids, int) else ids)]
        if ns is None and not id_list:
            raise ValueError("forget needs a namespace or ids")
        kind_list = [_check_name(k, "kind") for k in ([kinds] if isinstance(kinds, str) else kinds or [])]
        sess = None if session is None else _check_name(session, "session")
        t_before = None if before is None else to_unix(before, name="before")
        return int(self._store.forget(ns, id_list, sess, t_before, kind_list))

    def verify_forgotten(self, namespace: str) -> int:
        """References to ``namespace`` left anywhere (0 = clean).

        Scans every LMDB table (records, vectors, secondary keys, entities, state, dedupe hashes,
        policies, names, the change log before the last forget), the snapshot files and the
        in-memory indexes, counting entries under the namespace's id or under a namespace id that
        has no name any more, and vectors or rows whose record is gone.
        """
        return int(self._store.verify_forgotten(_check_name(namespace, "namespace")))

    def vacuum(self, path: Union[str, os.PathLike[str]]) -> None:
        """Write a compacted copy of the LMDB environment (only live pages) to the directory ``path``.

        Freed pages that still hold deleted text are not copied. To swap it in: close the store,
        replace the store directory's ``data.mdb`` with the copy's (and delete ``lock.mdb``), or
        simply open the copy's directory; its indexes are rebuilt on first open.
        """
        if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        self._store.vacuum(os.fspath(path))
