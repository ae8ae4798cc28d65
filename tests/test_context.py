"""Memory.context: the assembled, packed context for the next model call."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recallcore import Memory

WORDS = "alpha beta gamma delta lisbon porto flight passport sister priya mug pottery shop kiln glaze".split()


def fill(m: Memory, rng: np.random.Generator, n: int = 40) -> None:
    m.add("Prefers aisle seats", namespace="u", kind="preference", ts=1)
    m.state("u")["task"] = {"goal": "plan trip", "step": 1}
    for i in range(n):
        words = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 30))))
        m.add(f"{words} {i}", namespace="u", session=f"s{i // 10}", role="user" if i % 2 else "assistant",
              ts=100 + i, summary=words[:20] if i % 3 == 0 else None)


@pytest.fixture
def mem(tmp_path):
    with Memory(tmp_path / "s") as m:
        fill(m, np.random.default_rng(0))
        yield m


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(budget=st.integers(min_value=40, max_value=2000), recent=st.integers(min_value=0, max_value=8),
       order=st.sampled_from(["edges", "chronological", "score"]), query=st.sampled_from(WORDS))
def test_never_over_budget_with_the_stores_counter(mem, budget, recent, order, query):
    ctx = mem.context(query, budget=budget, namespace="u", session="s3", recent_turns=recent, order=order)
    assert mem.token_counter.count(ctx.text) <= budget
    assert ctx.tokens <= budget
    assert [i.position for i in ctx.manifest] == list(range(len(ctx.manifest)))


def test_pinned_state_and_preferences_come_first(mem):
    ctx = mem.context("lisbon", budget=500, namespace="u", session="s3")
    sections = [i.section for i in ctx.manifest]
    assert sections[:2] == ["state", "pinned"]
    assert "plan trip" in ctx.manifest[0].text and "aisle" in ctx.manifest[1].text


def test_recent_turns_are_last_and_in_time_order(mem):
    ctx = mem.context("lisbon", budget=4000, namespace="u", session="s3", recent_turns=4)
    recent = [i for i in ctx.manifest if i.section == "recent"]
    assert [i.record.ts for i in recent] == sorted(i.record.ts for i in recent)
    assert len(recent) == 4 and ctx.manifest[-1].section == "recent"
    assert recent[-1].record.id == mem.history("u", "s3", last=1)[0].id


def test_memories_in_edges_order(mem):
    ctx = mem.context("lisbon porto", budget=4000, namespace="u", recent_turns=0, k=9, pinned=())
    scores = [i.score for i in ctx.manifest]
    assert len(scores) >= 3
    best = sorted(scores, reverse=True)
    assert scores[0] == best[0] and scores[-1] == best[1]
    ctx2 = mem.context("lisbon porto", budget=4000, namespace="u", recent_turns=0, k=9, pinned=(), order="score")
    assert [i.score for i in ctx2.manifest] == best


def test_deterministic(mem):
    a = mem.context("passport", budget=300, namespace="u", session="s1")
    b = mem.context("passport", budget=300, namespace="u", session="s1")
    assert a.text == b.text and a.manifest == b.manifest


def test_summaries_used_when_full_text_does_not_fit(tmp_path):
    with Memory(tmp_path / "s") as m:
        long = "kiln " * 300
        rid = m.add(long, namespace="u", summary="a long note about the kiln", ts=1)
        ctx = m.context("kiln", budget=60, namespace="u", recent_turns=0, pinned=())
        assert [(i.id, i.fidelity) for i in ctx.manifest] == [(rid, "summary")]


def test_pinned_over_budget_is_a_clear_error(tmp_path):
    with Memory(tmp_path / "s") as m:
        m.add("word " * 500, namespace="u", kind="preference")
        with pytest.raises(ValueError, match="pinned items need"):
            m.context("x", budget=50, namespace="u")


def test_messages_format(mem):
    ctx = mem.context("lisbon", budget=800, namespace="u", session="s3", recent_turns=3)
    msgs = ctx.messages()
    assert msgs[0]["role"] == "system" and "plan trip" in msgs[0]["content"]
    assert [m["role"] for m in msgs[1:]] == [i.role for i in ctx.manifest if i.section == "recent"]


def test_dropped_items_are_reported(mem):
    ctx = mem.context("lisbon", budget=80, namespace="u", session="s3", recent_turns=5)
    assert ctx.dropped and all(d.reason in ("budget", "quota", "duplicate") for d in ctx.dropped)


@pytest.mark.parametrize(("kwargs", "exc"), [
    ({"budget": 0}, ValueError), ({"budget": -5}, ValueError), ({"budget": "10"}, TypeError),
    ({"budget": 100, "order": "random"}, ValueError), ({"budget": 100, "k": 0}, ValueError),
    ({"budget": 100, "recent_turns": -1}, ValueError), ({"budget": 100, "format": "xml"}, ValueError),
])
def test_bad_arguments(mem, kwargs, exc):
    with pytest.raises(exc):
        mem.context("x", namespace="u", **kwargs)
