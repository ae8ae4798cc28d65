"""Cost model: hand-computed FLOP and byte counts pinned for Llama 3.1 8B, presets, bad input."""

from __future__ import annotations

import pytest

from recallcore import cost

# Llama 3.1 8B: L=32, d=4096, h=32, h_kv=8, dh=128, d_ff=14336, vocab=128256.
# Per layer, per token: Q 2*4096*4096 = 33,554,432; K+V 2*2*4096*1024 = 16,777,216;
# O 2*4096*4096 = 33,554,432; gated FFN 6*4096*14336 = 352,321,536  -> 436,207,616 (no attention).
# Attention per layer per (query, key) pair: QK^T 2*32*128 = 8,192 and AV 8,192.
# LM head per position: 2*4096*128256 = 1,050,673,152.
LINEAR_PER_TOKEN = 32 * 436_207_616  # 13,958,643,712
LM_HEAD = 1_050_673_152
ATTN_PER_PAIR = 32 * 2 * 8_192  # 524,288


def test_llama_8b_one_token_is_about_two_flops_per_weight() -> None:
    # n=1: one pair either way; 13,958,643,712 + 524,288 + 1,050,673,152
    f = cost.prefill_flops("llama-3.1-8b", 1)
    assert f.total == 15_009_841_152
    assert int(f) == 15_009_841_152 and float(f) == 15_009_841_152.0
    assert f.attention == 524_288
    assert cost.prefill_flops("llama-3.1-8b", 1, causal=False).total == 15_009_841_152


@pytest.mark.parametrize(
    ("n", "causal", "attention", "total"),
    [
        # causal pairs 512*513/2 = 131,328 -> 131,328 * 524,288 = 68,853,694,464
        # total = 512 * (13,958,643,712 + 1,050,673,152) + 68,853,694,464 = 7,753,623,928,832
        (512, True, 68_853_694_464, 7_753_623_928_832),
        # 512^2 = 262,144 pairs -> 137,438,953,472
        (512, False, 137_438_953_472, 7_822_209_187_840),
        # 32768*32769/2 = 536,887,296 pairs -> 281,483,566,645,248
        # total = 32768 * 15,009,316,864 + 281,483,566,645,248 = 773,308,861,644,800
        (32_768, True, 281_483_566_645_248, 773_308_861_644_800),
        # 32768^2 = 1,073,741,824 pairs -> 562,949,953,421,312
        (32_768, False, 562_949_953_421_312, 1_054_775_248_420_864),
    ],
)
def test_llama_8b_prefill_flops_pinned(n: int, causal: bool, attention: int, total: int) -> None:
    f = cost.prefill_flops("llama-3.1-8b", n, causal=causal)
    pairs = n * (n + 1) // 2 if causal else n * n
    assert f.attention == attention == pairs * ATTN_PER_PAIR
    assert f.attn_scores == f.attn_values == attention // 2
    assert f.total == total == n * (LINEAR_PER_TOKEN + LM_HEAD) + attention


def test_components_add_up_and_gqa_shrinks_kv_projections() -> None:
    f = cost.prefill_flops("llama-3.1-8b", 512)
    assert f.total == f.q_proj + f.kv_proj + f.attention + f.out_proj + f.ffn + f.lm_head
    # 8 KV heads of 32: K and V together cost half of Q.
    assert f.kv_proj * 2 == f.q_proj
    assert f.ffn == 32 * 512 * 352_321_536


def test_lm_head_options() -> None:
    all_pos = cost.prefill_flops("llama-3.1-8b", 512)
    last = cost.prefill_flops("llama-3.1-8b", 512, lm_head="last")
    none = cost.prefill_flops("llama-3.1-8b", 512, lm_head="none")
    assert all_pos.lm_head == 512 * LM_HEAD
    assert last.lm_head == LM_HEAD
    assert none.lm_head == 0
    assert all_pos.total - last.total == 511 * LM_HEAD
    assert cost.prefill_flops("llama-3.1-8b", 0, lm_head="last").total == 0


def test_ungated_ffn_counts_two_matmuls() -> None:
    m = cost.ModelConfig("toy", n_layers=1, d_model=8, n_heads=2, n_kv_heads=1, d_ff=32, vocab_size=10,
                         gated_ffn=False)
    assert m.head_dim == 4
    # 2 matmuls * 2 * n=3 * 8 * 32 = 3,072
    assert cost.prefill_flops(m, 3).ffn == 3_072


def test_kv_cache_bytes() -> None:
    # 2 (K and V) * 32 layers * 8 heads * 128 * 2 bytes = 131,072 per token
    assert cost.kv_cache_bytes_per_token("llama-3.1-8b") == 131_072
    assert cost.kv_cache_bytes("llama-3.1-8b", 32_768) == 4 * 2**30
    assert cost.kv_cache_bytes("llama-3.1-8b", 10, dtype_bytes=1) == 655_360
    # 70B: 2 * 80 * 8 * 128 * 2 = 327,680
    assert cost.kv_cache_bytes_per_token("llama-3.1-70b") == 327_680


def test_prefill_time_and_money() -> None:
    # 15,009,841,152 FLOPs at 100 TFLOP/s * 0.5 = 300.19682304 us
    t = cost.prefill_time("llama-3.1-8b", 1, tflops=100, utilization=0.5)
    assert t == pytest.approx(15_009_841_152 / 50e12)
    est = cost.cost("llama-3.1-8b", 1, tflops=100, utilization=0.5, price_per_hour=3600.0)
    assert est.dollars == pytest.approx(t)  # $3600/h = $1/s
    api = cost.cost("llama-3.1-8b", 250_000, price_per_million_tokens=2.0)
    assert api.dollars == pytest.approx(0.5)
    assert cost.cost("llama-3.1-8b", 10).dollars is None


def test_compare_reports_ratios_and_table() -> None:
    r = cost.compare("llama-3.1-8b", 32_768, 512)
    assert r.token_ratio == 64
    assert r.flop_ratio == pytest.approx(773_308_861_644_800 / 7_753_623_928_832)
    assert r.attention_ratio == pytest.approx(536_887_296 / 131_328)
    assert r.kv_ratio == 64
    text = r.table()
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["llama-3.1-8b", "context-only", "memory-packed"]
    assert "773.31 TFLOPs" in text and "7.75 TFLOPs" in text and "4.00 GiB" in text
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule aligned
    assert "cost" not in text
    assert "cost" in cost.compare("llama-3.1-8b", 100, 10, price_per_hour=2.0).table()


@pytest.mark.parametrize(
    ("name", "published_billions"),
    [("llama-3.1-8b", 8.03), ("llama-3.1-70b", 70.55), ("llama-3.1-405b", 405.85), ("llama-3.2-1b", 1.24),
     ("llama-3.2-3b", 3.21), ("mistral-7b-v0.1", 7.24), ("qwen2.5-7b", 7.62)],
)
def test_presets_reproduce_published_parameter_counts(name: str, published_billions: float) -> None:
    assert cost.get_model(name).n_params() / 1e9 == pytest.approx(published_billions, rel=0.01)


def test_presets_shapes() -> None:
    m = cost.get_model("llama-3.1-70b")
    assert (m.n_layers, m.d_model, m.n_heads, m.n_kv_heads, m.head_dim, m.d_ff, m.vocab_size) == (
        80, 8192, 64, 8, 128, 28672, 128256)
    assert cost.get_model("LLAMA-3.1-8B") is cost.MODELS["llama-3.1-8b"]
    custom = cost.ModelConfig("mine", n_layers=2, d_model=64, n_heads=4, n_kv_heads=4, d_ff=128,
                              vocab_size=50)
    assert cost.get_model(custom) is custom


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        cost.get_model("gpt-17")
    with pytest.raises(ValueError, match="n_tokens"):
        cost.prefill_flops("llama-3.1-8b", -1)
    with pytest.raises(ValueError, match="n_tokens"):
        cost.kv_cache_bytes("llama-3.1-8b", -5)
    with pytest.raises(TypeError):
        cost.prefill_flops("llama-3.1-8b", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lm_head"):
        cost.prefill_flops("llama-3.1-8b", 1, lm_head="first")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="utilization"):
        cost.prefill_time("llama-3.1-8b", 1, utilization=0)
    with pytest.raises(ValueError, match="not both"):
        cost.cost("llama-3.1-8b", 1, price_per_hour=1.0, price_per_million_tokens=1.0)
    with pytest.raises(ValueError, match="n_kv_heads"):
        cost.ModelConfig("bad", n_layers=1, d_model=64, n_heads=4, n_kv_heads=3, d_ff=8, vocab_size=8)
    with pytest.raises(ValueError, match="head_dim"):
        cost.ModelConfig("bad", n_layers=1, d_model=10, n_heads=4, n_kv_heads=4, d_ff=8, vocab_size=8)
    with pytest.raises(ValueError, match="n_layers"):
        cost.ModelConfig("bad", n_layers=0, d_model=64, n_heads=4, n_kv_heads=4, d_ff=8, vocab_size=8)


def test_breakdown_behaves_as_a_number() -> None:
    a = cost.prefill_flops("llama-3.2-1b", 100)
    b = cost.prefill_flops("llama-3.2-1b", 200)
    assert a < b and b > a.total and a == a.total
    assert b - a == b.total - a.total and a / 1e9 == a.total / 1e9 and 2 * a == a + a
    assert sum([a, b]) == a.total + b.total
    assert len({a, cost.prefill_flops("llama-3.2-1b", 100)}) == 1
    with pytest.raises(TypeError):
        a + "x"  # type: ignore[operator]
    assert "llama-3.2-1b" in repr(a) and "attention=" in repr(a)
