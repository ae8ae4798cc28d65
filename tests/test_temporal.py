"""Temporal facts: supersede chains, versions(), and what recall returns as of a time."""

from __future__ import annotations

import pytest

from recallcore import Memory


@pytest.fixture
def mem(tmp_path):
    with Memory(tmp_path / "store") as m:
        yield m


def chain(mem: Memory) -> list[int]:
    a = mem.add("Alice lives in Lyon", namespace="u", kind="fact", ts=100)
    b = mem.supersede(a, "Alice lives in Porto", ts=200)
    c = mem.supersede(b, "Alice lives in Oslo", ts=300)
    return [a, b, c]


def test_supersede_links_both_records_and_sets_validity(mem):
    a, b, c = chain(mem)
    ra, rb, rc = mem.get(a), mem.get(b), mem.get(c)
    assert (ra.superseded_by, ra.valid_to) == (b, 200)
    assert (rb.supersedes, rb.valid_from, rb.superseded_by, rb.valid_to) == (a, 200, c, 300)
    assert (rc.supersedes, rc.valid_from, rc.superseded_by) == (b, 300, None)


def test_supersede_inherits_namespace_and_kind(mem):
    a, b, _ = chain(mem)
    assert (mem.get(b).namespace, mem.get(b).kind) == ("u", "fact")


@pytest.mark.parametrize("member", [0, 1, 2])
def test_versions_returns_whole_chain_oldest_first_from_any_member(mem, member):
    ids = chain(mem)
    assert [r.id for r in mem.versions(ids[member])] == ids


def test_versions_of_unsuperseded_record_is_itself(mem):
    rid = mem.add("standalone", namespace="u")
    assert [r.id for r in mem.versions(rid)] == [rid]


def test_recall_returns_only_the_current_fact_by_default(mem):
    a, b, c = chain(mem)
    hits = mem.recall("Alice lives", namespace="u", k=10, now=1000)
    assert [h.id for h in hits] == [c]


@pytest.mark.parametrize("as_of,expected", [(150, 0), (250, 1), (350, 2)])
def test_recall_as_of_returns_what_was_true_then(mem, as_of, expected):
    ids = chain(mem)
    hits = mem.recall("Alice lives", namespace="u", k=10, as_of=as_of, now=1000)
    assert [h.id for h in hits] == [ids[expected]]


def test_recall_include_history_returns_every_version(mem):
    ids = chain(mem)
    hits = mem.recall("Alice lives", namespace="u", k=10, include_history=True, now=1000)
    assert sorted(h.id for h in hits) == ids


def test_superseding_twice_is_refused_and_changes_nothing(mem):
    a, b, c = chain(mem)
    with pytest.raises(ValueError):
        mem.supersede(a, "Alice lives in Rome", ts=400)
    assert mem.get(a).superseded_by == b
    assert mem.stats()["records"] == 3


def test_supersede_unknown_id_is_a_value_error(mem):
    with pytest.raises(ValueError):
        mem.supersede(999, "x")
