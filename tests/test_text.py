"""Text layer: the word tokenizer and the partitioned BM25 index (checked against a brute-force oracle)."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest

from recallcore import CorruptionError, _core
from recallcore._core import Bm25Index, tokenize

# ----------------------------------------------------------------------------------------- tokenizer


def test_empty_and_separator_only_text_has_no_tokens():
    assert tokenize("") == []
    assert tokenize("  ,.;!? \n\t -- ") == []


def test_ascii_case_is_folded():
    assert tokenize("Apple BANANA cHeRrY", stem=False) == ["apple", "banana", "cherry"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ÉCOLE Ÿ Ñandú", ["école", "ÿ", "ñandú"]),  # Latin-1
        ("ŁÓDŹ ŒUVRE", ["łódź", "œuvre"]),  # Latin Extended-A
        ("ΣΟΦΟΣ Άλφα", ["σοφοσ", "άλφα"]),  # Greek, final sigma folded
        ("ПРИВЕТ Ёлка", ["привет", "ёлка"]),  # Cyrillic
        ("ＡＢＣ", ["ａｂｃ"]),  # fullwidth Latin
    ],
)
def test_non_ascii_case_is_folded(text, expected):
    assert tokenize(text, stopwords=False, stem=False) == expected


def test_lowercase_and_uppercase_forms_give_the_same_tokens():
    assert tokenize("STRASSE ΚΑΛΗΜΕΡΑ ДОБРЫЙ") == tokenize("strasse καλημερα добрый")


def test_stopwords_are_removed_only_when_asked():
    assert tokenize("the cat is on the mat") == ["cat", "mat"]
    all_words = tokenize("the cat is on the mat", stopwords=False, stem=False)
    assert all_words == ["the", "cat", "is", "on", "the", "mat"]


def test_contractions_become_stopwords():
    # "don't" -> "dont", "I'm" -> "im": both in the stopword list, with ASCII or typographic apostrophes.
    assert tokenize("I don't know, I’m sure", stem=False) == ["know", "sure"]


def test_apostrophe_inside_a_word_is_dropped_and_elsewhere_separates():
    words = tokenize("don't 'quoted' rock'n'roll", stopwords=False, stem=False)
    assert words == ["dont", "quoted", "rocknroll"]
    assert tokenize("John's", stem=False) == ["johns"]
    assert tokenize("John's") == ["john"]


@pytest.mark.parametrize(
    ("word", "stem"),
    [
        ("running", "run"),
        ("runs", "run"),
        ("hoped", "hop"),
        ("hoping", "hop"),
        ("hope", "hop"),
        ("studies", "study"),
        ("studied", "study"),
        ("glasses", "glass"),
        ("falling", "fall"),
        ("agreed", "agre"),
        ("agree", "agre"),
        ("cats", "cat"),
        ("bus", "bus"),
        ("analysis", "analysis"),
        ("thing", "thing"),
        ("need", "need"),
    ],
)
def test_light_stemming_examples(word, stem):
    assert tokenize(word) == [stem]


def test_stemming_is_off_on_request_and_never_touches_non_ascii():
    assert tokenize("running cats", stem=False) == ["running", "cats"]
    assert tokenize("cafés naïves") == ["cafés", "naïves"]


def test_cjk_ideographs_and_kana_are_single_character_tokens():
    assert tokenize("東京タワーに行きました") == list("東京タワーに行きました")
    assert tokenize("我爱北京 hello") == ["我", "爱", "北", "京", "hello"]


def test_hangul_words_stay_whole():
    assert tokenize("안녕하세요 세계") == ["안녕하세요", "세계"]


def test_digits_and_alphanumerics():
    assert tokenize("Room 101, call 555-1234 or use abc123", stem=False) == [
        "room", "101", "call", "555", "1234", "use", "abc123",
    ]


def test_punctuation_and_symbols_separate_words():
    assert tokenize("e-mail foo_bar a.b/c😀d", stopwords=False, stem=False) == [
        "e", "mail", "foo", "bar", "a", "b", "c", "d",
    ]


def test_combining_marks_stay_in_their_word():
    decomposed = "cafe\u0301 ok"
    assert tokenize(decomposed, stem=False) == ["cafe\u0301", "ok"]


def test_bytes_are_a_type_error():
    with pytest.raises(TypeError, match="must be str"):
        tokenize(b"hello")  # type: ignore[arg-type]


def test_lone_surrogates_are_rejected():
    with pytest.raises(ValueError, match="surrogate"):
        tokenize("abc\udcff")


@pytest.mark.parametrize(
    "data",
    [b"\xff", b"abc\x80", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"],
)
def test_invalid_utf8_is_detected(data):
    assert _core.valid_utf8(data) is False


def test_valid_utf8_is_accepted():
    assert _core.valid_utf8("héllo wörld 東京 😀".encode())
    assert _core.valid_utf8(b"")


# ------------------------------------------------------------------------------------- BM25 oracle

VOCAB = [
    "apple", "banana", "cherry", "delta", "echo", "fox", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "nova", "oscar", "papa", "quebec", "romeo",
]


def oracle_search(docs: dict[int, str], query: str, k: int, k1=1.2, b=0.75, allowed=None):
    """Brute-force BM25 over one partition, in float64: [(id, score)] best first, ties by id."""
    toks = {i: tokenize(t) for i, t in docs.items()}
    n = len(toks)
    avgdl = sum(len(t) for t in toks.values()) / n if n else 0.0
    avgdl = avgdl or 1.0
    df = Counter(term for t in toks.values() for term in set(t))
    qterms = set(tokenize(query))
    out = []
    for i, t in toks.items():
        if allowed is not None and i not in allowed:
            continue
        tf = Counter(t)
        matched = [q for q in qterms if tf[q]]
        if not matched:
            continue
        score = 0.0
        for q in matched:
            idf = math.log(1 + (n - df[q] + 0.5) / (df[q] + 0.5))
            score += idf * tf[q] * (k1 + 1) / (tf[q] + k1 * (1 - b + b * len(t) / avgdl))
        out.append((i, score))
    out.sort(key=lambda h: (-h[1], h[0]))
    return out[:k]


def random_doc(rng: random.Random) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(rng.randint(1, 12)))


def assert_same_topk(got, expected, tol=1e-4):
    ids, scores = got
    assert len(ids) == len(expected)
    assert ids.dtype == np.uint64 and scores.dtype == np.float32
    exp_scores = np.array([s for _, s in expected])
    np.testing.assert_allclose(scores, exp_scores, atol=tol, rtol=0)
    # Ids must match exactly except where scores tie within the tolerance.
    for pos, (i, s) in enumerate(expected):
        if int(ids[pos]) != i:
            assert abs(float(scores[pos]) - s) <= tol


@pytest.mark.parametrize("seed", range(8))
def test_bm25_matches_brute_force_oracle(seed):
    rng = random.Random(seed)
    k1, b = rng.choice([(1.2, 0.75), (0.9, 0.4), (2.0, 1.0), (1.5, 0.0)])
    index = Bm25Index(k1=k1, b=b)
    docs = {i: random_doc(rng) for i in range(rng.randint(1, 60))}
    for i, t in docs.items():
        index.add(7, i, t)
    for _ in range(20):
        q = " ".join(rng.choice(VOCAB) for _ in range(rng.randint(1, 4)))
        k = rng.randint(1, 15)
        assert_same_topk(index.search(7, q, k), oracle_search(docs, q, k, k1, b))


def test_bm25_score_of_a_known_document():
    index = Bm25Index()
    index.add(0, 1, "apple banana")
    index.add(0, 2, "cherry")
    ids, scores = index.search(0, "apple", 5)
    # N=2, df=1, dl=2, avgdl=1.5: idf=ln(1+1.5/1.5), tf part = 2.2 / (1 + 1.2*(0.25+0.75*2/1.5)).
    expected = math.log(2) * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 2 / 1.5))
    assert list(ids) == [1]
    assert scores[0] == pytest.approx(expected, abs=1e-6)


def test_partitions_are_isolated():
    rng = random.Random(11)
    index = Bm25Index()
    parts = {p: {p * 1000 + i: random_doc(rng) for i in range(30)} for p in range(3)}
    for p, docs in parts.items():
        for i, t in docs.items():
            index.add(p, i, t)
    for p, docs in parts.items():
        assert index.partition_size(p) == 30
        for word in VOCAB:
            ids, _ = index.search(p, word, 100)
            assert set(ids.tolist()) <= set(docs)
            # Stats are per partition, so scores equal a single-partition oracle.
            assert_same_topk(index.search(p, word, 10), oracle_search(docs, word, 10))
    assert index.search(99, "apple", 10)[0].size == 0


def test_drop_partition_removes_only_that_partition():
    index = Bm25Index()
    index.add(1, 10, "apple pie")
    index.add(2, 20, "apple tart")
    index.drop_partition(1)
    assert len(index) == 1 and 10 not in index and 20 in index
    assert index.search(1, "apple", 5)[0].size == 0
    assert index.search(2, "apple", 5)[0].tolist() == [20]
    index.drop_partition(12345)  # unknown: no-op
    assert index.partitions() == [2]


def test_remove_and_replace():
    rng = random.Random(5)
    index = Bm25Index()
    docs = {i: random_doc(rng) for i in range(40)}
    for i, t in docs.items():
        index.add(0, i, t)
    for i in range(0, 40, 3):
        assert index.remove(i) is True
        del docs[i]
    assert index.remove(0) is False
    assert index.remove(10**12) is False
    for i in range(1, 40, 5):
        docs[i] = random_doc(rng)
        index.add(0, i, docs[i])  # replace in place
    for i in range(100, 110):  # new documents reuse freed slots
        docs[i] = random_doc(rng)
        index.add(0, i, docs[i])
    assert len(index) == len(docs) == index.partition_size(0)
    for word in VOCAB:
        assert_same_topk(index.search(0, word, 10), oracle_search(docs, word, 10))


def test_add_with_an_existing_id_moves_it_between_partitions():
    index = Bm25Index()
    index.add(1, 5, "apple")
    index.add(2, 5, "apple")
    assert len(index) == 1
    assert index.search(1, "apple", 5)[0].size == 0
    assert index.search(2, "apple", 5)[0].tolist() == [5]


@pytest.mark.parametrize("seed", range(3))
def test_filter_is_honoured(seed):
    rng = random.Random(100 + seed)
    index = Bm25Index()
    docs = {i: random_doc(rng) for i in range(50)}
    for i, t in docs.items():
        index.add(3, i, t)
    allowed = set(rng.sample(sorted(docs), 12))
    for word in VOCAB[:8]:
        got = index.search(3, word, 10, allowed_ids=np.array(sorted(allowed), dtype=np.uint64))
        assert set(got[0].tolist()) <= allowed
        assert_same_topk(got, oracle_search(docs, word, 10, allowed=allowed))
    assert index.search(3, "apple", 10, allowed_ids=np.array([], dtype=np.uint64))[0].size == 0
    assert index.search(3, "apple", 10, allowed_ids=[1, 2, 3])[0].size <= 3


def test_query_edge_cases():
    index = Bm25Index()
    index.add(0, 1, "apple")
    assert index.search(0, "", 5)[0].size == 0
    assert index.search(0, "the and of", 5)[0].size == 0  # only stopwords
    assert index.search(0, "unknownword", 5)[0].size == 0
    assert index.search(0, "apple", 0)[0].size == 0
    with pytest.raises(ValueError, match="k must be >= 0"):
        index.search(0, "apple", -1)
    with pytest.raises(TypeError):
        index.search(0, b"apple", 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="surrogate"):
        index.add(0, 2, "bad \ud800 text")
    assert len(index) == 1  # a rejected add changes nothing


def test_argument_types_are_checked():
    index = Bm25Index()
    with pytest.raises(TypeError):
        index.add("p", 1, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        index.add(0, 1.5, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        index.add(-1, 1, "x")
    with pytest.raises(ValueError):
        index.add(0, -1, "x")
    with pytest.raises(ValueError, match="k1"):
        Bm25Index(k1=-1.0)
    with pytest.raises(ValueError, match="b must be"):
        Bm25Index(b=1.5)


def test_add_many_equals_repeated_add():
    rng = random.Random(9)
    texts = [random_doc(rng) for _ in range(25)]
    a, b = Bm25Index(), Bm25Index()
    a.add_many(4, np.arange(25, dtype=np.uint64), texts)
    for i, t in enumerate(texts):
        b.add(4, i, t)
    assert a.serialize() == b.serialize()
    with pytest.raises(ValueError, match="same length"):
        a.add_many(4, [1, 2], ["x"])


# --------------------------------------------------------------------------------- serialisation


def build_index(seed=3):
    rng = random.Random(seed)
    index = Bm25Index(k1=1.4, b=0.6, stem=False)
    for p in range(3):
        for i in range(20):
            index.add(p, p * 100 + i, random_doc(rng) + " Ünïcödé 東京")
    for i in range(0, 20, 4):
        index.remove(i)
    return index


def test_serialize_round_trip_is_identical():
    index = build_index()
    data = index.serialize()
    assert isinstance(data, bytes) and data[:8] == b"RCBM25\r\n"
    copy = Bm25Index.deserialize(data)
    assert copy.serialize() == data
    assert len(copy) == len(index) and copy.partitions() == index.partitions()
    assert (copy.k1, copy.b) == (index.k1, index.b)
    for p in index.partitions():
        for q in ["apple banana", "東", "ünïcödé kilo", "romeo"]:
            a, b = index.search(p, q, 10), copy.search(p, q, 10)
            assert a[0].tolist() == b[0].tolist()
            assert a[1].tolist() == b[1].tolist()


def test_serialize_keeps_tokenizer_options():
    index = Bm25Index(stopwords=False, stem=False)
    index.add(0, 1, "the running")
    copy = Bm25Index.deserialize(index.serialize())
    assert copy.search(0, "the", 5)[0].tolist() == [1]
    assert copy.search(0, "run", 5)[0].size == 0


def test_empty_index_round_trips():
    data = Bm25Index().serialize()
    assert len(Bm25Index.deserialize(data)) == 0


def test_truncated_bytes_are_rejected():
    data = build_index().serialize()
    for cut in list(range(0, 64)) + list(range(64, len(data), 97)) + [len(data) - 1]:
        with pytest.raises(CorruptionError):
            Bm25Index.deserialize(data[:cut])


def test_corrupted_bytes_are_rejected():
    data = bytearray(build_index().serialize())
    rng = random.Random(1)
    for pos in list(range(40)) + rng.sample(range(40, len(data)), 60):
        bad = bytearray(data)
        bad[pos] ^= 1 << rng.randrange(8)
        with pytest.raises(CorruptionError):
            Bm25Index.deserialize(bytes(bad))
    with pytest.raises(CorruptionError):
        Bm25Index.deserialize(bytes(data) + b"\0")


def test_deserialize_accepts_buffers_and_rejects_other_types():
    data = build_index().serialize()
    assert len(Bm25Index.deserialize(bytearray(data))) == len(Bm25Index.deserialize(memoryview(data)))
    with pytest.raises(TypeError):
        Bm25Index.deserialize("not bytes")  # type: ignore[arg-type]


def test_corruption_error_is_a_value_error():
    with pytest.raises(ValueError):
        Bm25Index.deserialize(b"garbage")


def test_concurrent_searches_from_threads_agree():
    # search releases the GIL; concurrent readers must see the same answers as a single reader.
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(21)
    index = Bm25Index()
    docs = {i: random_doc(rng) for i in range(500)}
    index.add_many(0, np.array(sorted(docs), dtype=np.uint64), [docs[i] for i in sorted(docs)])
    queries = [" ".join(rng.choice(VOCAB) for _ in range(3)) for _ in range(40)]
    expected = [index.search(0, q, 10)[0].tolist() for q in queries]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda q: index.search(0, q, 10)[0].tolist(), queries * 10))
    assert got == expected * 10
