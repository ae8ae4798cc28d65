"""Evaluation library: metrics on hand-made rankings, the LoCoMo-layout loader, vectors, the runner."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest

from recallcore import eval as ev

# ------------------------------------------------------------------------------------- metrics


def test_recall_at_k_counts_share_of_relevant_in_top_k() -> None:
    ranked = ["a", "x", "b", "y", "c"]
    assert ev.recall_at_k(ranked, {"a", "b", "c"}, 1) == pytest.approx(1 / 3)
    assert ev.recall_at_k(ranked, {"a", "b", "c"}, 3) == pytest.approx(2 / 3)
    assert ev.recall_at_k(ranked, {"a", "b", "c"}, 5) == 1.0
    assert ev.recall_at_k(ranked, {"z"}, 5) == 0.0


def test_recall_k_beyond_list_and_duplicates() -> None:
    assert ev.recall_at_k(["a"], ["a", "b"], 100) == 0.5
    assert ev.recall_at_k(["a", "a", "a"], ["a", "b"], 3) == 0.5
    assert ev.recall_at_k([], ["a"], 3) == 0.0
    # relevant given with a duplicate still counts as one item
    assert ev.recall_at_k(["a"], ["a", "a"], 1) == 1.0


def test_all_evidence_at_k() -> None:
    assert ev.all_evidence_at_k(["a", "b", "c"], ["a", "c"], 3) == 1.0
    assert ev.all_evidence_at_k(["a", "b", "c"], ["a", "c"], 2) == 0.0


def test_mrr() -> None:
    assert ev.mrr(["a", "b"], ["a"]) == 1.0
    assert ev.mrr(["x", "y", "b", "a"], ["a", "b"]) == pytest.approx(1 / 3)
    assert ev.mrr(["x", "y"], ["a"]) == 0.0
    assert ev.mrr(["x", "y", "a"], ["a"], k=2) == 0.0


def test_ndcg_hand_computed() -> None:
    # relevant {a, b}; ranking x, a, b: DCG = 1/log2(3) + 1/log2(4) = 0.63093 + 0.5
    # ideal = 1 + 1/log2(3) = 1.63093  -> 0.69342
    got = ev.ndcg_at_k(["x", "a", "b"], {"a", "b"}, 3)
    assert got == pytest.approx((1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3)))
    assert ev.ndcg_at_k(["a", "b", "x"], {"a", "b"}, 3) == pytest.approx(1.0)
    # k smaller than the number of relevant ids: the ideal has only k gains
    assert ev.ndcg_at_k(["a"], {"a", "b", "c"}, 1) == pytest.approx(1.0)
    # a repeated relevant id gains once
    assert ev.ndcg_at_k(["a", "a"], {"a", "b"}, 2) == pytest.approx(1 / (1 + 1 / math.log2(3)))


@pytest.mark.parametrize("metric", [ev.recall_at_k, ev.all_evidence_at_k, ev.ndcg_at_k])
def test_metrics_reject_bad_k_and_empty_relevant(metric: Any) -> None:
    with pytest.raises(ValueError, match="k must be"):
        metric(["a"], ["a"], 0)
    with pytest.raises(ValueError, match="relevant"):
        metric(["a"], [], 3)
    with pytest.raises(ValueError, match="relevant"):
        ev.mrr(["a"], [])


def test_evidence_in_context_and_positions() -> None:
    order = ["a", "b", "c", "d", "e", "f"]
    assert ev.evidence_in_context(order, ["a", "f", "z", "q"]) == 0.5
    pos = ev.evidence_positions(order, {"f", "a", "c", "d"})
    assert [p.id for p in pos] == ["a", "c", "d", "f"]
    # slot centres (i + 0.5) / 6: 1/12, 5/12, 7/12, 11/12
    assert [p.relative for p in pos] == pytest.approx([1 / 12, 5 / 12, 7 / 12, 11 / 12])
    assert [p.third for p in pos] == ["start", "middle", "middle", "end"]
    assert all(0 <= p.relative <= 1 for p in pos)


def test_evidence_positions_edge_cases() -> None:
    assert ev.evidence_positions([], {"a"}) == []
    (only,) = ev.evidence_positions(["a"], {"a"})
    assert only.third == "middle" and only.relative == 0.5
    first, last = ev.evidence_positions(["a", "b"], {"a", "b"})
    assert (first.third, last.third) == ("start", "end")
    # a repeated id counts at its first position
    assert [p.index for p in ev.evidence_positions(["x", "a", "a"], {"a"})] == [1]


# -------------------------------------------------------------------------------------- loader

TINY = [
    {
        "sample_id": "conv-a",
        "conversation": {
            "speaker_a": "Ann",
            "speaker_b": "Bob",
            "session_2_date_time": "1:56 pm on 8 May, 2023",
            "session_2": [
                {"speaker": "Ann", "dia_id": "D2:1", "text": "Back from Lisbon!"},
                {"speaker": "Bob", "dia_id": "D2:2", "text": "Look at this", "img_url": ["http://x/y.jpg"],
                 "blip_caption": "a photo of a tram", "query": "tram"},
            ],
            "session_1_date_time": "29.12.2023, 22:42:04",
            "session_1": [
                {"speaker": "Ann", "dia_id": "D1:1", "text": "Hi Bob"},
                {"speaker": "Bob", "dia_id": "D1:2", "text": "Hi Ann, I adopted a cat"},
            ],
            "session_3_date_time": "sometime in spring",
            "session_3": [{"speaker": "Ann", "dia_id": "D3:1", "text": "Bye"}],
            "session_10": [{"speaker": "Ann", "dia_id": "D10:1", "text": "Session ten"}],
        },
        "qa": [
            {"question": "What pet did Bob adopt?", "answer": "a cat", "evidence": ["D1:2"], "category": 1},
            {"question": "Where was Ann?", "answer": "Lisbon", "evidence": ["D2:1; D2:2", "D9:9"],
             "category": 2},
            {"question": "Broken", "answer": "?", "evidence": ["D7:1", "D1:1-D1:2", "D1:2."], "category": 3},
            {"question": "Adversarial", "adversarial_answer": "none", "evidence": [], "category": 5},
        ],
        "event_summary": {"ignored": True},
    }
]


@pytest.fixture()
def tiny_path(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(TINY), encoding="utf-8")
    return p


def test_loader_orders_sessions_numerically_and_keeps_turn_fields(tiny_path: Path) -> None:
    (conv,) = ev.load_locomo(tiny_path)
    assert conv.id == "conv-a"
    assert conv.speakers == ("Ann", "Bob")
    assert [s.number for s in conv.sessions] == [1, 2, 3, 10]
    assert [t.dia_id for t in conv.turns] == ["D1:1", "D1:2", "D2:1", "D2:2", "D3:1", "D10:1"]
    assert [t.index for t in conv.turns] == list(range(6))
    photo = conv.turn("D2:2")
    assert photo.session == 2 and photo.blip_caption == "a photo of a tram"
    assert photo.content == "Bob: Look at this [shares a photo of a tram]"
    assert conv.turn("D1:1").content == "Ann: Hi Bob"


def test_loader_parses_both_date_formats_and_tolerates_unknown(tiny_path: Path) -> None:
    (conv,) = ev.load_locomo(tiny_path)
    s1, s2, s3, s10 = conv.sessions
    assert s1.ts == 1703889724.0  # 2023-12-29 22:42:04 UTC
    assert s2.ts == 1683554160.0  # 2023-05-08 13:56:00 UTC
    assert s3.ts is None and s3.date_time == "sometime in spring"
    assert s10.ts is None and s10.date_time is None
    assert all(t.ts == s1.ts for t in s1.turns)


def test_loader_resolves_evidence_and_flags_unusable_questions(tiny_path: Path) -> None:
    (conv,) = ev.load_locomo(tiny_path)
    q0, q1, q2, q3 = conv.questions
    assert q0.evidence == ("D1:2",) and q0.usable and q0.category == 1
    assert q1.evidence == ("D2:1", "D2:2") and q1.unresolved == ("D9:9",)
    assert not q2.usable and q2.unresolved == ("D7:1", "D1:1-D1:2", "D1:2.")
    assert not q3.usable and q3.answer == "none" and q3.category == 5
    assert [q.index for q in conv.usable_questions] == [0, 1]


def test_render_is_the_dated_whole_history(tiny_path: Path) -> None:
    (conv,) = ev.load_locomo(tiny_path)
    lines = conv.render().splitlines()
    assert len(lines) == 6
    assert lines[0] == "(29.12.2023, 22:42:04) Ann: Hi Bob"
    assert lines[3] == "(1:56 pm on 8 May, 2023) Bob: Look at this [shares a photo of a tram]"
    assert lines[5] == "Ann: Session ten"  # no date for session 10
    assert conv.render(dated=False).splitlines()[0] == "Ann: Hi Bob"


def test_loader_rejects_non_locomo_files(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text(json.dumps([{"sample_id": "x"}]), encoding="utf-8")
    with pytest.raises(ValueError, match="conversation"):
        ev.load_locomo(p)


def test_realtalk_counts(data_dir: Path) -> None:
    convs = ev.load_locomo(data_dir / "realtalk" / "realtalk10.json")
    assert len(convs) == 10
    assert sum(len(c.turns) for c in convs) == 8944
    assert sum(len(c.questions) for c in convs) == 728
    assert sum(len(c.usable_questions) for c in convs) == 696
    assert all(s.ts is not None for c in convs for s in c.sessions)


def test_realtalk_vectors_line_up_with_loader(data_dir: Path) -> None:
    root = data_dir / "realtalk"
    convs = ev.load_locomo(root / "realtalk10.json")
    vecs = ev.load_realtalk_vectors(root)
    assert vecs.dim == 384 and len(vecs.turns) == 8944 and len(vecs.questions) == 728
    index = json.loads((root / "index.json").read_text(encoding="utf-8"))
    texts = {(t["conv"], t["dia_id"]): t["text"] for t in index["turns"]}
    evidence = {(q["conv"], q["qa_idx"]): tuple(q["evidence"]) for q in index["questions"]}
    for c in convs:
        for t in c.turns:
            assert texts[(c.id, t.dia_id)] == t.content
            assert vecs.turn(c.id, t.dia_id) is not None
        for q in c.questions:
            # our evidence resolution reproduces the cleaned evidence shipped with the vectors
            assert evidence[(c.id, q.index)] == q.evidence
    v = vecs.question(convs[0].id, 0)
    assert v is not None and float(np.linalg.norm(v)) == pytest.approx(1.0, abs=1e-4)


def test_row_vectors_validate_shape() -> None:
    with pytest.raises(ValueError, match="does not match"):
        ev.RowVectors(np.zeros((2, 3), dtype=np.float32), [("a",)])
    with pytest.raises(ValueError, match="duplicate"):
        ev.RowVectors(np.zeros((2, 3), dtype=np.float32), [("a",), ("a",)])


# -------------------------------------------------------------------------------------- runner
# A brute-force stand-in for recallcore.Memory that follows the documented contract, so the
# runner's bookkeeping (id mapping, namespaces, budgets, aggregation) is tested before the store
# exists.


@dataclass
class _Rec:
    id: int
    text: str
    namespace: str
    metadata: dict


@dataclass
class _Hit:
    id: int
    score: float
    record: _Rec


@dataclass
class _Entry:
    id: int
    section: str
    position: int
    tokens: int


@dataclass
class _Ctx:
    text: str
    tokens: int
    manifest: list


class FakeMemory:
    def __init__(self) -> None:
        self.records: list[_Rec] = []
        self.calls: list[tuple[str, str]] = []

    def __enter__(self) -> FakeMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def add_many(self, items: list[dict], **_: Any) -> list[int]:
        ids = []
        for item in items:
            rid = 1000 + len(self.records)
            self.records.append(_Rec(rid, item["text"], item["namespace"], dict(item["metadata"])))
            ids.append(rid)
        return ids

    def _rank(self, query: str, namespace: str) -> list[_Rec]:
        words = set(re.findall(r"[a-z]+", query.lower()))
        recs = [r for r in self.records if r.namespace == namespace]
        return sorted(recs, key=lambda r: (-len(words & set(re.findall(r"[a-z]+", r.text.lower()))), r.id))

    def recall(self, query: str, *, vector: Optional[np.ndarray] = None, namespace: str = "default",
               k: int = 10, mode: str = "hybrid") -> list[_Hit]:
        self.calls.append(("recall", mode))
        ranked = self._rank(query, namespace)
        if mode == "reverse":
            ranked = ranked[::-1]
        return [_Hit(r.id, 1.0, r) for r in ranked[:k]]

    def context(self, query: str, *, budget: int, vector: Optional[np.ndarray] = None,
                namespace: str = "default", session: Optional[str] = None, recent_turns: int = 5,
                k: int = 50) -> _Ctx:
        assert recent_turns == 0 and k >= 50
        self.calls.append(("context", str(budget)))
        chosen, used = [], 0
        for r in self._rank(query, namespace):
            n = len(r.text.split())
            if used + n > budget:
                break
            chosen.append(r)
            used += n
        # edges order: best first, second best last
        left = chosen[0::2]
        right = chosen[1::2][::-1]
        order = left + right
        manifest = [_Entry(r.id, "memories", pos, len(r.text.split())) for pos, r in enumerate(order)]
        manifest.reverse()  # the runner must sort by position, not trust list order
        return _Ctx("\n".join(r.text for r in order), used, manifest)


def _conv(cid: str) -> dict:
    return {
        "sample_id": cid,
        "conversation": {
            "session_1_date_time": "2024-01-01 10:00:00",
            "session_1": [
                {"speaker": "user", "dia_id": "D1:1", "text": "my sister priya lives in pune"},
                {"speaker": "bot", "dia_id": "D1:2", "text": "nice weather today"},
                {"speaker": "user", "dia_id": "D1:3", "text": "i parked on level three spot twelve"},
                {"speaker": "bot", "dia_id": "D1:4", "text": "noted the parking level"},
            ],
        },
        "qa": [
            {"question": "where does my sister live", "answer": "Pune", "evidence": ["D1:1"], "category": 1},
            {"question": "which parking level and spot", "answer": "3/12", "evidence": ["D1:3", "D1:4"],
             "category": 2},
            {"question": "unanswerable", "answer": "", "evidence": ["D5:5"], "category": 2},
        ],
    }


def test_run_eval_with_contract_fake(tmp_path: Path) -> None:
    p = tmp_path / "two.json"
    p.write_text(json.dumps([_conv("c1"), _conv("c2")]), encoding="utf-8")
    convs = ev.load_locomo(p)
    mem = FakeMemory()
    report = ev.run_eval(convs, lambda: mem, modes=("hybrid", "reverse"), ks=(1, 2), budgets=(8, 100),
                         token_counter=lambda s: len(s.split()))
    assert (report.n_conversations, report.n_questions, report.n_skipped) == (2, 4, 2)
    # namespaces kept apart: every retrieved dia_id is a turn id, mapped back from record ids
    assert all(set(r.retrieved) <= {"D1:1", "D1:2", "D1:3", "D1:4"} for r in report.results)
    s = report.summary()
    # hybrid: Q1 ranks D1:1 first (R@1 = 1); Q2 ranks D1:3, D1:4 first (R@1 = 0.5, R@2 = 1)
    assert s["hybrid"]["all"]["R@1"] == pytest.approx(0.75)
    assert s["hybrid"]["all"]["R@2"] == pytest.approx(1.0)
    assert s["hybrid"]["cat 1"]["MRR"] == 1.0 and s["hybrid"]["cat 1"]["n"] == 2
    assert s["hybrid"]["all"]["All@1"] == pytest.approx(0.5)
    assert s["reverse"]["all"]["R@1"] < s["hybrid"]["all"]["R@1"]
    # budget 8 words: Q1 fits D1:1 (7 words, share 1); Q2 fits D1:3 (8 words) but not D1:4 (share 0.5)
    assert s["hybrid"]["all"]["ctx@8"] == pytest.approx(0.75)
    assert s["hybrid"]["all"]["ctx@100"] == 1.0
    thirds = [s["hybrid"]["all"][f"{t}@100"] for t in ("start", "middle", "end")]
    assert sum(thirds) == pytest.approx(1.0)
    assert "ctx@8" not in s["reverse"]["all"]  # context packing is counted once, not per mode
    assert report.conversation_tokens == len(convs[0].render().split())
    assert ("context", "8") in mem.calls and ("recall", "reverse") in mem.calls


def test_report_table_and_dict_are_aligned_and_complete(tmp_path: Path) -> None:
    p = tmp_path / "one.json"
    p.write_text(json.dumps([_conv("c1")]), encoding="utf-8")
    report = ev.run_eval(ev.load_locomo(p), FakeMemory, modes=("hybrid",), ks=(1, 5), budgets=(100,))
    text = report.table()
    blocks = text.split("\n\n")
    assert blocks[0].startswith("1 conversations, 2 questions (1 skipped")
    for block in blocks[1:]:
        lines = block.splitlines()
        assert set(lines[1]) <= {"-", " "}
        assert len(lines[0]) == len(lines[1])
    assert "R@1" in blocks[1] and "MRR" in blocks[1] and "cat 2" in blocks[1]
    assert "evidence in context" in blocks[2]
    d = report.to_dict()
    assert d["n_questions"] == 2 and d["summary"]["hybrid"]["all"]["R@5"] == 1.0
    json.dumps(d)  # serialisable
    assert "EvalReport(1 conversations" in repr(report)


def test_run_eval_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        ev.run_eval([], FakeMemory, ks=(0,))
    with pytest.raises(ValueError):
        ev.run_eval([], FakeMemory, modes=())


class DenseMemory:
    """Exact cosine search over the precomputed (L2-normalised) vectors: the data README's dense row."""

    def __init__(self) -> None:
        self.ids: dict[str, list[int]] = {}
        self.vecs: dict[str, list[np.ndarray]] = {}
        self.next_id = 0

    def __enter__(self) -> DenseMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def add_many(self, items: list[dict], **_: Any) -> list[int]:
        out = []
        for item in items:
            self.ids.setdefault(item["namespace"], []).append(self.next_id)
            self.vecs.setdefault(item["namespace"], []).append(item["vector"])
            out.append(self.next_id)
            self.next_id += 1
        return out

    def recall(self, query: str, *, vector: np.ndarray, namespace: str, k: int, mode: str) -> list[Any]:
        scores = np.asarray(self.vecs[namespace]) @ vector
        order = np.argsort(-scores, kind="stable")[:k]
        return [_Hit(self.ids[namespace][i], float(scores[i]), None) for i in order]  # type: ignore[arg-type]


def test_runner_reproduces_the_published_dense_baseline(data_dir: Path) -> None:
    # shared/data/README.md: dense (MiniLM cosine, exact), 696 questions: R@5 0.325, R@10 0.420, R@20 0.510
    root = data_dir / "realtalk"
    report = ev.run_eval(ev.load_locomo(root / "realtalk10.json"), DenseMemory,
                         vectors=ev.load_realtalk_vectors(root), modes=("vector",), budgets=())
    overall = report.summary()["vector"]["all"]
    assert report.n_questions == 696 and report.n_skipped == 32
    got = tuple(round(overall[f"R@{k}"], 3) for k in (5, 10, 20))
    assert got == (0.325, 0.420, 0.510)


def test_run_eval_progress_does_not_change_results(tmp_path: Path) -> None:
    p = tmp_path / "one.json"
    p.write_text(json.dumps([_conv("c1")]), encoding="utf-8")
    convs = ev.load_locomo(p)
    quiet = ev.run_eval(convs, FakeMemory, modes=("hybrid",), budgets=(50,))
    loud = ev.run_eval(convs, FakeMemory, modes=("hybrid",), budgets=(50,), progress=True)
    assert quiet.to_dict() == loud.to_dict()


def test_run_eval_with_the_real_memory(tmp_path: Path) -> None:
    from recallcore import Memory

    p = tmp_path / "two.json"
    p.write_text(json.dumps([_conv("c1"), _conv("c2")]), encoding="utf-8")
    report = ev.run_eval(ev.load_locomo(p), lambda: Memory(tmp_path / "store"), modes=("lexical",), ks=(1, 2),
                         budgets=(200,))
    s = report.summary()["lexical"]["all"]
    assert report.n_questions == 4
    # BM25 ranks the evidence of both questions first in each conversation; everything fits in 200 tokens.
    assert s["R@1"] >= 0.75 and s["R@2"] == 1.0
    assert s["ctx@200"] == 1.0
