"""Memory.context: the assembled, packed context for the next model call."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recallcore import Memory
from recallcore.tokens import CallableCounter

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


# --------------------------------------------------------------- counters and templates from Python


def test_state_items_render_as_compact_json(mem):
    ctx = mem.context("trip", budget=2000, namespace="u", session="s3")
    state = [i for i in ctx.manifest if i.section == "state"]
    assert [i.text for i in state] == ['task: {"goal":"plan trip","step":1}']
    assert state[0].id == "state:task" and state[0].record is None
    assert ctx.text == "\n".join(i.text for i in ctx.manifest)


@settings(max_examples=25, deadline=None)
@given(budget=st.integers(min_value=30, max_value=600), order=st.sampled_from(["edges", "chronological", "score"]))
def test_a_python_counter_is_the_one_that_bounds_the_context(tmp_path_factory, budget, order):
    """A non-built-in counter is called back from the C++ assembly; the budget holds with it."""
    def by_chars(text: str) -> int:  # deliberately unlike the estimator: one token per 3 characters
        return (len(text) + 2) // 3

    with Memory(tmp_path_factory.mktemp("c") / "s", token_counter=CallableCounter(by_chars, name="chars/3")) as m:
        fill(m, np.random.default_rng(1))
        ctx = m.context("passport", budget=budget, namespace="u", session="s2", order=order)
        assert by_chars(ctx.text) <= budget
        assert ctx.tokens <= budget
        assert ctx.manifest  # the pinned block alone fits every budget drawn here


def test_a_counter_that_raises_surfaces_as_its_exception(tmp_path):
    armed = []

    def flaky(text: str) -> int:
        if armed:  # let the writes count, then fail inside context()
            raise RuntimeError("counter is down")
        return len(text.split())

    with Memory(tmp_path / "s", token_counter=CallableCounter(flaky, name="flaky")) as m:
        fill(m, np.random.default_rng(2), n=10)
        armed.append(True)
        with pytest.raises(RuntimeError, match="counter is down"):
            m.context("passport", budget=500, namespace="u", session="s0")
        armed.clear()
        assert m.context("passport", budget=500, namespace="u", session="s0").manifest  # still usable


def test_template_renders_each_item_and_is_counted(mem):
    ctx = mem.context("passport", budget=400, namespace="u", session="s3", template="<{section}|{role}> {text}")
    records = [i for i in ctx.manifest if i.record is not None]
    assert records
    for item in records:
        body = item.record.text if item.fidelity == "full" else item.record.summary
        assert item.text == f"<{item.section}|{item.record.role or ''}> {body}"
    assert mem.token_counter.count(ctx.text) <= 400
    with pytest.raises(KeyError):
        mem.context("passport", budget=400, namespace="u", template="{nope} {text}")


def test_item_dates_match_python_utc_dates(tmp_path):
    from datetime import datetime, timezone
    # 1970, 1969, 2000-02-29, 2024-02-29, 2100-02-28, 9999-12-31
    stamps = [0.0, -1.0, 951_782_400.0, 1_709_164_800.5, 4_107_542_399.0, 253_402_300_799.0]
    with Memory(tmp_path / "s") as m:
        for ts in stamps:
            m.add(f"note at {ts}", namespace="d", session="x", role="user", ts=ts)
        ctx = m.context(budget=4000, namespace="d", session="x", recent_turns=len(stamps))
        got = [i.text.split(" ")[0] for i in ctx.manifest]
        want = sorted(datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d") for ts in stamps)
        assert got == want


def test_render_follows_the_requested_format(mem):
    as_text = mem.context("trip", budget=300, namespace="u", session="s3")
    as_messages = mem.context("trip", budget=300, namespace="u", session="s3", format="messages")
    assert as_text.render() == as_text.text
    assert as_text.render(system="Be brief.") == "Be brief.\n" + as_text.text
    assert as_messages.render() == as_messages.messages()
    assert as_messages.render(system="Be brief.")[0]["content"].startswith("Be brief.\n")


def test_recent_turns_are_found_behind_many_newer_non_turn_records(tmp_path):
    with Memory(tmp_path / "s") as m:
        turns = [m.add(f"turn {i}", namespace="u", session="s", role="user", ts=10 + i) for i in range(3)]
        for i in range(30):  # newer records of another kind in the same session
            m.add(f"fact {i}", namespace="u", session="s", kind="fact", ts=100 + i)
        ctx = m.context(budget=500, namespace="u", session="s", recent_turns=3, pinned=())
        assert [i.id for i in ctx.manifest if i.section == "recent"] == turns
