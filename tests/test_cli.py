"""The ``recallcore`` command line, run as a subprocess (``python -m recallcore``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import recallcore
from recallcore import cost
from recallcore.embedders import HashingEmbedder

PKG_ROOT = str(Path(recallcore.__file__).resolve().parent.parent)
COMMANDS = ("demo", "stats", "recall", "context", "export", "import", "vacuum", "cost", "eval")


def run(*args: str, cwd: Any = None, stdin: Any = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["RECALLCORE_PLAIN"] = "1"
    return subprocess.run([sys.executable, "-m", "recallcore", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, stdin=stdin, timeout=300)


def assert_error(p: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip(), "an error must be reported on stderr"
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("recallcore"), last
    for n in needles:
        assert n in p.stderr, (n, p.stderr)


def make_store(path: Path) -> dict[str, int]:
    """A small store with facts (one superseded), a preference with a summary and ttl, an archived
    turn, two namespaces, vectors and state (also in a namespace that has no records)."""
    ids = {}
    with recallcore.Memory(str(path), embedder=HashingEmbedder(32)) as m:
        ids["leeds"] = m.add("Maya lives in Leeds", namespace="u", kind="fact", ts=1_700_000_000,
                             metadata={"source": "D1:3"}, entities=["Leeds"], importance=0.7)
        ids["manchester"] = m.add("Maya moved to Manchester", namespace="u", kind="fact", ts=1_710_000_000,
                                  supersedes=ids["leeds"], entities=["Manchester"])
        ids["tea"] = m.add("Maya prefers oolong tea", namespace="u", kind="preference", ts=1_690_000_000,
                           summary="likes oolong", ttl=86_400)
        ids["turn"] = m.add("Let's plan the launch party", namespace="u", session="s1", role="user",
                            ts=1_720_000_000)
        ids["reply"] = m.add("Sure, when is it?", namespace="u", session="s1", role="assistant",
                             ts=1_720_000_060)
        m._store.update(ids["turn"], {"archived": True})
        ids["other"] = m.add("Unrelated tenant note", namespace="v", ts=1_700_000_000)
        m.state("u")["task"] = {"goal": "launch", "step": 2}
        m.state("w")["only"] = "state"
    return ids


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    make_store(path)
    return path


def tree(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_size for p in sorted(path.rglob("*"))}


# ------------------------------------------------------------------------------------------ help


def test_help_lists_every_command() -> None:
    p = run("--help")
    assert p.returncode == 0
    for c in COMMANDS:
        assert c in p.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    p = run(command, "--help")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"usage: recallcore {command}")


def test_no_command_and_unknown_command_are_usage_errors() -> None:
    p = run()
    assert p.returncode == 2 and "usage: recallcore" in p.stderr
    p = run("frobnicate")
    assert p.returncode == 2 and "invalid choice" in p.stderr


# ----------------------------------------------------------------------------------------- stats


def test_stats(store: Path) -> None:
    p = run("stats", str(store))
    assert p.returncode == 0, p.stderr
    assert "records" in p.stdout and "hashing-v1-32" in p.stdout
    lines = {ln.split()[0]: ln for ln in p.stdout.splitlines() if ln and ln.split()[0] in ("u", "v", "w")}
    assert set(lines) == {"u", "v", "w"}
    assert "fact 2" in lines["u"] and "preference 1" in lines["u"]
    j = run("stats", str(store), "--json")
    doc = json.loads(j.stdout)
    assert doc["records"] == 6 and doc["dim"] == 32
    assert doc["state_keys"] == {"u": 1, "v": 0, "w": 1}


@pytest.mark.parametrize("command", ["stats", "recall", "context", "export"])
def test_read_commands_on_a_missing_path_create_nothing(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "nope"
    extra = {"stats": [], "recall": ["q"], "context": ["q", "--budget", "64"], "export": []}[command]
    p = run(command, str(missing), *extra)
    assert_error(p, 1, "no such store")
    assert p.stdout == ""
    assert not missing.exists()


@pytest.mark.parametrize("command", ["stats", "recall", "export"])
def test_read_commands_on_a_directory_that_is_not_a_store(tmp_path: Path, command: str) -> None:
    d = tmp_path / "plain"
    d.mkdir()
    (d / "notes.txt").write_text("hello")
    p = run(command, str(d), *(["q"] if command == "recall" else []))
    assert_error(p, 1, "not a recallcore store")
    assert sorted(x.name for x in d.iterdir()) == ["notes.txt"]


def test_read_commands_do_not_modify_the_store(store: Path) -> None:
    before = tree(store)
    for args in (["stats", str(store)], ["recall", str(store), "tea"],
                 ["context", str(store), "tea", "--budget", "100", "--namespace", "u"],
                 ["export", str(store)]):
        assert run(*args).returncode == 0
    assert tree(store) == before


# ---------------------------------------------------------------------------------------- recall


def test_recall_finds_the_current_fact(store: Path) -> None:
    p = run("recall", str(store), "where does Maya live", "--namespace", "u", "--k", "3", "--json")
    assert p.returncode == 0, p.stderr
    hits = json.loads(p.stdout)
    texts = [h["text"] for h in hits]
    assert texts[0] == "Maya moved to Manchester"
    assert "Maya lives in Leeds" not in texts  # superseded
    for key in ("score", "vector_rank", "lexical_rank", "bm25", "recency", "importance", "kind"):
        assert key in hits[0]
    table = run("recall", str(store), "where does Maya live", "--namespace", "u", "--k", "3")
    assert table.returncode == 0
    assert "Maya moved to Manchester" in table.stdout and "lexical" in table.stdout


def test_recall_modes_and_empty_namespace(store: Path) -> None:
    for mode in ("vector", "lexical", "hybrid"):
        p = run("recall", str(store), "oolong tea", "--namespace", "u", "--mode", mode, "--json")
        assert p.returncode == 0, (mode, p.stderr)
        assert json.loads(p.stdout)[0]["text"] == "Maya prefers oolong tea"
    p = run("recall", str(store), "oolong", "--namespace", "nobody")
    assert p.returncode == 0 and "no memories" in p.stdout


def test_recall_vector_mode_without_an_embedder_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "textonly"
    with recallcore.Memory(str(path)) as m:
        m.add("only text here")
    p = run("recall", str(path), "text", "--mode", "vector")
    assert_error(p, 1, "--mode vector")


@pytest.mark.parametrize("bad", [["--k", "0"], ["--k", "x"], ["--mode", "fuzzy"], []])
def test_recall_bad_arguments(store: Path, bad: list[str]) -> None:
    args = ["recall", str(store), "q", *bad] if bad else ["recall", str(store)]
    p = run(*args)
    assert p.returncode == 2
    assert "error:" in p.stderr


# --------------------------------------------------------------------------------------- context


def test_context_formats(store: Path) -> None:
    j = run("context", str(store), "where does Maya live", "--budget", "80", "--namespace", "u",
            "--session", "s1", "--format", "json")
    assert j.returncode == 0, j.stderr
    doc = json.loads(j.stdout)
    assert 0 < doc["tokens"] <= 80 and doc["budget"] == 80
    sections = [i["section"] for i in doc["manifest"]]
    assert sections[0] == "state" and "pinned" in sections
    assert [i["position"] for i in doc["manifest"]] == list(range(len(sections)))
    assert {i["third"] for i in doc["manifest"]} <= {"start", "middle", "end"}
    assert "Maya moved to Manchester" in doc["text"] and "Leeds" not in doc["text"]
    t = run("context", str(store), "where does Maya live", "--budget", "80", "--namespace", "u",
            "--session", "s1")
    assert t.returncode == 0 and t.stdout.rstrip("\n") == doc["text"]
    msg = run("context", str(store), "where does Maya live", "--budget", "80", "--namespace", "u",
              "--session", "s1", "--format", "messages")
    messages = json.loads(msg.stdout)
    assert messages[0]["role"] == "system" and messages == doc["messages"]


@pytest.mark.parametrize("bad", [[], ["--budget", "0"], ["--budget", "ten"],
                                 ["--budget", "50", "--format", "xml"],
                                 ["--budget", "50", "--recent-turns", "-1"]])
def test_context_bad_arguments(store: Path, bad: list[str]) -> None:
    p = run("context", str(store), "q", *bad)
    assert p.returncode == 2, p.stderr
    assert "error:" in p.stderr


def test_context_budget_below_pinned_items_is_a_runtime_error(store: Path) -> None:
    p = run("context", str(store), "q", "--namespace", "u", "--budget", "3")
    assert_error(p, 1, "pinned")
    assert p.stdout == ""


# --------------------------------------------------------------------------------- export/import


def read_export(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


VOLATILE = {"id", "created", "updated", "expires_at", "supersedes", "superseded_by", "sources"}


def comparable(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    ids = {d["id"]: i for i, d in enumerate(x for x in lines if x["type"] == "record")}
    for d in lines:
        if d["type"] == "header":
            out.append({k: v for k, v in d.items()})
        elif d["type"] == "record":
            c = {k: v for k, v in d.items() if k not in VOLATILE}
            c["supersedes"] = ids.get(d["supersedes"]) if d["supersedes"] else None
            c["superseded_by"] = ids.get(d["superseded_by"]) if d["superseded_by"] else None
            out.append(c)
        else:
            out.append(d)
    return out


def test_export_import_round_trip(store: Path, tmp_path: Path) -> None:
    ids = make_store(tmp_path / "unused")  # the same content: ids are known
    exp = run("export", str(store))
    assert exp.returncode == 0, exp.stderr
    lines = read_export(exp.stdout)
    assert lines[0]["type"] == "header" and lines[0]["dim"] == 32
    recs = {d["id"]: d for d in lines if d["type"] == "record"}
    assert len(recs) == 6
    leeds = recs[ids["leeds"]]
    assert leeds["superseded_by"] == ids["manchester"] and leeds["valid_to"] == 1_710_000_000
    assert recs[ids["turn"]]["archived"] is True
    assert recs[ids["tea"]]["summary"] == "likes oolong" and recs[ids["tea"]]["expires_at"] is not None
    states = [d for d in lines if d["type"] == "state"]
    assert {(s["namespace"], s["key"]) for s in states} == {("u", "task"), ("w", "only")}

    dump = tmp_path / "dump.jsonl"
    dump.write_text(exp.stdout)
    dest = tmp_path / "copy"
    imp = run("import", str(dest), str(dump))
    assert imp.returncode == 0, imp.stderr
    again = read_export(run("export", str(dest)).stdout)
    assert comparable(again) == comparable(lines)
    # vectors bit for bit, through the API as well
    with recallcore.Memory(str(store), readonly=True) as a, recallcore.Memory(str(dest), readonly=True) as b:
        ra = sorted((r for ns in a.namespaces() for r in a.list(ns, limit=100)[0]), key=lambda r: r.id)
        rb = sorted((r for ns in b.namespaces() for r in b.list(ns, limit=100)[0]), key=lambda r: r.id)
        assert [r.text for r in ra] == [r.text for r in rb]
        for x, y in zip(ra, rb):
            va, vb = a.get_vector(x.id), b.get_vector(y.id)
            assert va is not None and vb is not None
            assert np.array_equal(va.view(np.uint32), vb.view(np.uint32))
            assert abs(x.expires_at - y.expires_at) < 5 or x.expires_at == y.expires_at
            assert (x.valid_from, x.valid_to, x.archived, x.metadata, x.entities, x.summary, x.tokens) == \
                   (y.valid_from, y.valid_to, y.archived, y.metadata, y.entities, y.summary, y.tokens)
        assert b.state("u").to_dict() == {"task": {"goal": "launch", "step": 2}}
        assert b.state("w").to_dict() == {"only": "state"}
        assert b.stats()["embedder"] == "hashing-v1-32"
        top = b.recall("where does Maya live", namespace="u", k=1)
        assert [h.text for h in top] == ["Maya moved to Manchester"]


def test_import_into_an_existing_store_appends(store: Path, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    dump.write_text(run("export", str(store)).stdout)
    dest = tmp_path / "existing"
    with recallcore.Memory(str(dest), dim=32) as m:
        m.add("already here", vector=np.ones(32, np.float32))
    p = run("import", str(dest), str(dump))
    assert p.returncode == 0, p.stderr
    with recallcore.Memory(str(dest), readonly=True) as m:
        assert m.stats()["records"] == 7


def test_import_refuses_a_dim_mismatch_before_writing(store: Path, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    dump.write_text(run("export", str(store)).stdout)
    dest = tmp_path / "dim8"
    with recallcore.Memory(str(dest), dim=8) as m:
        m.add("eight", vector=np.ones(8, np.float32))
    before = run("export", str(dest)).stdout
    p = run("import", str(dest), str(dump))
    assert_error(p, 1, "dim mismatch", "nothing was written")
    assert run("export", str(dest)).stdout == before


@pytest.mark.parametrize("content", ["", "not json\n", '{"type": "record"}\n',
                                     '{"type": "header", "format": "recallcore-export", "version": 99}\n'])
def test_import_of_a_bad_file_writes_nothing(tmp_path: Path, content: str) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(content)
    dest = tmp_path / "new"
    p = run("import", str(dest), str(f))
    assert_error(p, 1)
    assert not dest.exists()


def test_import_of_a_bad_vector_line_writes_nothing(store: Path, tmp_path: Path) -> None:
    lines = run("export", str(store)).stdout.splitlines()
    doc = json.loads(lines[-2])
    assert doc["type"] == "record"
    doc["vector"] = "AAAA"  # one float, not 32
    lines[-2] = json.dumps(doc)
    f = tmp_path / "bad.jsonl"
    f.write_text("\n".join(lines) + "\n")
    dest = tmp_path / "new"
    p = run("import", str(dest), str(f))
    assert_error(p, 1, "dimensions")
    assert not dest.exists()


def test_import_missing_file_and_non_store_directory(store: Path, tmp_path: Path) -> None:
    p = run("import", str(tmp_path / "new"), str(tmp_path / "missing.jsonl"))
    assert_error(p, 1, "no such file")
    assert not (tmp_path / "new").exists()
    dump = tmp_path / "dump.jsonl"
    dump.write_text(run("export", str(store)).stdout)
    d = tmp_path / "plain"
    d.mkdir()
    (d / "x.txt").write_text("x")
    p = run("import", str(d), str(dump))
    assert_error(p, 1, "not a recallcore store")
    assert sorted(x.name for x in d.iterdir()) == ["x.txt"]


# ---------------------------------------------------------------------------------------- vacuum


def test_vacuum(store: Path, tmp_path: Path) -> None:
    dest = tmp_path / "vacuumed"
    p = run("vacuum", str(store), str(dest))
    if hasattr(recallcore.Memory, "vacuum"):
        assert p.returncode == 0, p.stderr
        with recallcore.Memory(str(dest), readonly=True) as m:
            assert m.stats()["records"] == 6
    else:
        assert_error(p, 1, "Memory.vacuum", "nothing was written")
        assert not dest.exists()


def test_vacuum_refuses_an_existing_destination_and_a_missing_store(store: Path, tmp_path: Path) -> None:
    dest = tmp_path / "exists"
    dest.mkdir()
    p = run("vacuum", str(store), str(dest))
    assert_error(p, 1, "already exists")
    assert list(dest.iterdir()) == []
    p = run("vacuum", str(tmp_path / "nope"), str(tmp_path / "d2"))
    assert_error(p, 1)
    assert not (tmp_path / "nope").exists() and not (tmp_path / "d2").exists()
    assert run("vacuum", str(store)).returncode == 2


# ------------------------------------------------------------------------------------------ cost


def test_cost_default_table_matches_the_cost_model() -> None:
    p = run("cost")
    assert p.returncode == 0, p.stderr
    rows = [ln for ln in p.stdout.splitlines() if ln.strip() and ln.split()[0].replace(",", "").isdigit()]
    assert [int(r.split()[0].replace(",", "")) for r in rows] == [512 * 2 ** i for i in range(9)]
    memory = float(cost.prefill_flops("llama-3.1-8b", 2048).total)
    for r in rows:
        n = int(r.split()[0].replace(",", ""))
        f = cost.prefill_flops("llama-3.1-8b", n)
        assert cost._fmt_flops(f.total) in r
        assert cost._fmt_flops(f.attention) in r
        assert cost._fmt_seconds(cost.prefill_time("llama-3.1-8b", n)) in r
        assert cost._fmt_bytes(cost.kv_cache_bytes("llama-3.1-8b", n)) in r
        assert r.rstrip().endswith(f"{f.total / memory:.2f}x")


def test_cost_options() -> None:
    p = run("cost", "--model", "llama-3.1-70b", "--tokens", "1000,24300", "--memory-tokens", "1000",
            "--tflops", "989", "--utilization", "0.4", "--price-per-hour", "2")
    assert p.returncode == 0, p.stderr
    c = cost.cost("llama-3.1-70b", 24_300, tflops=989, utilization=0.4, price_per_hour=2)
    assert f"${c.dollars:.6f}" in p.stdout and cost._fmt_seconds(c.seconds) in p.stdout
    assert "1.00x" in p.stdout  # the 1,000-token row against a 1,000-token memory context


@pytest.mark.parametrize("bad", [["--tokens", "1,x"], ["--tokens", "0"], ["--utilization", "0"],
                                 ["--model", "gpt-9"], ["--tflops", "-1"], ["--memory-tokens", "abc"]])
def test_cost_bad_arguments(bad: list[str]) -> None:
    p = run("cost", *bad)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "error:" in p.stderr and p.stdout == ""


# ------------------------------------------------------------------------------------------ eval


@pytest.fixture()
def locomo_file(tmp_path: Path) -> Path:
    from recallcore.synth import planted_conversations, save_locomo

    f = tmp_path / "synth.json"
    save_locomo(planted_conversations(3, n_turns=24, seed=3), f)
    return f


def test_eval_matches_run_eval(locomo_file: Path, tmp_path: Path) -> None:
    from recallcore import eval as ev
    from recallcore.tokens import get_counter

    p = run("eval", str(locomo_file), "--limit", "2", "--k", "1,5", "--budgets", "128,256",
            "--token-counter", "estimate")
    assert p.returncode == 0, p.stderr
    convs = ev.load_locomo(locomo_file)[:2]
    report = ev.run_eval(convs, lambda: recallcore.Memory(str(tmp_path / "m"), durable=False),
                         modes=["lexical"], ks=(1, 5), budgets=(128, 256),
                         token_counter=get_counter(None).count)
    assert p.stdout.startswith(report.table())
    assert "2 conversations" in p.stdout
    j = run("eval", str(locomo_file), "--limit", "1", "--embedder", "hashing:64", "--modes", "hybrid,vector",
            "--budgets", "256", "--json")
    doc = json.loads(j.stdout)
    assert doc["modes"] == ["hybrid", "vector"] and doc["n_conversations"] == 1


def test_eval_with_realtalk_vectors(data_dir: Path) -> None:
    rt = data_dir / "realtalk"
    p = run("eval", str(rt / "realtalk10.json"), "--vectors", str(rt), "--limit", "1", "--modes", "vector",
            "--budgets", "512", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["n_conversations"] == 1 and doc["summary"]["vector"]["all"]["R@10"] > 0.2


@pytest.mark.parametrize("bad,code", [(["--modes", "fuzzy"], 2), (["--k", "0"], 2), (["--limit", "-1"], 2),
                                      (["--modes", "vector"], 1), (["--vectors", "/nonexistent/dir"], 1)])
def test_eval_bad_arguments(locomo_file: Path, bad: list[str], code: int) -> None:
    p = run("eval", str(locomo_file), *bad)
    assert p.returncode == code, (p.returncode, p.stderr)
    assert "error:" in p.stderr


def test_eval_bad_files(tmp_path: Path) -> None:
    assert_error(run("eval", str(tmp_path / "missing.json")), 1, "no such file")
    bad = tmp_path / "bad.json"
    bad.write_text("{ nope")
    assert_error(run("eval", str(bad)), 1, "not a JSON file")


# ------------------------------------------------------------------------ export support in Memory


def test_memory_get_vector_and_namespaces(tmp_path: Path) -> None:
    with recallcore.Memory(str(tmp_path / "m"), dim=4) as m:
        v = np.array([0.1, -2.5, 3e-8, 7.0], np.float32)
        a = m.add("with vector", namespace="b", vector=v)
        b = m.add("without vector", namespace="a")
        m.state("c")["k"] = 1
        got = m.get_vector(a)
        assert got is not None and got.dtype == np.float32 and np.array_equal(got, v)
        assert m.get_vector(b) is None
        with pytest.raises(ValueError):
            m.get_vector(999)
        assert m.namespaces() == ["a", "b", "c"]


def test_text_only_store_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "text"
    with recallcore.Memory(str(src)) as m:
        m.add("plain words", namespace="n", kind="note", ts=10, metadata={"x": [1, 2]})
    dump = tmp_path / "d.jsonl"
    out = run("export", str(src))
    assert out.returncode == 0, out.stderr
    assert all("vector" not in json.loads(x) for x in out.stdout.splitlines())
    dump.write_text(out.stdout)
    assert run("import", str(tmp_path / "copy"), str(dump)).returncode == 0
    assert comparable(read_export(run("export", str(tmp_path / "copy")).stdout)) == \
        comparable(read_export(out.stdout))


def test_readme_cost_table_is_the_cli_output() -> None:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    if not readme.is_file():
        pytest.skip("README.md not beside the tests")
    text = readme.read_text(encoding="utf-8")
    start = text.index("$ recallcore cost\n") + len("$ recallcore cost\n")
    table = text[start:text.index("```", start)]
    assert run("cost").stdout == table
