"""recallcore: an embedded memory layer for LLM agents.

A durable LMDB store of conversation turns, facts and state; microsecond recall with SIMD HNSW,
BM25 and filters; and token-budgeted context packing.

>>> import recallcore
>>> recallcore.simd_level() in ("scalar", "avx2", "avx512")
True
"""

from __future__ import annotations

from . import _core
from ._core import CorruptionError, StoreError, build_info, simd_level, simd_levels
from .packing import DroppedItem, PackedContext, PackedItem, pack

__version__: str = _core.build_info()["version"]

# Resolve the SIMD level now, so a bad RECALLCORE_SIMD fails the import with a clear message instead
# of the first search.
simd_level()

__all__ = [
    "CorruptionError",
    "DroppedItem",
    "PackedContext",
    "PackedItem",
    "StoreError",
    "__version__",
    "build_info",
    "pack",
    "simd_level",
    "simd_levels",
]
