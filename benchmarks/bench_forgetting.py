"""A long-running agent with and without forgetting: store size, recall latency and stale facts over time.

    PYTHONPATH=python python3 benchmarks/bench_forgetting.py                 # 200 sessions x 50 turns
    PYTHONPATH=python python3 benchmarks/bench_forgetting.py --sessions 40   # quicker

One user, one session per simulated day, 50 turns per session: 45 chit-chat turns and 5 statements of
personal facts ("My city is Porto.") drawn from 20 attributes whose values change over time. Vectors
come from recallcore's HashingEmbedder (64 dims, no model).

* ``grow``: every turn and every fact statement is added as is; nothing is ever forgotten.
* ``retain``: fact statements supersede the previous value of the same attribute (and repeats of the
  current value are merged with ``dedupe="merge"``); policies: turns live 14 days (ttl) and at most
  1,500 per namespace, facts at most 60 (superseded versions are evicted first), summaries at most
  30; ``expire()`` runs
  after every session with the simulated clock, and every 10 sessions turns older than 3 days are
  compacted into summaries (originals dropped); expire() also prunes the change log (prune_log=True).

Every 20 sessions it prints live records, the LMDB file size, recall latency (median and p90 of 40
``recall()`` calls, k = 5) and the stale-fact rate: among the fact records in the top 5 for
"what is my <attribute>", the fraction that state a value that is no longer true. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time

import recallcore
from recallcore import Memory
from recallcore.embedders import HashingEmbedder

DAY = 86400.0
T0 = 1_700_000_000.0
ATTRS = ["city", "employer", "pet", "car", "gym", "dentist", "team", "manager", "phone", "bank",
         "school", "language", "diet", "hobby", "band", "doctor", "landlord", "partner", "coach", "editor"]
WORDS = ["weather", "coffee", "meeting", "lunch", "train", "movie", "book", "music", "garden", "walk",
         "email",
         "project", "deadline", "call", "weekend", "dinner", "travel", "photo", "recipe", "game", "news",
         "podcast", "bike", "park", "museum", "beach", "cloud", "river"]


def run(mode: str, sessions: int, turns: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    path = tempfile.mkdtemp(prefix=f"bench_forget_{mode}_")
    m = Memory(path, embedder=HashingEmbedder(dim=64), durable=False, checkpoint_every=0)
    if mode == "retain":
        m.set_policy("user", "turn", ttl=14 * DAY, max_items=1500)
        m.set_policy("user", "fact", max_items=60, half_life=30 * DAY)
        m.set_policy("user", "summary", max_items=30)
    value_gen = {a: 0 for a in ATTRS}  # current value index of each attribute
    current_id: dict[str, int] = {}
    rows = []
    for s in range(sessions):
        day0 = T0 + s * DAY
        fact_slots = set(rng.sample(range(turns), 5))
        batch = []
        for t in range(turns):
            ts = day0 + t * 60
            if t in fact_slots:
                attr = rng.choice(ATTRS)
                if rng.random() < 0.5:  # half of the mentions announce a change
                    value_gen[attr] += 1
                text = f"My {attr} is {attr}value{value_gen[attr]}."
                if mode == "retain":
                    if attr in current_id and m.get(current_id[attr]) is not None and \
                            m.get(current_id[attr]).text != text:
                        current_id[attr] = m.supersede(current_id[attr], text, ts=ts, session=f"s{s}")
                    else:
                        current_id[attr] = m.add(text, namespace="user", kind="fact", ts=ts, session=f"s{s}",
                                                 dedupe="merge")
                else:
                    m.add(text, namespace="user", kind="fact", ts=ts, session=f"s{s}")
            else:
                words = " ".join(rng.choice(WORDS) for _ in range(12))
                batch.append({"text": f"turn {s}.{t}: {words}", "namespace": "user", "session": f"s{s}",
                              "ts": ts, "role": "user" if t % 2 == 0 else "assistant"})
        m.add_many(batch)
        now = day0 + turns * 60
        if mode == "retain":
            if (s + 1) % 10 == 0:
                m.compact("user", older_than=3 * DAY, now=now, keep_original="drop")
            m.expire(now=now, prune_log=True)
        if (s + 1) % 20 == 0 or s + 1 == sessions:
            lat, stale, facts = [], 0, 0
            for q in range(40):
                attr = ATTRS[q % len(ATTRS)]
                t0 = time.perf_counter()
                hits = m.recall(f"what is my {attr}", namespace="user", k=5, now=now)
                lat.append((time.perf_counter() - t0) * 1e6)
                truth = f"{attr}value{value_gen[attr]}"
                for h in hits:
                    if h.record.kind == "fact" and f" {attr} is " in h.text:
                        facts += 1
                        stale += truth + "." != h.text.split()[-1]
            st = m.stats()
            rows.append({"session": s + 1, "records": st["records"], "file_mb": st["file_bytes"] / 1e6,
                         "p50_us": statistics.median(lat), "p90_us": sorted(lat)[int(0.9 * len(lat))],
                         "stale": stale / facts if facts else 0.0})
    # The LMDB file never shrinks (freed pages are reused, not returned) and the change log is never
    # pruned; a compacted copy shows the size of what is live.
    vac = path + "_vacuumed"
    m.vacuum(vac)
    rows[-1]["vacuumed_mb"] = os.path.getsize(os.path.join(vac, "data.mdb")) / 1e6
    rows[-1]["log_entries"] = m.stats()["seq"]
    m.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--turns", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    print(f"recallcore {recallcore.__version__} | {platform.processor() or platform.machine()} | "
          f"{a.sessions} sessions x {a.turns} turns")
    results = {}
    for mode in ("grow", "retain"):
        t0 = time.perf_counter()
        results[mode] = run(mode, a.sessions, a.turns, a.seed)
        print(f"{mode}: simulated in {time.perf_counter() - t0:.1f} s")
    print("\n| after sessions | mode | live records | LMDB file (MB) | recall p50 (µs) | recall p90 (µs) | "
          "stale-fact rate |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for g, r in zip(results["grow"], results["retain"]):
        for mode, row in (("grow", g), ("retain", r)):
            print(f"| {row['session']} | {mode} | {row['records']:,} | {row['file_mb']:.1f} | "
                  f"{row['p50_us']:.0f} | {row['p90_us']:.0f} | {row['stale']:.0%} |")
    for mode in ("grow", "retain"):
        last = results[mode][-1]
        print(f"{mode}: vacuumed copy {last['vacuumed_mb']:.2f} MB; "
              f"changes written (sequence) {last['log_entries']:,}")


if __name__ == "__main__":
    main()
