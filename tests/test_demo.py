"""``recallcore demo``: runs offline, exits 0, and shows each of its sections."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import recallcore
from recallcore import cost

PKG_ROOT = str(Path(recallcore.__file__).resolve().parent.parent)


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["RECALLCORE_PLAIN"] = "1"
    # No network is needed: make any attempt to reach one fail loudly.
    env["HF_HUB_OFFLINE"] = "1"
    env["https_proxy"] = env["http_proxy"] = "http://127.0.0.1:9"
    return subprocess.run([sys.executable, "-m", "recallcore", "demo"], capture_output=True, text=True,
                          env=env, timeout=120)


def test_demo_exits_cleanly(demo: subprocess.CompletedProcess[str]) -> None:
    assert demo.returncode == 0, demo.stderr
    assert demo.stderr == ""


def test_demo_ingests_the_scripted_conversation(demo: subprocess.CompletedProcess[str]) -> None:
    assert "Ingested 88 turns from 6 sessions" in demo.stdout
    assert "3 superseding older ones" in demo.stdout


def test_demo_shows_the_superseded_fact(demo: subprocess.CompletedProcess[str]) -> None:
    out = demo.stdout
    section = out[out.index("Facts change"):out.index("A new question")]
    current = section[:section.index("the replaced versions")]
    assert "Maya lives in Manchester" in current and "Maya lives in Leeds" not in current
    assert re.search(r"valid until 2024-04-06, superseded by #\d+: Maya lives in Leeds", section)
    then = section[section.index("what was true then"):]
    assert "Maya lives in Leeds" in then and "Manchester, in Ancoats" not in then


def test_demo_shows_recall_with_component_scores(demo: subprocess.CompletedProcess[str]) -> None:
    out = demo.stdout
    assert "recall: hybrid" in out
    table = out[out.index("recall: hybrid"):out.index("context:")]
    # Fused scores: relative-score fusion is within [0, 1] before the importance factor (up to 1.25).
    rows = [ln for ln in table.splitlines() if re.match(r"^\d+\s+[01]\.\d{4}", ln)]
    assert len(rows) == 8
    assert any("preference" in r for r in rows)


def test_demo_shows_the_packed_context_and_its_manifest(demo: subprocess.CompletedProcess[str]) -> None:
    out = demo.stdout
    m = re.search(r"context: (\d+) of (\d+) tokens, (\d+) items", out)
    assert m is not None
    used, budget, n = map(int, m.groups())
    assert 0 < used <= budget
    manifest = out[m.end():out.index("The packed prompt")]
    rows = [ln.split() for ln in manifest.splitlines() if re.match(r"^\s*\d+\s+(start|middle|end)\s", ln)]
    assert len(rows) == n
    assert [int(r[0]) for r in rows] == list(range(n))
    assert {r[1] for r in rows} == {"start", "middle", "end"}
    sections = [r[2] for r in rows]
    assert sections[0] == "state" and sections[-1] == "recent" and "memories" in sections
    prompt = out[out.index("The packed prompt"):out.index("Latency of each step")]
    assert "(preference) Maya is vegetarian." in prompt
    assert "Maya lives in Manchester" in prompt


def test_demo_reports_latency_and_cost(demo: subprocess.CompletedProcess[str]) -> None:
    out = demo.stdout
    lat = out[out.index("Latency of each step"):]
    for step in ("ingest 88 turns", "recall, k=8", "context, budget"):
        assert re.search(re.escape(step) + r".*\s\d+\.\d+ ms", lat), step
    m = re.search(r"whole history: 88 turns \+ the question = ([\d,]+) tokens; "
                  r"packed context \+ the question = ([\d,]+) tokens", out)
    assert m is not None
    full, packed = (int(x.replace(",", "")) for x in m.groups())
    assert packed < full
    expected = cost.compare("llama-3.1-8b", full, packed, price_per_hour=2.0).table()
    assert expected in out


def test_demo_removes_its_temporary_store(demo: subprocess.CompletedProcess[str]) -> None:
    m = re.search(r"^store: (\S+)", demo.stdout, re.M)
    assert m is not None
    assert not os.path.exists(m.group(1))
