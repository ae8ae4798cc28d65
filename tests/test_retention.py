"""Retention: TTL expiry (injected clock), persisted policies, caps by retention score, the expiry thread."""

from __future__ import annotations

import time

import pytest

from recallcore import Memory
from recallcore.forgetting import ExpireReport, RetentionPolicy

DAY = 86400.0


@pytest.fixture
def mem(tmp_path):
    with Memory(tmp_path / "store") as m:
        yield m


def test_record_ttl_expires_only_after_its_time(mem):
    t0 = time.time()
    a = mem.add("short lived", namespace="u", ttl=60)
    b = mem.add("long lived", namespace="u")
    assert mem.expire(now=t0 + 30).removed == 0
    rep = mem.expire(now=t0 + 120)
    assert isinstance(rep, ExpireReport) and (rep.expired, rep.evicted, rep.ids) == (1, 0, [a])
    assert mem.get(a) is None and mem.get(b) is not None


def test_policy_ttl_expires_by_record_time(mem):
    mem.set_policy("u", "turn", ttl=10 * DAY)
    old = mem.add("old turn", namespace="u", ts=1000)
    fact = mem.add("old fact", namespace="u", kind="fact", ts=1000)
    other = mem.add("old turn elsewhere", namespace="v", ts=1000)
    new = mem.add("new turn", namespace="u", ts=1000 + 9 * DAY)
    rep = mem.expire(now=1000 + 10 * DAY + 1)
    assert rep.ids == [old]
    assert all(mem.get(i) is not None for i in (fact, other, new))


def test_policies_are_persisted_and_replaced_and_removed(tmp_path):
    path = tmp_path / "store"
    with Memory(path) as m:
        m.set_policy("u", max_items=5)
        m.set_policy(kind="turn", ttl=3600, half_life=60)
        m.set_policy("u", max_items=7)  # replaces
    with Memory(path) as m:
        pols = {(p.namespace, p.kind): p for p in m.policies()}
        assert pols[("u", None)] == RetentionPolicy("u", None, None, 7, None, None)
        assert pols[(None, "turn")].ttl == 3600 and pols[(None, "turn")].half_life == 60
        m.set_policy("u")
        assert [(p.namespace, p.kind) for p in m.policies()] == [(None, "turn")]


def test_cap_evicts_lowest_retention_first(mem):
    now = 1_000_000.0
    mem.set_policy("u", max_items=3, half_life=DAY)
    keep_important = mem.add("old but important", namespace="u", ts=now - 3 * DAY, importance=1.0)
    evict_old = mem.add("old and minor", namespace="u", ts=now - 3 * DAY, importance=0.0)
    evict_mid = mem.add("middling", namespace="u", ts=now - 2 * DAY, importance=0.1)
    keep_new1 = mem.add("fresh one", namespace="u", ts=now, importance=0.5)
    keep_new2 = mem.add("fresh two", namespace="u", ts=now - 1, importance=0.5)
    scores = {i: mem.retention_score(i, now=now, half_life=DAY)
              for i in (keep_important, evict_old, evict_mid, keep_new1, keep_new2)}
    rep = mem.expire(now=now)
    assert sorted(rep.ids) == sorted([evict_old, evict_mid]) and rep.evicted == 2
    kept = (keep_important, keep_new1, keep_new2)
    assert max(scores[evict_old], scores[evict_mid]) < min(scores[i] for i in kept)
    assert mem.stats()["records"] == 3


def test_recalled_records_score_higher_than_unrecalled_twins(mem):
    now = 1_000_000.0
    a = mem.add("zebra stripes pattern", namespace="u", ts=now - DAY)
    b = mem.add("giraffe neck length", namespace="u", ts=now - DAY)
    for _ in range(3):
        assert mem.recall("zebra", namespace="u", k=1, now=now)[0].id == a
    assert mem.retention_score(a, now=now) > mem.retention_score(b, now=now)
    mem.set_policy("u", max_items=1)
    assert mem.expire(now=now).ids == [b]


def test_max_tokens_cap(mem):
    mem.set_policy("u", max_tokens=8)
    ids = [mem.add(f"word{i} " * 3, namespace="u", ts=1000 + i) for i in range(5)]
    total = lambda: sum(mem.get(i).tokens for i in ids if mem.get(i) is not None)  # noqa: E731
    assert total() > 8
    mem.expire(now=2000)
    assert 0 < total() <= 8
    assert mem.get(ids[-1]) is not None  # the newest survives


def test_caps_apply_per_namespace_for_store_wide_policy(mem):
    mem.set_policy(max_items=2)
    for ns in ("a", "b"):
        for i in range(4):
            mem.add(f"{ns} item {i}", namespace=ns, ts=1000 + i)
    rep = mem.expire(now=2000)
    assert rep.evicted == 4
    assert mem.stats()["counts"] == {"a": {"turn": 2}, "b": {"turn": 2}}


def test_superseded_facts_are_evicted_before_current_ones(mem):
    a = mem.add("Lives in Lyon", namespace="u", kind="fact", ts=1000, importance=0.9)
    b = mem.supersede(a, "Lives in Porto", ts=1000 + 10, importance=0.9)
    mem.set_policy("u", max_items=1)
    assert mem.expire(now=2000).ids == [a]
    assert mem.get(b) is not None


def test_bad_policy_input_is_rejected_and_nothing_stored(mem):
    for kwargs in ({"max_items": 0}, {"max_items": -1}, {"max_tokens": 1.5}, {"ttl": -1}, {"half_life": 0}):
        with pytest.raises((ValueError, TypeError)):
            mem.set_policy("u", **kwargs)
    assert mem.policies() == []


def test_background_expiry_runs_and_stops_on_close(tmp_path):
    m = Memory(tmp_path / "store")
    a = m.add("fleeting", namespace="u", ttl=0.05)
    m.start_expiry(0.02)
    thread = m._expiry
    deadline = time.time() + 30
    while m.get(a) is not None and time.time() < deadline:
        time.sleep(0.02)
    assert m.get(a) is None and thread.runs >= 1 and thread.last_error is None
    m.close()
    assert not thread.alive


def test_start_expiry_rejects_bad_interval(mem):
    with pytest.raises(ValueError):
        mem.start_expiry(0)


LAGGING = r"""
import sys
import recallcore
m = recallcore.Memory(sys.argv[1])
print(m.stats()["records"], flush=True)
sys.stdin.readline()
print(m.stats()["records"], m.verify()["missing_in_state"], flush=True)
m.close()
"""


def test_prune_log_drops_covered_entries_and_lagging_processes_still_catch_up(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "store"
    with Memory(path, checkpoint_every=0) as m:
        for i in range(10):
            m.add(f"r{i}", namespace="u", ttl=60 if i < 4 else None)
        child = subprocess.Popen([sys.executable, "-c", LAGGING, str(path)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdin is not None and child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "10"
            for i in range(5):
                m.add(f"late{i}", namespace="u")
            rep = m.expire(now=time.time() + 3600, prune_log=True)
            assert rep.expired == 4
            assert m._store.prune_log() == 0  # everything up to the snapshot is already gone
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().split() == ["11", "0"]
        finally:
            child.stdin.close()
            child.wait(timeout=60)
            child.stdout.close()
        m.add("after prune", namespace="u")
    with Memory(path) as m:
        assert m.stats()["records"] == 12 and m.verify()["missing_in_state"] == 0
