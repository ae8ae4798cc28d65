"""Type stubs for the C++ extension recallcore._core."""

from typing import Any, Literal, Optional

import numpy as np
import numpy.typing as npt

class CorruptionError(ValueError): ...
class StoreError(RuntimeError): ...

def simd_level() -> Literal["scalar", "avx2", "avx512"]: ...
def simd_levels() -> list[str]: ...
def build_info() -> dict[str, Any]: ...
def distances(
    query: npt.NDArray[np.float32],
    matrix: npt.NDArray[Any],
    metric: Literal["l2", "ip", "cosine"] = "l2",
    *,
    scales: Optional[npt.NDArray[np.float32]] = None,
    level: Optional[str] = None,
    block: bool = True,
) -> npt.NDArray[np.float32]: ...
def dot_i8(a: npt.NDArray[np.int8], b: npt.NDArray[np.int8], *, level: Optional[str] = None) -> int: ...

# Context packing (python/bindings/context.cpp); recallcore.pack is the friendly API over it.
PACK_DROP_REASONS: tuple[str, str, str, str]  # ("budget", "quota", "duplicate", "pinned_over_budget")

def pack_sections(
    sections: list[dict[str, Any]],
    budget: int,
    *,
    order: Literal["edges", "chronological", "score"] = "edges",
    mode: Literal["greedy", "exact", "auto"] = "auto",
    separator_tokens: int = 0,
    framing_tokens: int = 0,
    dedupe: Optional[float] = None,
    summary_fidelity: float = 0.5,
    pinned_overflow: Literal["error", "truncate"] = "error",
    exact_max_items: int = 64,
    exact_max_budget: int = 8192,
) -> dict[str, Any]: ...
def _pack_sections_timing(
    sections: list[dict[str, Any]],
    budget: int,
    *,
    order: Literal["edges", "chronological", "score"] = "edges",
    mode: Literal["greedy", "exact", "auto"] = "auto",
    separator_tokens: int = 0,
    framing_tokens: int = 0,
    dedupe: Optional[float] = None,
    summary_fidelity: float = 0.5,
    pinned_overflow: Literal["error", "truncate"] = "error",
    exact_max_items: int = 64,
    exact_max_budget: int = 8192,
    repeat: int = 1000,
) -> npt.NDArray[np.float64]: ...
