"""What a prompt costs a decoder-only transformer: prefill FLOPs, KV-cache bytes, time and money.

The point of a memory layer is to send the model a small packed context instead of the whole
conversation. This module turns token counts into the quantities that decide whether that is worth
it, from the model's published shape alone (no weights, no GPU).

Counting convention (write it down, because published tables differ on exactly this):

* FLOPs = 2 x multiply-adds of the matrix products. Norms, softmax, RoPE, activations, residual
  adds and biases are ignored (they are O(n * d_model) and small beside the matmuls).
* Per layer, for ``n`` prompt tokens:

  - Q projection ``2 n d (h dh)``; K and V projections ``2 n d (h_kv dh)`` each (grouped-query
    attention: K and V are only ``n_kv_heads x head_dim`` wide);
  - attention scores ``Q K^T`` and the weighted sum ``A V``: ``2 h dh P`` each, where ``P`` is the
    number of (query, key) pairs: ``n (n + 1) / 2`` with causal masking (lower triangle including the
    diagonal: only those pairs need computing) and ``n^2`` without;
  - output projection ``2 n (h dh) d``;
  - FFN: three ``d x d_ff`` matmuls when gated (SwiGLU: gate, up, down) ``6 n d d_ff``, two when not.

* The LM head (``2 d vocab`` per position) is counted over **all n positions by default**
  (``lm_head="all"``: what a prefill that returns logits for every position does, e.g. for scoring);
  ``lm_head="last"`` counts only the last position (what a serving stack needs to start generating),
  ``lm_head="none"`` leaves it out. The embedding lookup costs no FLOPs.

The "attention" component below is ``Q K^T + A V`` only (the part quadratic in n); the
projections are reported separately. For Llama 3.1 8B this gives, causal, summed over 32 layers:
68.85 GFLOPs at 512 tokens and 281.48 TFLOPs at 32,768 (``Q K^T`` alone: 34.43 GFLOPs and 140.74
TFLOPs). A commonly quoted table gives 34.9 GFLOPs and 143 TFLOPs for these two lengths, which does
not follow from the formula printed beside it (project issue 8); the numbers here follow from the
formula above and are pinned in ``tests/test_cost.py``.

>>> from recallcore import cost
>>> f = cost.prefill_flops("llama-3.1-8b", 1)
>>> int(f)
15009841152
>>> cost.kv_cache_bytes("llama-3.1-8b", 1)
131072
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Optional, Union

__all__ = [
    "HARDWARE",
    "MODELS",
    "Comparison",
    "CostEstimate",
    "FlopBreakdown",
    "ModelConfig",
    "compare",
    "cost",
    "get_model",
    "kv_cache_bytes",
    "kv_cache_bytes_per_token",
    "prefill_flops",
    "prefill_time",
]

LmHead = Literal["all", "last", "none"]


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a decoder-only transformer, as published in its ``config.json``.

    ``head_dim`` defaults to ``d_model // n_heads``. ``bytes_per_param`` and ``bytes_per_kv_elem``
    default to 2 (bf16/fp16 weights and cache).

    >>> m = ModelConfig("tiny", n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, d_ff=256, vocab_size=1000)
    >>> m.head_dim
    16
    """

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    vocab_size: int
    head_dim: int = 0
    gated_ffn: bool = True
    tied_embeddings: bool = False
    bytes_per_param: float = 2.0
    bytes_per_kv_elem: float = 2.0

    def __post_init__(self) -> None:
        for field in ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ModelConfig.{field} must be a positive int, got {value!r}")
        if self.head_dim == 0:
            if self.d_model % self.n_heads:
                raise ValueError(
                    f"ModelConfig.head_dim: d_model ({self.d_model}) is not a multiple of n_heads "
                    f"({self.n_heads}); give head_dim explicitly"
                )
            object.__setattr__(self, "head_dim", self.d_model // self.n_heads)
        if not isinstance(self.head_dim, int) or self.head_dim <= 0:
            raise ValueError(f"ModelConfig.head_dim must be a positive int, got {self.head_dim!r}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"ModelConfig.n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads})"
            )
        if self.bytes_per_param <= 0 or self.bytes_per_kv_elem <= 0:
            raise ValueError("ModelConfig.bytes_per_param and bytes_per_kv_elem must be positive")

    def n_params(self) -> int:
        """Weight count of the matmuls and embeddings (norm weights and biases ignored)."""
        q = self.d_model * self.n_heads * self.head_dim
        kv = 2 * self.d_model * self.n_kv_heads * self.head_dim
        o = self.n_heads * self.head_dim * self.d_model
        ffn = (3 if self.gated_ffn else 2) * self.d_model * self.d_ff
        embed = self.vocab_size * self.d_model * (1 if self.tied_embeddings else 2)
        return self.n_layers * (q + kv + o + ffn) + embed

    def weight_bytes(self) -> float:
        return self.n_params() * self.bytes_per_param


# Shapes copied from each model's published config.json (hidden_size, num_hidden_layers,
# num_attention_heads, num_key_value_heads, intermediate_size, vocab_size, tie_word_embeddings).
# n_params() reproduces the published totals (8.03B, 70.6B, 1.24B, 3.21B, 7.24B, 7.62B, 405.9B),
# which tests/test_cost.py checks.
MODELS: dict[str, ModelConfig] = {
    m.name: m
    for m in (
        ModelConfig("llama-3.1-8b", n_layers=32, d_model=4096, n_heads=32, n_kv_heads=8, head_dim=128,
                    d_ff=14336, vocab_size=128256),
        ModelConfig("llama-3.1-70b", n_layers=80, d_model=8192, n_heads=64, n_kv_heads=8, head_dim=128,
                    d_ff=28672, vocab_size=128256),
        ModelConfig("llama-3.1-405b", n_layers=126, d_model=16384, n_heads=128, n_kv_heads=8,
                    head_dim=128, d_ff=53248, vocab_size=128256),
        ModelConfig("llama-3.2-1b", n_layers=16, d_model=2048, n_heads=32, n_kv_heads=8, head_dim=64,
                    d_ff=8192, vocab_size=128256, tied_embeddings=True),
        ModelConfig("llama-3.2-3b", n_layers=28, d_model=3072, n_heads=24, n_kv_heads=8, head_dim=128,
                    d_ff=8192, vocab_size=128256, tied_embeddings=True),
        ModelConfig("mistral-7b-v0.1", n_layers=32, d_model=4096, n_heads=32, n_kv_heads=8,
                    head_dim=128, d_ff=14336, vocab_size=32000),
        ModelConfig("qwen2.5-7b", n_layers=28, d_model=3584, n_heads=28, n_kv_heads=4, head_dim=128,
                    d_ff=18944, vocab_size=152064),
    )
}

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, in TFLOP/s.
HARDWARE: dict[str, float] = {
    "a100": 312.0,
    "h100-sxm": 989.0,
}

DEFAULT_TFLOPS = HARDWARE["a100"]
DEFAULT_UTILIZATION = 0.5


def get_model(model: Union[str, ModelConfig]) -> ModelConfig:
    """A preset by name (case-insensitive) or a :class:`ModelConfig` passed through.

    >>> get_model("Llama-3.1-8B").n_layers
    32
    """
    if isinstance(model, ModelConfig):
        return model
    if isinstance(model, str):
        found = MODELS.get(model.lower())
        if found is None:
            raise ValueError(f"unknown model {model!r}; presets: {', '.join(sorted(MODELS))}")
        return found
    raise TypeError(f"model must be a preset name or a ModelConfig, got {type(model).__name__}")


def _check_tokens(n_tokens: int, name: str = "n_tokens") -> int:
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int):
        raise TypeError(f"{name} must be an int, got {type(n_tokens).__name__}")
    if n_tokens < 0:
        raise ValueError(f"{name} must be >= 0, got {n_tokens}")
    return n_tokens


@dataclass(frozen=True)
class FlopBreakdown:
    """Prefill FLOPs by component, summed over all layers. Behaves as a number via ``.total``.

    ``int(f)``, ``float(f)``, comparisons and arithmetic (``f / 1e12``, ``f1 - f2``, ``sum(...)``) use
    the total; the fields hold the components.

    >>> f = prefill_flops("llama-3.2-1b", 10)
    >>> int(f) == f.total == f.qkv_proj + f.attention + f.out_proj + f.ffn + f.lm_head
    True
    >>> f / f.total
    1.0
    """

    model: str
    n_tokens: int
    causal: bool
    lm_head_positions: int
    q_proj: int
    kv_proj: int
    attn_scores: int
    attn_values: int
    out_proj: int
    ffn: int
    lm_head: int

    @property
    def qkv_proj(self) -> int:
        return self.q_proj + self.kv_proj

    @property
    def attention(self) -> int:
        """``Q K^T`` plus ``A V``: the part that grows with n squared."""
        return self.attn_scores + self.attn_values

    @property
    def attention_block(self) -> int:
        """Everything in the attention sub-layer: projections plus scores and weighted sum."""
        return self.qkv_proj + self.attention + self.out_proj

    @property
    def total(self) -> int:
        return self.attention_block + self.ffn + self.lm_head

    def __int__(self) -> int:
        return self.total

    def __float__(self) -> float:
        return float(self.total)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FlopBreakdown):
            return dataclasses.astuple(self) == dataclasses.astuple(other)
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return self.total == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.total)  # equal to an int total means equal hashes too

    # Arithmetic works on the total and returns plain numbers: f / 1e12, f1 - f2, sum(fs), 2 * f.
    def __add__(self, other: object) -> float:
        return self.total + _as_number(other)

    def __radd__(self, other: object) -> float:
        return _as_number(other) + self.total

    def __sub__(self, other: object) -> float:
        return self.total - _as_number(other)

    def __rsub__(self, other: object) -> float:
        return _as_number(other) - self.total

    def __mul__(self, other: object) -> float:
        return self.total * _as_number(other)

    def __rmul__(self, other: object) -> float:
        return _as_number(other) * self.total

    def __truediv__(self, other: object) -> float:
        return self.total / _as_number(other)

    def __rtruediv__(self, other: object) -> float:
        return _as_number(other) / self.total

    def __lt__(self, other: object) -> bool:
        return self.total < _as_number(other)

    def __le__(self, other: object) -> bool:
        return self.total <= _as_number(other)

    def __gt__(self, other: object) -> bool:
        return self.total > _as_number(other)

    def __ge__(self, other: object) -> bool:
        return self.total >= _as_number(other)

    def as_dict(self) -> dict[str, int]:
        return {
            "q_proj": self.q_proj,
            "kv_proj": self.kv_proj,
            "attn_scores": self.attn_scores,
            "attn_values": self.attn_values,
            "out_proj": self.out_proj,
            "ffn": self.ffn,
            "lm_head": self.lm_head,
            "attention": self.attention,
            "total": self.total,
        }

    def __repr__(self) -> str:
        return (
            f"FlopBreakdown({self.model}, n={self.n_tokens:,}, causal={self.causal}, "
            f"total={_fmt_flops(self.total)}, attention={_fmt_flops(self.attention)}, "
            f"proj={_fmt_flops(self.qkv_proj + self.out_proj)}, ffn={_fmt_flops(self.ffn)}, "
            f"lm_head={_fmt_flops(self.lm_head)})"
        )


def _as_number(other: object) -> float:
    if isinstance(other, FlopBreakdown):
        return other.total
    if isinstance(other, (int, float)) and not isinstance(other, bool):
        return other
    raise TypeError(f"unsupported operand for FlopBreakdown: {type(other).__name__}")


def prefill_flops(
    model: Union[str, ModelConfig],
    n_tokens: int,
    *,
    causal: bool = True,
    lm_head: LmHead = "all",
) -> FlopBreakdown:
    """FLOPs to run ``n_tokens`` prompt tokens through ``model`` in one forward pass (see module doc).

    >>> f = prefill_flops("llama-3.1-8b", 512)
    >>> f.attention
    68853694464
    >>> float(prefill_flops("llama-3.1-8b", 512, lm_head="last")) < float(f)
    True
    """
    m = get_model(model)
    n = _check_tokens(n_tokens)
    if lm_head not in ("all", "last", "none"):
        raise ValueError(f"lm_head must be 'all', 'last' or 'none', got {lm_head!r}")
    q_width = m.n_heads * m.head_dim
    kv_width = m.n_kv_heads * m.head_dim
    pairs = n * (n + 1) // 2 if causal else n * n
    lm_positions = {"all": n, "last": min(n, 1), "none": 0}[lm_head]
    L = m.n_layers
    return FlopBreakdown(
        model=m.name,
        n_tokens=n,
        causal=causal,
        lm_head_positions=lm_positions,
        q_proj=L * 2 * n * m.d_model * q_width,
        kv_proj=L * 2 * 2 * n * m.d_model * kv_width,
        attn_scores=L * 2 * m.n_heads * m.head_dim * pairs,
        attn_values=L * 2 * m.n_heads * m.head_dim * pairs,
        out_proj=L * 2 * n * q_width * m.d_model,
        ffn=L * (3 if m.gated_ffn else 2) * 2 * n * m.d_model * m.d_ff,
        lm_head=2 * lm_positions * m.d_model * m.vocab_size,
    )


def kv_cache_bytes_per_token(model: Union[str, ModelConfig], dtype_bytes: Optional[float] = None) -> float:
    """Bytes of K and V cache one token occupies: ``2 x layers x kv_heads x head_dim x dtype_bytes``.

    >>> kv_cache_bytes_per_token("llama-3.1-8b")   # 2*32*8*128*2
    131072
    """
    m = get_model(model)
    b = m.bytes_per_kv_elem if dtype_bytes is None else dtype_bytes
    if b <= 0:
        raise ValueError(f"dtype_bytes must be positive, got {b}")
    per = 2 * m.n_layers * m.n_kv_heads * m.head_dim * b
    return int(per) if float(per).is_integer() else per


def kv_cache_bytes(
    model: Union[str, ModelConfig], n_tokens: int, dtype_bytes: Optional[float] = None
) -> float:
    """KV-cache bytes held for a prompt of ``n_tokens`` (an int when the element size is whole).

    >>> kv_cache_bytes("llama-3.1-8b", 32768) / 2**30
    4.0
    """
    n = _check_tokens(n_tokens)
    total = kv_cache_bytes_per_token(model, dtype_bytes) * n
    return int(total) if float(total).is_integer() else total


def _check_rate(tflops: float, utilization: float) -> None:
    if not tflops > 0:
        raise ValueError(f"tflops must be positive, got {tflops}")
    if not 0 < utilization <= 1:
        raise ValueError(f"utilization must be in (0, 1], got {utilization}")


def prefill_time(
    model: Union[str, ModelConfig],
    n_tokens: int,
    *,
    tflops: float = DEFAULT_TFLOPS,
    utilization: float = DEFAULT_UTILIZATION,
    causal: bool = True,
    lm_head: LmHead = "all",
) -> float:
    """Seconds of compute for the prefill at ``tflops x utilization`` (a compute-bound estimate).

    ``tflops`` is the accelerator's peak (default: A100 dense bf16, 312); ``utilization`` the share
    of it reached (default 0.5, an assumption: measure yours). Memory-bandwidth limits are ignored,
    so very short prompts come out optimistic.

    >>> round(prefill_time("llama-3.1-8b", 1, tflops=100, utilization=1.0) * 1e6, 1)
    150.1
    """
    _check_rate(tflops, utilization)
    flops = prefill_flops(model, n_tokens, causal=causal, lm_head=lm_head).total
    return flops / (tflops * 1e12 * utilization)


@dataclass(frozen=True)
class CostEstimate:
    """Tokens, FLOPs, seconds, KV bytes and (when a price is given) dollars of one prefill."""

    model: str
    tokens: int
    flops: FlopBreakdown
    seconds: float
    kv_bytes: float
    dollars: Optional[float]

    def __repr__(self) -> str:
        money = "n/a" if self.dollars is None else f"${self.dollars:.6f}"
        return (
            f"CostEstimate({self.model}, tokens={self.tokens:,}, flops={_fmt_flops(self.flops.total)}, "
            f"seconds={self.seconds:.4g}, kv={_fmt_bytes(self.kv_bytes)}, cost={money})"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "tokens": self.tokens,
            "flops": self.flops.total,
            "attention_flops": self.flops.attention,
            "seconds": self.seconds,
            "kv_bytes": self.kv_bytes,
            "dollars": self.dollars,
        }


def cost(
    model: Union[str, ModelConfig],
    n_tokens: int,
    *,
    price_per_hour: Optional[float] = None,
    price_per_million_tokens: Optional[float] = None,
    tflops: float = DEFAULT_TFLOPS,
    utilization: float = DEFAULT_UTILIZATION,
    causal: bool = True,
    lm_head: LmHead = "all",
) -> CostEstimate:
    """Everything one prefill of ``n_tokens`` costs.

    Money: give ``price_per_hour`` (the accelerator's rental price; dollars = seconds x price / 3600)
    or ``price_per_million_tokens`` (an API's input price); not both. Without either, ``dollars`` is
    None.

    >>> cost("llama-3.1-8b", 2_000_000, price_per_million_tokens=0.5).dollars
    1.0
    """
    if price_per_hour is not None and price_per_million_tokens is not None:
        raise ValueError("give price_per_hour or price_per_million_tokens, not both")
    prices = (("price_per_hour", price_per_hour), ("price_per_million_tokens", price_per_million_tokens))
    for name, price in prices:
        if price is not None and price < 0:
            raise ValueError(f"{name} must be >= 0, got {price}")
    m = get_model(model)
    flops = prefill_flops(m, n_tokens, causal=causal, lm_head=lm_head)
    _check_rate(tflops, utilization)
    seconds = flops.total / (tflops * 1e12 * utilization)
    dollars: Optional[float] = None
    if price_per_hour is not None:
        dollars = seconds * price_per_hour / 3600.0
    elif price_per_million_tokens is not None:
        dollars = n_tokens * price_per_million_tokens / 1e6
    return CostEstimate(m.name, n_tokens, flops, seconds, kv_cache_bytes(m, n_tokens), dollars)


@dataclass(frozen=True)
class Comparison:
    """Context-only (the whole history in the prompt) versus memory-packed (a budgeted context)."""

    context: CostEstimate
    memory: CostEstimate

    @property
    def token_ratio(self) -> float:
        return _ratio(self.context.tokens, self.memory.tokens)

    @property
    def flop_ratio(self) -> float:
        return _ratio(self.context.flops.total, self.memory.flops.total)

    @property
    def attention_ratio(self) -> float:
        return _ratio(self.context.flops.attention, self.memory.flops.attention)

    @property
    def kv_ratio(self) -> float:
        return _ratio(self.context.kv_bytes, self.memory.kv_bytes)

    def table(self) -> str:
        """An aligned plain-text table: one row per quantity, columns context / memory / ratio."""
        c, m = self.context, self.memory
        rows = [
            ("tokens", f"{c.tokens:,}", f"{m.tokens:,}", _fmt_ratio(self.token_ratio)),
            ("prefill FLOPs", _fmt_flops(c.flops.total), _fmt_flops(m.flops.total),
             _fmt_ratio(self.flop_ratio)),
            ("  attention (QK^T+AV)", _fmt_flops(c.flops.attention), _fmt_flops(m.flops.attention),
             _fmt_ratio(self.attention_ratio)),
            ("prefill time", _fmt_seconds(c.seconds), _fmt_seconds(m.seconds),
             _fmt_ratio(_ratio(c.seconds, m.seconds))),
            ("KV cache", _fmt_bytes(c.kv_bytes), _fmt_bytes(m.kv_bytes), _fmt_ratio(self.kv_ratio)),
        ]
        if c.dollars is not None and m.dollars is not None:
            money_ratio = _fmt_ratio(_ratio(c.dollars, m.dollars))
            rows.append(("cost", f"${c.dollars:.6f}", f"${m.dollars:.6f}", money_ratio))
        header = (f"{c.model}", "context-only", "memory-packed", "ratio")
        return _render_table(header, rows)

    def as_dict(self) -> dict[str, object]:
        return {
            "context": self.context.as_dict(),
            "memory": self.memory.as_dict(),
            "token_ratio": self.token_ratio,
            "flop_ratio": self.flop_ratio,
            "attention_ratio": self.attention_ratio,
            "kv_ratio": self.kv_ratio,
        }

    def __repr__(self) -> str:
        return (
            f"Comparison({self.context.model}, tokens {self.context.tokens:,} vs {self.memory.tokens:,}, "
            f"FLOPs x{self.flop_ratio:.1f}, attention x{self.attention_ratio:.1f})"
        )


def compare(
    model: Union[str, ModelConfig],
    context_tokens: int,
    memory_tokens: int,
    *,
    price_per_hour: Optional[float] = None,
    price_per_million_tokens: Optional[float] = None,
    tflops: float = DEFAULT_TFLOPS,
    utilization: float = DEFAULT_UTILIZATION,
    causal: bool = True,
    lm_head: LmHead = "all",
) -> Comparison:
    """Cost of prefilling the whole history (``context_tokens``) versus a packed context.

    >>> r = compare("llama-3.1-8b", 24_300, 2_048)
    >>> r.token_ratio > 11 and r.flop_ratio > r.token_ratio
    True
    >>> print(r.table())  # doctest: +SKIP
    """
    kwargs = dict(price_per_hour=price_per_hour, price_per_million_tokens=price_per_million_tokens,
                  tflops=tflops, utilization=utilization, causal=causal, lm_head=lm_head)
    return Comparison(cost(model, context_tokens, **kwargs), cost(model, memory_tokens, **kwargs))  # type: ignore[arg-type]


def _ratio(a: float, b: float) -> float:
    if b == 0:
        return float("inf") if a else float("nan")
    return a / b


def _fmt_ratio(r: float) -> str:
    return f"{r:.2f}x" if r == r and r != float("inf") else "n/a"


def _fmt_flops(x: float) -> str:
    for unit, scale in (("PFLOPs", 1e15), ("TFLOPs", 1e12), ("GFLOPs", 1e9), ("MFLOPs", 1e6)):
        if x >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:,.0f} FLOPs"


def _fmt_bytes(x: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if x >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:,.0f} B"


def _fmt_seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def _render_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for j, r in enumerate([header, *rows]):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
