"""Shared fixtures: real data under ../shared/data (tests using it skip cleanly when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_here = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("RECALLCORE_DATA", _here.parent.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"evaluation data not found at {DATA_DIR} (set RECALLCORE_DATA)")
    return DATA_DIR
