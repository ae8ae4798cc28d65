"""recallcore: an embedded memory layer for LLM agents.

A durable LMDB store of conversation turns, facts and state; microsecond recall with SIMD HNSW,
BM25 and filters; and token-budgeted context packing.

>>> import recallcore
>>> recallcore.simd_level() in ("scalar", "avx2", "avx512")
True
"""

from __future__ import annotations

<<<<<<< HEAD
from . import _core, cost, eval  # eval: the evaluation module (shadows the builtin only as an attribute)
from ._core import CorruptionError, StoreError, build_info, simd_level, simd_levels
from .memory import Memory, State
from .records import Record
=======
from . import _core, tokens
from ._core import (
    Bm25Index,
    CorruptionError,
    StoreError,
    build_info,
    estimate_tokens,
    simd_level,
    simd_levels,
    tokenize,
)
from .tokens import TokenCounter, get_counter
>>>>>>> text

__version__: str = _core.build_info()["version"]

# Resolve the SIMD level now, so a bad RECALLCORE_SIMD fails the import with a clear message instead
# of the first search.
simd_level()

__all__ = [
    "Bm25Index",
    "CorruptionError",
    "Memory",
    "Record",
    "State",
    "StoreError",
    "TokenCounter",
    "__version__",
    "build_info",
<<<<<<< HEAD
    "cost",
    "eval",
=======
    "estimate_tokens",
    "get_counter",
>>>>>>> text
    "simd_level",
    "simd_levels",
    "tokenize",
    "tokens",
]
