"""Crash safety: a writer killed with SIGKILL at random moments loses nothing it acknowledged."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from recallcore import Memory

WRITER = r"""
import sys
import numpy as np
import recallcore

path, start = sys.argv[1], int(sys.argv[2])
m = recallcore.Memory(path, dim=16, checkpoint_every=40)
i = 0
while True:
    v = np.random.default_rng(start * 1_000_000 + i).standard_normal(16).astype(np.float32)
    rid = m.add(f"record {start} {i}", namespace=f"ns{i % 3}", vector=v, entities=[f"e{i % 5}"])
    print(rid, start, i, flush=True)
    i += 1
"""


def vector_of(start: int, i: int) -> np.ndarray:
    return np.random.default_rng(start * 1_000_000 + i).standard_normal(16).astype(np.float32)


@pytest.mark.slow
def test_sigkill_during_writes_loses_no_acknowledged_record(tmp_path):
    path = str(tmp_path / "store")
    rng = random.Random(1234)
    acknowledged: dict[int, tuple[int, int]] = {}
    for round_ in range(20):
        child = subprocess.Popen([sys.executable, "-c", WRITER, path, str(round_)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        # Kill after a random number of acknowledged writes, plus a random sub-millisecond delay, so the
        # kill lands at varied points: inside a commit, a snapshot, or between writes.
        target = rng.randint(1, 60)
        got = 0
        assert child.stdout is not None
        while got < target:
            line = child.stdout.readline()
            if not line:
                break
            rid, start, i = map(int, line.split())
            acknowledged[rid] = (start, i)
            got += 1
        time.sleep(rng.random() * 0.002)
        os.kill(child.pid, signal.SIGKILL)
        rest, err = child.communicate()
        for line in rest.split("\n")[:-1]:  # complete lines: acknowledged before the kill landed
            rid, start, i = map(int, line.split())
            acknowledged[rid] = (start, i)
        assert child.returncode == -signal.SIGKILL, err

        with Memory(path) as m:
            check = m.verify()
            assert check["missing_in_state"] == check["extra_in_state"] == 0, check
            assert check["missing_vectors"] == check["extra_vectors"] == 0, check
            assert check["lmdb_records"] >= len(acknowledged)
            sample = rng.sample(sorted(acknowledged), min(40, len(acknowledged)))
            for rid in sample:
                start, i = acknowledged[rid]
                r = m.get(rid)
                assert r is not None and r.text == f"record {start} {i}"
                hits = m.recall(vector=vector_of(start, i), k=1, namespace=f"ns{i % 3}", mode="vector")
                assert hits[0].id == rid
    assert len(acknowledged) >= 20
