"""Shared fixtures: real data under ../shared/data (tests using it skip cleanly when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_here = Path(__file__).resolve().parent


def _find_data() -> Path:
    if "RECALLCORE_DATA" in os.environ:
        return Path(os.environ["RECALLCORE_DATA"])
    # ../shared/data beside the checkout (or beside any parent of it, e.g. from a git worktree).
    for parent in _here.parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return _here.parent.parent / "shared" / "data"


DATA_DIR = _find_data()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"evaluation data not found at {DATA_DIR} (set RECALLCORE_DATA)")
    return DATA_DIR
