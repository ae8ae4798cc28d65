"""Property-based: any sequence of adds, replaces and removes leaves HNSWIndex consistent with a dict."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hnsw_oracle import SENTINEL
from recallcore import HNSWIndex

DIM = 8

ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.lists(st.integers(0, 40), min_size=1, max_size=12, unique=True)),
        st.tuples(st.just("remove"), st.lists(st.integers(0, 40), min_size=1, max_size=6, unique=True)),
        st.tuples(st.just("compact"), st.just([])),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(ops=ops, seed=st.integers(0, 2**16), storage=st.sampled_from(["f32", "f16", "i8"]))
def test_index_matches_a_dict_model(ops, seed, storage):
    rng = np.random.default_rng(seed)
    idx = HNSWIndex(DIM, metric="l2", M=4, ef_construction=16, storage=storage)
    model: dict[int, np.ndarray] = {}
    for op, keys in ops:
        if op == "add":
            vecs = rng.standard_normal((len(keys), DIM)).astype(np.float32)
            idx.add(vecs, np.array(keys, dtype=np.uint64), threads=2)
            model.update({k: v for k, v in zip(keys, vecs)})
        elif op == "remove":
            if all(k in model for k in keys):
                idx.remove(np.array(keys, dtype=np.uint64))
                for k in keys:
                    del model[k]
            else:
                before = len(idx)
                try:
                    idx.remove(np.array(keys, dtype=np.uint64))
                except ValueError:
                    pass
                else:
                    raise AssertionError("removing an unknown id did not raise")
                assert len(idx) == before
        else:
            idx.compact()
        assert len(idx) == len(model)
    for k in range(41):
        assert (k in idx) == (k in model)
    if model:
        keys = sorted(model)
        np.testing.assert_array_equal(
            idx.get_vectors(np.array(keys, dtype=np.uint64)), np.stack([model[k] for k in keys])
        )
        q = rng.standard_normal(DIM).astype(np.float32)
        found, dist = idx.search(q, k=len(model), ef=max(len(model), 64))
        live = found[found != SENTINEL]
        # Only live ids, each once, with their true distances, sorted, and at least the entry's region.
        # (Completeness is not asserted: after replaces a directed HNSW graph can leave a live node
        # unreachable from the entry point; see the weak points in benchmarks/RESULTS.md.)
        assert len(live) >= 1
        assert set(live.tolist()) <= set(model)
        assert len(set(live.tolist())) == len(live)
        expect = [float(((model[int(k)] - q) ** 2).sum()) for k in live]
        np.testing.assert_allclose(dist[: len(live)], expect, rtol=1e-4, atol=1e-4)
        assert np.all(np.diff(dist[: len(live)]) >= 0)
        assert np.isinf(dist[len(live) :]).all()
    else:
        assert (idx.search(np.zeros(DIM, dtype=np.float32), k=3)[0] == SENTINEL).all()
