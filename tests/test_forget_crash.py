"""Crash safety of forgetting: SIGKILL during forget or compaction leaves the before or the after state."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from recallcore import Memory

N_A, N_B, SESSIONS = 240, 40, 6
# Kill delays after "ready" (scaled by a random factor) so kills land before, inside and after the operation.
DELAYS = [0.0005, 0.002, 0.005, 0.01, 0.02, 0.05, 0.001, 0.003]

CHILD = r"""
import sys
import recallcore
path, op = sys.argv[1], sys.argv[2]
m = recallcore.Memory(path)
print("ready", flush=True)
if op == "forget":
    m.forget(namespace="a")
else:
    m.compact("a", older_than=3600, now=1_000_000, keep_original=op)
print("done", flush=True)
import time
time.sleep(60)
"""


def vec(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal(16).astype(np.float32)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("forget_crash") / "base"
    with Memory(path, dim=16) as m:
        m.add_many([{"text": f"alpha record {i} kiwi{i}", "namespace": "a", "session": f"s{i % SESSIONS}",
                     "ts": 1000 + i, "vector": vec(i), "entities": [f"ent{i % 7}"]} for i in range(N_A)])
        m.add_many([{"text": f"beta record {i}", "namespace": "b", "ts": 1000 + i, "vector": vec(10_000 + i)}
                    for i in range(N_B)])
        m.state("a")["k"] = 1
    return path


def run_and_kill(path, op: str, delay: float) -> str:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), op], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    time.sleep(delay)
    os.kill(child.pid, signal.SIGKILL)
    out, err = child.communicate()
    assert child.returncode == -signal.SIGKILL, err
    return out


def check_b_intact(m: Memory) -> None:
    c = m.verify()
    assert c["missing_in_state"] == c["extra_in_state"] == c["missing_vectors"] == c["extra_vectors"] == 0, c
    assert m.stats()["counts"]["b"] == {"turn": N_B}
    assert m.recall(vector=vec(10_003), namespace="b", k=1, mode="vector")[0].text == "beta record 3"


@pytest.mark.slow
def test_sigkill_during_forget_leaves_before_or_after(base, tmp_path):
    rng = random.Random(7)
    seen = set()
    for round_ in range(8):
        path = tmp_path / f"r{round_}"
        shutil.copytree(base, path)
        out = run_and_kill(path, "forget", DELAYS[round_ % len(DELAYS)] * rng.random())
        with Memory(path) as m:
            n_a = m.stats()["counts"].get("a", {}).get("turn", 0)
            assert n_a in (0, N_A), n_a
            if n_a == 0:
                assert m.verify_forgotten("a") == 0 and m.state("a").to_dict() == {}
                seen.add("after")
            else:
                assert "done" not in out
                assert m.state("a")["k"] == 1 and len(m.entity("a", "ent3")) == len(range(3, N_A, 7))
                seen.add("before")
            check_b_intact(m)
    print("forget crash states:", sorted(seen))
    assert seen  # at least one state observed; which ones depends on timing


@pytest.mark.slow
@pytest.mark.parametrize("keep", ["archive", "drop"])
def test_sigkill_during_compaction_leaves_before_or_after(base, tmp_path, keep):
    rng = random.Random(11)
    for round_ in range(6):
        path = tmp_path / f"r{round_}"
        shutil.copytree(base, path)
        run_and_kill(path, keep, DELAYS[round_ % len(DELAYS)] * rng.random())
        with Memory(path) as m:
            counts = m.stats()["counts"]["a"]
            summaries = counts.get("summary", 0)
            turns = [r for r in m.history("a") if r.kind == "turn"]
            archived = sum(r.archived for r in turns)
            if summaries == 0:
                assert len(turns) == N_A and archived == 0
            else:
                assert summaries == SESSIONS
                assert (len(turns), archived) == ((N_A, N_A) if keep == "archive" else (0, 0))
                linked = sorted(s for r in m.history("a") if r.kind == "summary" for s in r.sources)
                assert len(linked) == N_A
            check_b_intact(m)
