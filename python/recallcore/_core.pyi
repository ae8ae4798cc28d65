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

class HNSWIndex:
    """HNSW approximate nearest-neighbour index over float32 vectors with uint64 ids.

    Distances (smaller is closer): ``l2`` = squared L2, ``ip`` = 1 - a.b, ``cosine`` = 1 - cos.
    Missing results are padded with id ``np.iinfo(np.uint64).max`` and distance ``inf``.

    >>> import numpy as np, recallcore
    >>> index = recallcore.HNSWIndex(4, metric="l2")
    >>> _ = index.add(np.eye(4, dtype=np.float32), np.array([10, 11, 12, 13], dtype=np.uint64))
    >>> ids, dist = index.search(np.array([1, 0, 0, 0], dtype=np.float32), k=2)
    >>> int(ids[0])
    10
    """

    def __init__(
        self,
        dim: int,
        *,
        metric: Literal["cosine", "ip", "l2"] = "cosine",
        M: int = 16,
        ef_construction: int = 200,
        storage: Literal["f32", "f16", "i8"] = "f32",
        seed: int = 0,
        capacity: Optional[int] = None,
    ) -> None: ...
    def add(
        self,
        vectors: npt.NDArray[np.float32],
        ids: Optional[npt.ArrayLike] = None,
        *,
        threads: int = 0,
    ) -> npt.NDArray[np.uint64]: ...
    def search(
        self,
        queries: npt.NDArray[np.float32],
        k: int = 10,
        *,
        ef: Optional[int] = None,
        filter: Optional[npt.NDArray[Any]] = None,
        threads: int = 0,
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float32]]: ...
    def remove(self, ids: npt.ArrayLike) -> None: ...
    def __len__(self) -> int: ...
    def __contains__(self, id: object) -> bool: ...
    def get_vectors(self, ids: npt.ArrayLike) -> npt.NDArray[np.float32]: ...
    def ids(self) -> npt.NDArray[np.uint64]: ...
    def stats(self) -> dict[str, Any]: ...
    def save(self, path: str, *, stamp: int = 0) -> None: ...
    @staticmethod
    def load(path: str, mmap: bool = False) -> HNSWIndex: ...
    def compact(self) -> None: ...
    @property
    def exact_scan_threshold(self) -> int: ...
    @exact_scan_threshold.setter
    def exact_scan_threshold(self, n: Optional[int]) -> None: ...
    @property
    def dim(self) -> int: ...
    @property
    def metric(self) -> str: ...
    @property
    def storage(self) -> str: ...
    @property
    def M(self) -> int: ...
    @property
    def ef_construction(self) -> int: ...
    @property
    def stamp(self) -> int: ...
