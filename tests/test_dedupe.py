"""Duplicates on write: exact (normalised text) and near (vector) detection; keep, skip and merge."""

from __future__ import annotations

import numpy as np
import pytest

from recallcore import Memory


@pytest.fixture
def mem(tmp_path):
    with Memory(tmp_path / "store", dim=8) as m:
        yield m


def unit(v) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def test_keep_is_the_default_and_writes_duplicates(mem):
    a = mem.add("Likes green tea", namespace="u", kind="preference")
    b = mem.add("Likes green tea", namespace="u", kind="preference")
    assert a != b and mem.stats()["records"] == 2


def test_skip_returns_existing_id_for_normalised_text_without_writing(mem):
    a = mem.add("Likes green tea.", namespace="u", kind="preference")
    seq = mem.stats()["seq"]
    b = mem.add("  likes GREEN   tea!! ", namespace="u", kind="preference", dedupe="skip")
    assert b == a
    assert mem.stats()["records"] == 1 and mem.stats()["seq"] == seq


def test_skip_writes_when_text_differs(mem):
    a = mem.add("Likes green tea", namespace="u", kind="preference")
    b = mem.add("Likes black tea", namespace="u", kind="preference", dedupe="skip")
    assert a != b


@pytest.mark.parametrize("other", [{"namespace": "v"}, {"kind": "fact"}])
def test_duplicates_are_only_found_within_same_namespace_and_kind(mem, other):
    a = mem.add("Likes green tea", namespace="u", kind="preference")
    kwargs = {"namespace": "u", "kind": "preference", **other}
    assert mem.add("Likes green tea", dedupe="skip", **kwargs) != a


def test_merge_keeps_earliest_ts_highest_importance_counts_repeats_and_unions_entities(mem):
    a = mem.add("Allergic to peanuts", namespace="u", kind="fact", ts=500, importance=0.3,
                entities=["peanuts"])
    b = mem.add("allergic to peanuts", namespace="u", kind="fact", ts=100, importance=0.9,
                entities=["Peanuts", "allergy"], dedupe="merge")
    c = mem.add("Allergic to peanuts!", namespace="u", kind="fact", ts=900, importance=0.1, dedupe="merge")
    assert a == b == c
    r = mem.get(a)
    assert r.ts == 100 and r.importance == pytest.approx(0.9) and r.repeats == 3
    assert r.entities == ("peanuts", "allergy")
    assert mem.stats()["records"] == 1
    assert [x.id for x in mem.history("u", since=0, until=200)] == [a]  # secondary keys follow the new ts


def test_near_duplicate_by_vector_similarity_at_threshold(mem):
    v = unit([1, 0, 0, 0, 0, 0, 0, 0])
    close = unit([1, 0.05, 0, 0, 0, 0, 0, 0])  # cosine ~0.9988
    far = unit([1, 1, 0, 0, 0, 0, 0, 0])  # cosine ~0.707
    a = mem.add("The flight is at nine", namespace="u", kind="fact", vector=v)
    assert mem.add("Flight leaves 9am", namespace="u", kind="fact", vector=close, dedupe="skip") == a
    assert mem.add("Flight leaves 9am", namespace="u", kind="fact", vector=far, dedupe="skip") != a


def test_dedupe_threshold_is_configurable(mem):
    a = mem.add("x one", namespace="u", vector=unit([1, 0, 0, 0, 0, 0, 0, 0]))
    far = unit([1, 1, 0, 0, 0, 0, 0, 0])
    assert mem.add("y two", namespace="u", vector=far, dedupe="skip", dedupe_threshold=0.7) == a
    assert mem.add("z three", namespace="u", vector=far, dedupe="skip", dedupe_threshold=0.99) != a


def test_superseded_and_archived_records_are_not_dedupe_targets(mem):
    a = mem.add("Lives in Lyon", namespace="u", kind="fact", ts=1)
    mem.supersede(a, "Lives in Porto", ts=2)
    assert mem.add("Lives in Lyon", namespace="u", kind="fact", dedupe="skip") != a
    b = mem.add("note", namespace="u")
    mem.update(b, archived=True)
    assert mem.add("note", namespace="u", dedupe="skip") != b


def test_deleted_record_is_not_a_dedupe_target(mem):
    a = mem.add("Likes tea", namespace="u")
    mem.delete(a)
    assert mem.add("Likes tea", namespace="u", dedupe="skip") != a


def test_updated_text_moves_the_dedupe_key(mem):
    a = mem.add("Likes tea", namespace="u")
    mem.update(a, text="Likes coffee")
    assert mem.add("Likes tea", namespace="u", dedupe="skip") != a
    assert mem.add("likes coffee", namespace="u", dedupe="skip") == a


def test_bad_dedupe_mode_is_rejected_and_store_unchanged(mem):
    with pytest.raises(ValueError):
        mem.add("x", dedupe="drop")
    with pytest.raises(ValueError):
        mem.add("x", dedupe="skip", dedupe_threshold=1.5)
    assert mem.stats()["records"] == 0
