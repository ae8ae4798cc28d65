"""Context packing: recallcore.pack and the core's _core.pack_sections, specified by their invariants."""

from __future__ import annotations

import datetime
import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import recallcore
from recallcore import _core, pack
from recallcore.packing import _default_count

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def char_count(text: str) -> int:
    """An additive counter: count(a + b) == count(a) + count(b) for any split."""
    return len(text)


class WordCounter:
    """A counter object with .count (the other accepted shape); not additive across pieces."""

    def count(self, text: str) -> int:
        return len(text.split())


FRAMINGS = ["", "- ", "({date}) {role}: ", "[{id}|{fidelity}] {text} <end>"]
SEPARATORS = ["", "\n\n", " | "]

f32 = st.floats(min_value=0.0, max_value=100.0, width=32, allow_nan=False)
words = st.text(alphabet="ab c", min_size=0, max_size=60)


@st.composite
def item_lists(draw, max_items: int = 25, with_pinned: bool = True, sections: bool = True):
    n = draw(st.integers(0, max_items))
    out = []
    for i in range(n):
        item = {
            "text": draw(words),
            "score": draw(f32),
            "time": draw(st.floats(min_value=0, max_value=2e9, allow_nan=False)),
            "role": draw(st.sampled_from(["user", "assistant"])),
            "id": f"m{i}",
        }
        if draw(st.booleans()):
            item["summary"] = draw(st.text(alphabet="xy ", min_size=1, max_size=12))
        if sections:
            item["section"] = draw(st.sampled_from(["turns", "facts", "docs"]))
        if with_pinned and draw(st.integers(0, 9)) == 0:
            item["pinned"] = True
        out.append(item)
    return out


def pieces_total(ctx: recallcore.PackedContext, count, separator: str) -> int:
    return sum(count(i.text) for i in ctx.items) + count(separator) * max(0, len(ctx.items) - 1)


def non_pinned(ctx: recallcore.PackedContext):
    return [i for i in ctx.items if not i.pinned]


def render(item: dict, body: str, framing: str, fidelity: str) -> str:
    """An independent rendering of the FRAMINGS above."""
    if framing == "":
        return body
    if framing == "- ":
        return "- " + body
    if framing == "({date}) {role}: ":
        date = datetime.datetime.fromtimestamp(item["time"], datetime.timezone.utc).strftime("%Y-%m-%d")
        return f"({date}) {item['role']}: {body}"
    assert framing == "[{id}|{fidelity}] {text} <end>"
    return f"[{item['id']}|{fidelity}] {body} <end>"


def min_cost(item: dict, framing: str) -> int:
    full = len(render(item, item["text"], framing, "full"))
    if item.get("summary"):
        return min(full, len(render(item, item["summary"], framing, "summary")))
    return full


# --- the budget ---------------------------------------------------------------------------------------


@SETTINGS
@given(
    items=item_lists(),
    budget=st.integers(1, 400),
    framing=st.sampled_from(FRAMINGS),
    separator=st.sampled_from(SEPARATORS),
    order=st.sampled_from(["edges", "chronological", "score"]),
    mode=st.sampled_from(["auto", "greedy", "exact"]),
    counter=st.sampled_from([char_count, None, WordCounter()]),
    margin=st.integers(0, 3),
)
def test_total_never_exceeds_budget(items, budget, framing, separator, order, mode, counter, margin):
    assume(margin < budget)
    ctx = pack(items, budget, token_counter=counter, framing=framing, separator=separator, order=order,
               mode=mode, pinned_overflow="truncate", margin=margin)
    count = char_count if counter is char_count else _default_count if counter is None else counter.count
    assert pieces_total(ctx, count, separator) == ctx.tokens
    assert ctx.tokens <= budget - margin
    assert ctx.text == separator.join(i.text for i in ctx.items)
    if counter is char_count:
        assert len(ctx.text) <= budget - margin


@SETTINGS
@given(items=item_lists(), budget=st.integers(1, 300))
def test_every_item_is_either_packed_or_dropped_once(items, budget):
    ctx = pack(items, budget, token_counter=char_count, pinned_overflow="truncate", dedupe=None)
    ids = [i.id for i in ctx.items] + [d.id for d in ctx.dropped]
    assert sorted(ids) == sorted(it["id"] for it in items)
    assert [i.position for i in ctx.items] == list(range(len(ctx.items)))


def test_empty_input_packs_to_empty_text():
    ctx = pack([], 10)
    assert (ctx.text, ctx.items, ctx.dropped, ctx.tokens) == ("", (), (), 0)


def test_everything_fits_at_full_text():
    items = ["alpha", "beta", "gamma"]
    ctx = pack(items, 1000, token_counter=char_count, order="score")
    assert [i.text for i in ctx.items] == items
    assert all(i.fidelity == "full" for i in ctx.items)
    assert ctx.tokens == len("alpha\n\nbeta\n\ngamma")


def test_separator_is_not_charged_for_a_single_item():
    ctx = pack(["abcde", "fghij"], 5, token_counter=char_count, separator="--")
    assert [i.text for i in ctx.items] == ["abcde"]
    ctx = pack(["abcde", "fghij"], 12, token_counter=char_count, separator="--")
    assert ctx.tokens == 12 and ctx.text == "abcde--fghij"


# --- pinned -------------------------------------------------------------------------------------------


@SETTINGS
@given(items=item_lists(), budget=st.integers(1, 400), framing=st.sampled_from(FRAMINGS),
       separator=st.sampled_from(SEPARATORS))
def test_pinned_items_are_present_whenever_they_fit(items, budget, framing, separator):
    pinned = [it for it in items if it.get("pinned")]
    need = sum(min_cost(it, framing) for it in pinned)
    need += char_count(separator) * max(0, len(pinned) - 1)
    kw = dict(token_counter=char_count, framing=framing, separator=separator)
    if need <= budget:
        ctx = pack(items, budget, **kw)
        # The pinned block: sections in order of first appearance, items in the order given.
        sections = list(dict.fromkeys(it["section"] for it in pinned))
        expected = [it["id"] for s in sections for it in pinned if it["section"] == s]
        assert [i.id for i in ctx.items if i.pinned] == expected
        assert [i.position for i in ctx.items if i.pinned] == list(range(len(pinned)))
    else:
        with pytest.raises(ValueError, match=rf"pinned items need {need} tokens, budget is {budget}"):
            pack(items, budget, **kw)


def test_pinned_items_are_downgraded_to_summaries_least_important_first():
    items = [
        {"text": "A" * 50, "summary": "a" * 5, "score": 3.0, "pinned": True},
        {"text": "B" * 50, "summary": "b" * 5, "score": 1.0, "pinned": True},
    ]
    ctx = pack(items, 60, token_counter=char_count, separator="")
    assert [(i.id, i.fidelity) for i in ctx.items] == [(0, "full"), (1, "summary")]


def test_pinned_overflow_error_names_the_numbers():
    items = [{"text": "x" * 30, "pinned": True}, {"text": "y" * 30, "pinned": True}]
    with pytest.raises(ValueError, match=r"pinned items need 62 tokens, budget is 40"):
        pack(items, 40, token_counter=char_count, separator="--")


def test_pinned_overflow_error_accounts_for_the_margin():
    with pytest.raises(ValueError, match=r"need 30 tokens, budget is 8 .*\[the budget 10 minus margin 2\]"):
        pack([{"text": "x" * 30, "pinned": True}], 10, token_counter=char_count, margin=2)


def test_pinned_overflow_truncate_keeps_the_most_important_and_reports_the_rest():
    items = [
        {"text": "x" * 30, "score": 1.0, "id": "low", "pinned": True},
        {"text": "y" * 30, "score": 2.0, "id": "high", "pinned": True},
        {"text": "z" * 5, "score": 9.0, "id": "free"},
    ]
    ctx = pack(items, 40, token_counter=char_count, separator="", pinned_overflow="truncate")
    assert [i.id for i in ctx.items] == ["high", "free"]
    assert [(d.id, d.reason) for d in ctx.dropped] == [("low", "pinned_over_budget")]


def test_pinned_by_id_and_by_section_option():
    items = [{"text": "t1", "section": "state"}, {"text": "t2"}, {"text": "t3", "id": "keep"}]
    ctx = pack(items, 100, token_counter=char_count, pinned=["keep"], sections={"state": {"pinned": True}},
               order="score")
    assert [(i.id, i.pinned) for i in ctx.items] == [(0, True), ("keep", True), (1, False)]


# --- ordering -----------------------------------------------------------------------------------------


def distinct_scores(items):
    return len({np.float32(it["score"]) for it in items}) == len(items)


@SETTINGS
@given(items=item_lists(with_pinned=False), budget=st.integers(1, 400),
       mode=st.sampled_from(["greedy", "exact"]))
def test_edges_puts_rank_one_first_rank_two_last_and_the_least_in_the_middle(items, budget, mode):
    assume(distinct_scores(items))
    ctx = pack(items, budget, token_counter=char_count, order="edges", mode=mode)
    chosen = non_pinned(ctx)
    ranked = sorted(chosen, key=lambda i: -i.score)
    if len(chosen) >= 1:
        assert chosen[0].id == ranked[0].id
    if len(chosen) >= 2:
        assert chosen[-1].id == ranked[1].id
    # The full pattern: even ranks from the front, odd ranks from the back.
    expected = [None] * len(chosen)
    front, back = 0, len(chosen) - 1
    for r, it in enumerate(ranked):
        if r % 2 == 0:
            expected[front] = it.id
            front += 1
        else:
            expected[back] = it.id
            back -= 1
    assert [i.id for i in chosen] == expected


@SETTINGS
@given(items=item_lists(), budget=st.integers(1, 400))
def test_chronological_is_sorted_by_time_after_the_pinned_block(items, budget):
    ctx = pack(items, budget, token_counter=char_count, order="chronological", pinned_overflow="truncate")
    time_of = {it["id"]: it["time"] for it in items}
    times = [time_of[i.id] for i in non_pinned(ctx)]
    assert times == sorted(times)
    assert all(i.pinned for i in ctx.items[: sum(i.pinned for i in ctx.items)])


@SETTINGS
@given(items=item_lists(), budget=st.integers(1, 400))
def test_score_order_is_descending(items, budget):
    ctx = pack(items, budget, token_counter=char_count, order="score", pinned_overflow="truncate")
    scores = [np.float32(i.score) for i in non_pinned(ctx)]
    assert scores == sorted(scores, reverse=True)


def test_ties_are_broken_by_id_in_input_order():
    ctx = pack([{"text": "a", "score": 1.0}, {"text": "b", "score": 1.0}, {"text": "c", "score": 1.0}], 100,
               order="score", token_counter=char_count)
    assert [i.id for i in ctx.items] == [0, 1, 2]


def test_scores_default_to_rank_order():
    ctx = pack(["first", "second", "third"], 100, order="score", token_counter=char_count)
    assert [i.id for i in ctx.items] == [0, 1, 2]
    assert [i.score for i in ctx.items] == [3.0, 2.0, 1.0]


def test_pinned_items_may_omit_scores_when_others_have_them():
    items = [{"text": "state", "pinned": True}, {"text": "doc", "score": 0.7}]
    ctx = pack(items, 100, token_counter=char_count)
    assert [(i.id, i.pinned, i.score) for i in ctx.items] == [(0, True, 0.0), (1, False, 0.7)]


def test_chronological_needs_no_time_on_pinned_items():
    items = [{"text": "state", "pinned": True}, {"text": "b", "time": 2.0}, {"text": "a", "time": 1.0}]
    ctx = pack(items, 100, order="chronological", token_counter=char_count, separator="|")
    assert ctx.text == "state|a|b"


def test_chronological_without_times_keeps_input_order():
    ctx = pack(["c", "a", "b"], 100, order="chronological", token_counter=char_count)
    assert ctx.text == "c\n\na\n\nb"


# --- determinism --------------------------------------------------------------------------------------


@SETTINGS
@given(items=item_lists(), budget=st.integers(1, 400),
       order=st.sampled_from(["edges", "chronological", "score"]),
       mode=st.sampled_from(["auto", "greedy", "exact"]), seed=st.integers(0, 2**32 - 1))
def test_packing_is_deterministic_and_independent_of_input_order(items, budget, order, mode, seed):
    priorities = {"turns": {"priority": 0}, "facts": {"priority": 1}, "docs": {"priority": 2}}
    kw = dict(token_counter=char_count, order=order, mode=mode, pinned_overflow="truncate", framing="- ",
              sections=priorities)
    a = pack(items, budget, **kw)
    b = pack(items, budget, **kw)
    assert a == b
    # Ids are explicit and ties are broken by id, so a shuffled input packs the same; only the pinned
    # block keeps the order it was given in.
    shuffled = [items[i] for i in np.random.default_rng(seed).permutation(len(items))]
    c = pack(shuffled, budget, **kw)
    assert [i.id for i in non_pinned(c)] == [i.id for i in non_pinned(a)]
    assert sorted(i.id for i in c.items if i.pinned) == sorted(i.id for i in a.items if i.pinned)
    assert c.tokens == a.tokens


# --- selection quality --------------------------------------------------------------------------------


def value(ctx, fidelity=0.5):
    return sum(float(np.float32(i.score)) * (1.0 if i.fidelity == "full" else fidelity) for i in ctx.items)


@SETTINGS
@given(items=item_lists(max_items=12, with_pinned=False, sections=False), budget=st.integers(1, 300),
       separator=st.sampled_from(SEPARATORS))
def test_exact_total_score_is_at_least_greedy(items, budget, separator):
    kw = dict(token_counter=char_count, separator=separator)
    exact = pack(items, budget, mode="exact", **kw)
    greedy = pack(items, budget, mode="greedy", **kw)
    assert value(exact) >= value(greedy) - 1e-9


def brute_force_best(items, budget, separator, fidelity=0.5):
    """Every full/summary/nothing assignment, with the same accounting as the packer."""
    options = []
    for it in items:
        score = float(np.float32(it["score"]))
        opts = [None, (len(it["text"]), score)]
        if it.get("summary"):
            opts.append((len(it["summary"]), score * fidelity))
        options.append(opts)
    best = 0.0
    for combo in itertools.product(*options):
        chosen = [c for c in combo if c is not None]
        tokens = sum(t for t, _ in chosen) + len(separator) * max(0, len(chosen) - 1)
        if tokens <= budget:
            best = max(best, sum(v for _, v in chosen))
    return best


@SETTINGS
@given(items=item_lists(max_items=6, with_pinned=False, sections=False), budget=st.integers(1, 150),
       separator=st.sampled_from(SEPARATORS), fidelity=st.sampled_from([0.0, 0.5, 0.9, 1.0]))
def test_exact_matches_brute_force_on_tiny_inputs(items, budget, separator, fidelity):
    ctx = pack(items, budget, token_counter=char_count, separator=separator, mode="exact",
               summary_fidelity=fidelity)
    assert math.isclose(value(ctx, fidelity), brute_force_best(items, budget, separator, fidelity),
                        rel_tol=1e-9, abs_tol=1e-9)


def test_exact_finds_the_optimum_where_greedy_is_fooled_by_density():
    # Greedy takes the densest item (7 for 6 tokens), after which neither 5-token item fits: 7 < 10.
    items = [{"text": "a" * 6, "score": 7.0}, {"text": "b" * 5, "score": 5.0}, {"text": "c" * 5, "score": 5}]
    greedy = pack(items, 10, token_counter=char_count, separator="", mode="greedy")
    exact = pack(items, 10, token_counter=char_count, separator="", mode="exact")
    assert sorted(i.id for i in greedy.items) == [0]
    assert sorted(i.id for i in exact.items) == [1, 2] and exact.exact
    auto = pack(items, 10, token_counter=char_count, separator="")
    assert sorted(i.id for i in auto.items) == [1, 2]


def test_greedy_never_loses_more_than_half_to_a_small_efficient_item():
    # Density alone would take the 1-token item and then not fit the 10-token one (2 against 10).
    items = [{"text": "a", "score": 2.0}, {"text": "b" * 10, "score": 10.0}]
    greedy = pack(items, 10, token_counter=char_count, separator="", mode="greedy")
    assert [i.id for i in greedy.items] == [1]


@settings(max_examples=400, deadline=None)
@given(items=item_lists(max_items=8, with_pinned=False, sections=False), budget=st.integers(1, 200),
       separator=st.sampled_from(SEPARATORS))
def test_greedy_is_within_half_of_the_optimum(items, budget, separator):
    greedy = pack(items, budget, token_counter=char_count, separator=separator, mode="greedy")
    assert value(greedy) >= 0.5 * brute_force_best(items, budget, separator) - 1e-9


def test_summary_is_used_when_the_full_text_does_not_fit():
    items = [{"text": "x" * 100, "summary": "short", "score": 1.0}]
    ctx = pack(items, 20, token_counter=char_count)
    assert [(i.fidelity, i.text, i.tokens) for i in ctx.items] == [("summary", "short", 5)]


@pytest.mark.parametrize("mode", ["greedy", "exact"])
def test_greedy_and_exact_upgrade_a_summary_when_the_marginal_gain_is_worth_it(mode):
    # Budget 40: one full (30) + one summary (5) beats two summaries (10) + nothing else.
    items = [
        {"text": "a" * 30, "summary": "a" * 5, "score": 10.0},
        {"text": "b" * 30, "summary": "b" * 5, "score": 1.0},
    ]
    ctx = pack(items, 40, token_counter=char_count, separator="", mode=mode)
    assert {i.id: i.fidelity for i in ctx.items} == {0: "full", 1: "summary"}


def test_framing_template_and_prefix_are_rendered_and_counted():
    items = [{"text": "hello", "role": "user", "time": 0.0}]
    ctx = pack(items, 100, token_counter=char_count, framing="({date}) {role}: {text}!")
    assert ctx.text == "(1970-01-01) user: hello!"
    assert ctx.tokens == len(ctx.text)
    ctx = pack(["hello"], 100, token_counter=char_count, framing="> ")
    assert ctx.text == "> hello" and ctx.tokens == 7


def test_callable_framing_and_counter_object():
    ctx = pack(["a b", "c"], 100, token_counter=WordCounter(), framing=lambda f: f"<{f['id']}> {f['text']}",
               order="score")
    assert ctx.text == "<0> a b\n\n<1> c"
    assert ctx.tokens == 3 + 2


def test_sections_are_filled_in_priority_order():
    items = [{"text": "d" * 10, "section": "docs", "score": 100.0}] + [
        {"text": "t" * 10, "section": "turns", "score": 1.0} for _ in range(3)
    ]
    ctx = pack(items, 30, token_counter=char_count, separator="",
               sections={"turns": {"priority": 0}, "docs": {"priority": 1}})
    assert sorted(i.section for i in ctx.items) == ["turns"] * 3
    assert [(d.section, d.reason) for d in ctx.dropped] == [("docs", "budget")]


@SETTINGS
@given(items=item_lists(with_pinned=False), budget=st.integers(1, 400), quota=st.integers(0, 120),
       separator=st.sampled_from(SEPARATORS))
def test_quotas_are_respected(items, budget, quota, separator):
    ctx = pack(items, budget, token_counter=char_count, separator=separator,
               sections={"docs": {"quota": quota}})
    docs = [i for i in ctx.items if i.section == "docs"]
    assert sum(i.tokens for i in docs) + len(separator) * max(0, len(docs) - 1) <= quota
    assert all(d.section == "docs" for d in ctx.dropped if d.reason == "quota")


def test_quota_drops_are_reported_as_quota():
    items = [{"text": "x" * 10, "section": "docs"} for _ in range(3)]
    ctx = pack(items, 1000, token_counter=char_count, separator="", sections={"docs": {"quota": 20}})
    assert len(ctx.items) == 2
    assert [d.reason for d in ctx.dropped] == ["quota"]


# --- dedupe -------------------------------------------------------------------------------------------


def test_dedupe_drops_the_lower_scored_near_duplicate():
    items = [
        {"text": "cats are great", "score": 0.5, "vector": [1.0, 0.0, 0.0], "id": "weak"},
        {"text": "cats are great!", "score": 0.9, "vector": [0.99, 0.05, 0.0], "id": "strong"},
        {"text": "dogs", "score": 0.1, "vector": [0.0, 1.0, 0.0], "id": "other"},
        {"text": "no vector", "score": 0.2, "id": "plain"},
    ]
    ctx = pack(items, 1000, token_counter=char_count, dedupe=0.95)
    assert sorted(i.id for i in ctx.items) == ["other", "plain", "strong"]
    assert [(d.id, d.reason) for d in ctx.dropped] == [("weak", "duplicate")]
    # Below the threshold nothing is dropped.
    assert len(pack(items, 1000, token_counter=char_count, dedupe=0.9999).items) == 4
    assert len(pack(items, 1000, token_counter=char_count).items) == 4


def test_dedupe_with_threshold_one_catches_identical_vectors_and_spares_pinned():
    v = [0.3, 0.4, 0.5]
    items = [
        {"text": "a", "score": 5.0, "vector": v},
        {"text": "b", "score": 1.0, "vector": v, "pinned": True},
    ]
    ctx = pack(items, 100, token_counter=char_count, dedupe=1.0)
    assert [i.id for i in ctx.items] == [1]
    assert [(d.id, d.reason) for d in ctx.dropped] == [(0, "duplicate")]


@SETTINGS
@given(n=st.integers(2, 20), seed=st.integers(0, 2**32 - 1), t=st.floats(0.5, 0.99))
def test_dedupe_matches_a_numpy_oracle(n, seed, t):
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, 4)).astype(np.float32)
    odd = len(vecs[1::2])  # each odd row is a noisy copy of the even row before it
    vecs[1::2] = vecs[0::2][:odd] + 0.05 * rng.standard_normal((odd, 4)).astype(np.float32)
    scores = rng.permutation(n).astype(np.float32)
    unit = vecs.astype(np.float64) / np.linalg.norm(vecs.astype(np.float64), axis=1, keepdims=True)
    sim = unit @ unit.T
    assume(np.all(np.abs(sim - t) > 1e-4))
    kept = []
    for i in np.argsort(-scores, kind="stable"):
        if all(sim[i, k] < t for k in kept):
            kept.append(int(i))
    items = [{"text": "x", "score": float(scores[i]), "vector": vecs[i]} for i in range(n)]
    ctx = pack(items, 10_000, token_counter=char_count, dedupe=t)
    assert sorted(i.id for i in ctx.items) == sorted(kept)


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"budget": 0}, ValueError, "budget must be > 0"),
        ({"budget": -5}, ValueError, "budget must be > 0 tokens, got -5"),
        ({"budget": 2.5}, TypeError, "budget must be an int"),
        ({"order": "middle"}, ValueError, "order must be one of 'edges', 'chronological', 'score'"),
        ({"mode": "fast"}, ValueError, "mode must be one of"),
        ({"pinned_overflow": "ignore"}, ValueError, "pinned_overflow must be one of"),
        ({"dedupe": 0.0}, ValueError, r"dedupe must be a cosine similarity threshold in \(0, 1\]"),
        ({"dedupe": 1.5}, ValueError, "dedupe must be"),
        ({"summary_fidelity": 2.0}, ValueError, "summary_fidelity must be in"),
        ({"margin": 10}, ValueError, r"margin \(10\) must be smaller than the budget \(10\)"),
        ({"margin": -1}, ValueError, "margin must be an int >= 0"),
        ({"pinned": ["nope"]}, ValueError, "pinned names id 'nope'"),
        ({"pinned": "state"}, TypeError, "pinned takes a collection of item ids"),
        ({"summaries": ["a"]}, ValueError, "one entry per item"),
        ({"summaries": {"zz": "a"}}, ValueError, "summaries names id 'zz'"),
        ({"token_counter": lambda s: -1}, ValueError, "returned -1"),
        ({"token_counter": lambda s: 1.5}, TypeError, "must return an int"),
        ({"token_counter": 42}, TypeError, "token_counter must be a callable"),
        ({"framing": "{missing}: "}, ValueError, "refers to 'missing'"),
        ({"framing": "{"}, ValueError, "framing is not a valid format string"),
        ({"sections": {"default": {"size": 3}}}, ValueError, "unknown keys"),
        ({"sections": {"default": {"quota": -1}}}, ValueError, "quota'] must be an int >= 0"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, exc, match):
    args = {"items": ["a", "b"], "budget": 10, **kwargs}
    with pytest.raises(exc, match=match):
        pack(args.pop("items"), args.pop("budget"), **args)


@pytest.mark.parametrize(
    ("items", "exc", "match"),
    [
        ([{"text": "a", "score": -1.0}], ValueError, "score must be a finite number >= 0"),
        ([{"text": "a", "score": float("nan")}], ValueError, "score must be a finite number"),
        ([{"text": "a", "score": 1.0}, {"text": "b"}], ValueError, "item 1 has no score but others do"),
        ([{"text": "a", "id": 7}, {"text": "b", "id": 7}], ValueError, "ids must be unique: 7"),
        ([{"score": 1.0}], TypeError, "item 0 needs a str 'text'"),
        ([{"text": "a", "summary": 3}], TypeError, "summary must be a str"),
        ([{"text": "a", "time": float("inf")}], ValueError, "time must be finite"),
    ],
)
def test_bad_items_raise_clear_errors(items, exc, match):
    with pytest.raises(exc, match=match):
        pack(items, 10)


def test_chronological_needs_times_on_all_items_or_none():
    with pytest.raises(ValueError, match="needs a time on every item; item 1 has none"):
        pack([{"text": "a", "time": 1.0}, {"text": "b"}], 10, order="chronological")


def test_dedupe_vectors_must_share_a_dimension():
    items = [{"text": "a", "vector": [1.0, 0.0]}, {"text": "b", "vector": [1.0, 0.0, 0.0]}]
    with pytest.raises(ValueError, match="item 1: vector has 3 dimensions, earlier items have 2"):
        pack(items, 10, dedupe=0.9)


def test_items_must_be_a_sequence_of_items():
    with pytest.raises(TypeError, match="items must be a sequence"):
        pack("just a string", 10)


def test_repr_summarises_the_result():
    ctx = pack(["a" * 8, "b" * 8, "c" * 8], 10, token_counter=char_count)
    assert repr(ctx) == "PackedContext(tokens=8/10, items=1 (summaries=0, pinned=0), dropped=2 (budget=2))"
    assert ctx.manifest is ctx.items


# --- the core entry point -----------------------------------------------------------------------------


def section(n: int = 3, **extra):
    s = {
        "ids": np.arange(n, dtype=np.uint64),
        "scores": np.ones(n, dtype=np.float32),
        "tokens": np.full(n, 10, dtype=np.uint32),
    }
    s.update(extra)
    return s


def test_pack_sections_returns_arrays_in_output_order():
    r = _core.pack_sections([section(3, scores=np.array([1, 3, 2], np.float32))], 25, order="score",
                            separator_tokens=1)
    assert r["ids"].tolist() == [1, 2] and r["total_tokens"] == 21
    assert r["dropped_ids"].tolist() == [0]
    assert _core.PACK_DROP_REASONS[r["dropped_reasons"][0]] == "budget"


@pytest.mark.parametrize(
    ("sections", "kwargs", "exc", "match"),
    [
        ([section(scores=np.ones(3))], {}, TypeError, r"sections\[0\]\['scores'\] must have dtype float32"),
        ([section(tokens=np.ones(2, np.uint32))], {}, ValueError, "must have 3 entries"),
        ([section(colour=1)], {}, ValueError, "unknown key 'colour'"),
        ([section(pinned=True, quota=5)], {}, ValueError, "pinned sections take no quota"),
        ([section(vectors=np.ones((3, 2)))], {"dedupe": 0.9}, TypeError, "vectors'] must have dtype"),
        ([section(vectors=np.full((3, 2), np.nan, np.float32))], {"dedupe": 0.9}, ValueError,
         "holds NaN or inf"),
        ([section(ids=np.zeros(3, np.uint64))], {}, ValueError, "ids must be unique; id 0 repeats"),
        ([section(300, tokens=np.full(300, 1000, np.uint32))], {"mode": "exact", "budget": 200_000},
         ValueError, "too large"),
        ([section()], {"budget": 0}, ValueError, "budget must be > 0"),
        ([section()], {"order": "random"}, ValueError, "order must be"),
        ([section()], {"separator_tokens": -1}, ValueError, "separator_tokens must be in"),
        ([section(scores=np.full(3, np.nan, np.float32))], {}, ValueError, "score must be finite"),
    ],
)
def test_pack_sections_validates_its_arguments(sections, kwargs, exc, match):
    budget = kwargs.pop("budget", 100)
    with pytest.raises(exc, match=match):
        _core.pack_sections(sections, budget, **kwargs)


@SETTINGS
@given(n=st.integers(0, 40), seed=st.integers(0, 2**32 - 1), budget=st.integers(1, 500),
       sep=st.integers(0, 5), frame=st.integers(0, 8), mode=st.sampled_from(["auto", "greedy", "exact"]),
       order=st.sampled_from(["edges", "chronological", "score"]))
def test_pack_sections_counts_framing_and_separators_within_budget(n, seed, budget, sep, frame, mode, order):
    rng = np.random.default_rng(seed)
    full = rng.integers(0, 60, n).astype(np.uint32)
    summ = (rng.integers(0, 2, n) * rng.integers(1, 20, n)).astype(np.uint32)
    per_item = rng.integers(0, 6, n).astype(np.uint32)
    sec = section(n, scores=rng.random(n).astype(np.float32), tokens=full, summary_tokens=summ,
                  framing=per_item, time=rng.random(n))
    r = _core.pack_sections([sec], budget, separator_tokens=sep, framing_tokens=frame, mode=mode, order=order)
    k = len(r["ids"])
    expected = [frame + int(per_item[i]) + int(summ[i] if f == 1 else full[i])
                for i, f in zip(r["indices"].tolist(), r["fidelity"].tolist())]
    assert r["tokens"].tolist() == expected
    assert r["total_tokens"] == sum(expected) + sep * max(0, k - 1) <= budget
    assert sorted(r["ids"].tolist() + r["dropped_ids"].tolist()) == list(range(n))


def test_pack_sections_auto_ceiling_is_configurable():
    sec = section(10, tokens=np.full(10, 30, np.uint32), scores=np.arange(1, 11, dtype=np.float32))
    assert _core.pack_sections([sec], 100)["used_exact"]
    assert not _core.pack_sections([sec], 100, exact_max_items=5)["used_exact"]
    assert not _core.pack_sections([sec], 100, exact_max_budget=50)["used_exact"]
