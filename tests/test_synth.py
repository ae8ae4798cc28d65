"""Synthetic planted-fact conversations and the bundled demo conversation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from recallcore import eval as ev
from recallcore import synth


@pytest.fixture(scope="module")
def convs() -> list[ev.Conversation]:
    return synth.planted_conversations(100, n_turns=50, seed=0)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower())) - {"the", "a", "is", "my", "i", "on", "at", "to", "do",
                                                       "what", "where", "when", "which", "our", "we", "in"}


def test_same_seed_same_conversations_other_seed_different() -> None:
    a = synth.to_locomo(synth.planted_conversations(5, n_turns=40, seed=3))
    b = synth.to_locomo(synth.planted_conversations(5, n_turns=40, seed=3))
    c = synth.to_locomo(synth.planted_conversations(5, n_turns=40, seed=4))
    assert a == b
    assert a != c


def test_shape_alternation_and_ids(convs: list[ev.Conversation]) -> None:
    assert len(convs) == 100 and len({c.id for c in convs}) == 100
    for c in convs:
        turns = c.turns
        assert len(turns) == 50
        assert [t.speaker for t in turns] == ["user", "assistant"] * 25
        assert len({t.dia_id for t in turns}) == 50
        assert all(len(s.turns) <= 16 for s in c.sessions)
        ts = [s.ts for s in c.sessions]
        assert all(t is not None for t in ts) and ts == sorted(ts)
        assert len(c.questions) == 50 // 12 and all(q.usable for q in c.questions)


def test_planted_fact_is_at_the_evidence_turn_and_nowhere_else(convs: list[ev.Conversation]) -> None:
    for c in convs:
        for q in c.questions:
            (evidence,) = q.evidence
            target = c.turn(evidence)
            assert target.speaker == "user"
            assert q.answer and q.answer in target.text
            others = [t.dia_id for t in c.turns if q.answer in t.text]
            assert others == [evidence], (c.id, q)


def test_questions_are_asked_after_their_evidence(convs: list[ev.Conversation]) -> None:
    for c in convs:
        index = {t.dia_id: t.index for t in c.turns}
        for q in c.questions:
            assert index[q.meta["asked_after"]] > index[q.evidence[0]]
            assert index[q.meta["fact_turn"]] <= index[q.evidence[0]]


def test_updates_point_at_the_new_value(convs: list[ev.Conversation]) -> None:
    updated = [(c, q) for c in convs for q in c.questions if q.category == 3]
    assert updated, "update_rate=0.3 over 400 facts should update some"
    for c, q in updated:
        old_turn = c.turn(q.meta["fact_turn"])
        assert q.meta["updated_from"] in old_turn.text
        assert q.meta["updated_from"] != q.answer
        assert old_turn.index < c.turn(q.evidence[0]).index


def test_paraphrased_questions_share_fewer_words_with_the_fact(convs: list[ev.Conversation]) -> None:
    overlap: dict[int, list[int]] = {1: [], 2: []}
    for c in convs:
        for q in c.questions:
            if q.category in overlap:
                overlap[q.category].append(len(_words(q.question) & _words(c.turn(q.evidence[0]).text)))
    assert overlap[1] and overlap[2]
    mean = {k: sum(v) / len(v) for k, v in overlap.items()}
    assert mean[2] < mean[1]


def test_locomo_round_trip(tmp_path: Path) -> None:
    original = synth.planted_conversations(3, n_turns=30, seed=11)
    path = tmp_path / "synth.json"
    synth.save_locomo(original, path)
    loaded = ev.load_locomo(path)
    assert [c.id for c in loaded] == [c.id for c in original]
    for a, b in zip(original, loaded):
        assert [(t.dia_id, t.speaker, t.text, t.ts) for t in a.turns] == [
            (t.dia_id, t.speaker, t.text, t.ts) for t in b.turns]
        assert [(q.question, q.answer, q.evidence, q.category, q.meta) for q in a.questions] == [
            (q.question, q.answer, q.evidence, q.category, q.meta) for q in b.questions]
    json.loads(path.read_text(encoding="utf-8"))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_turns"):
        synth.planted_conversations(1, n_turns=2)
    with pytest.raises(ValueError, match="n_facts"):
        synth.planted_conversations(1, n_turns=20, n_facts=50)
    with pytest.raises(ValueError, match="n_conversations"):
        synth.planted_conversations(-1)
    assert synth.planted_conversations(0) == []


def test_demo_conversation_loads_and_answers_are_in_the_evidence() -> None:
    conv = synth.load_demo_conversation()
    assert conv.id == "demo" and conv.speakers == ("Maya", "assistant")
    assert 4 <= len(conv.sessions) <= 6
    assert 60 <= len(conv.turns) <= 120
    assert all(s.ts is not None for s in conv.sessions)
    assert 3 <= len(conv.questions) <= 5 and all(q.usable and not q.unresolved for q in conv.questions)
    by_question = {q.question: q for q in conv.questions}
    expected = {
        "Which city does Maya live in now?": "Manchester",
        "Where does Maya work?": "Brightgrid",
        "How much does a mug from Kiln & Clover cost?": "£32",
        "What should I keep in mind when suggesting food for Maya?": "vegetarian",
        "When does the shop launch?": "4th of May",
    }
    for question, needle in expected.items():
        q = by_question[question]
        assert any(needle in conv.turn(d).text for d in q.evidence), question
    # facts that changed keep the superseded turn, which says something else
    price = by_question["How much does a mug from Kiln & Clover cost?"]
    (stale,) = price.meta["stale_evidence"]
    assert "£28" in conv.turn(stale).text and "£32" not in conv.turn(stale).text
