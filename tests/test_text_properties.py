"""Property tests of the text layer on arbitrary Unicode (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from recallcore import _core

# Any text Python can encode as UTF-8 (no lone surrogates).
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_tokens_are_non_empty_and_stable_under_retokenisation(text):
    tokens = _core.tokenize(text, stopwords=False, stem=False)
    assert all(tokens)
    assert all("'" not in t and " " not in t for t in tokens)
    # Tokens are already lowercase words: tokenising them again changes nothing.
    assert _core.tokenize(" ".join(tokens), stopwords=False, stem=False) == tokens


@settings(max_examples=300, deadline=None)
@given(texts)
def test_stopwords_and_stemming_only_remove_or_shorten(text):
    plain = _core.tokenize(text, stopwords=False, stem=False)
    filtered = _core.tokenize(text, stopwords=True, stem=False)
    stemmed = _core.tokenize(text, stopwords=False, stem=True)
    assert len(filtered) <= len(plain)
    assert len(stemmed) == len(plain)
    assert all(len(s) <= len(p) + 1 for s, p in zip(stemmed, plain))  # "-ies" -> "-y" is the longest


@settings(max_examples=300, deadline=None)
@given(texts)
def test_cl100k_pieces_partition_the_text(text):
    pieces = _core._cl100k_pieces(text)
    assert "".join(pieces) == text
    assert all(pieces)
    n = _core.estimate_tokens(text)
    assert (n == 0) == (text == "")
    assert n <= 4 * len(text.encode())  # never more than a few tokens per byte


# ASCII text, weighted towards what the splitter distinguishes: letters, digits, apostrophes
# (contractions), punctuation runs, spaces and line breaks.
ascii_texts = st.lists(st.sampled_from(list("aAbBzZ019' .,!?-\"()\n\r\t") + ["  ", "'s", "'ll", "\r\n", "I'M"]),
                       max_size=150).map("".join)


@settings(max_examples=500, deadline=None)
@given(ascii_texts)
def test_ascii_fast_path_estimates_like_the_decoding_path(text):
    assert _core.estimate_tokens(text) == _core._estimate_tokens_decoding(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(texts, max_size=8), texts)
def test_bm25_accepts_any_text_and_round_trips(docs, query):
    index = _core.Bm25Index()
    for i, d in enumerate(docs):
        index.add(0, i, d)
    ids, scores = index.search(0, query, 5)
    assert len(ids) == len(scores) <= 5
    assert all(scores[i] >= scores[i + 1] for i in range(len(scores) - 1))
    assert all(s > 0 for s in scores)
    data = index.serialize()
    assert _core.Bm25Index.deserialize(data).serialize() == data
