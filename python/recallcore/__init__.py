"""recallcore: an embedded memory layer for LLM agents.

A durable LMDB store of conversation turns, facts and state; microsecond recall with SIMD HNSW,
BM25 and filters; and token-budgeted context packing.

>>> import recallcore
>>> recallcore.simd_level() in ("scalar", "avx2", "avx512")
True
"""

from __future__ import annotations

from . import _core, cost, embedders, eval, tokens  # eval: the evaluation module (an attribute, not the builtin)
from ._core import (
    Bm25Index,
    CorruptionError,
    HNSWIndex,
    StoreError,
    build_info,
    estimate_tokens,
    simd_level,
    simd_levels,
    tokenize,
)
from .memory import Memory, State
from .packing import DroppedItem, PackedContext, PackedItem, pack
from .records import Hit, Record
from .tokens import TokenCounter, get_counter

__version__: str = _core.build_info()["version"]

# Resolve the SIMD level now, so a bad RECALLCORE_SIMD fails the import with a clear message instead
# of the first search.
simd_level()

__all__ = [
    "Bm25Index",
    "build_info",
    "CorruptionError",
    "cost",
    "DroppedItem",
    "embedders",
    "estimate_tokens",
    "eval",
    "get_counter",
    "Hit",
    "HNSWIndex",
    "Memory",
    "pack",
    "PackedContext",
    "PackedItem",
    "Record",
    "simd_level",
    "simd_levels",
    "State",
    "StoreError",
    "TokenCounter",
    "tokenize",
    "tokens",
    "__version__",
]
