// Python-free tests of the text layer: tokenizer, UTF-8 validation, BM25 index, token estimator.
// Entry point: run_text_tests() (the shared test main calls it); returns the number of failures.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "text/bm25.h"
#include "text/token_estimator.h"
#include "text/tokenizer.h"
#include "tests/check.h"

int run_text_tests();

namespace {

int failures = 0;

using recallcore::tests::throws;

using namespace recallcore;
using namespace recallcore::text;

void test_utf8() {
  CHECK(valid_utf8(""));
  CHECK(valid_utf8("h\xc3\xa9llo \xe6\x9d\xb1 \xf0\x9f\x98\x80"));
  CHECK(!valid_utf8("\xff"));
  CHECK(!valid_utf8("\xc0\xaf"));          // overlong '/'
  CHECK(!valid_utf8("\xed\xa0\x80"));      // surrogate U+D800
  CHECK(!valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  CHECK(!valid_utf8("abc\xe2\x82"));       // truncated
  std::string msg;
  CHECK(throws<InvalidArgument>([] { tokenize("abcdefghij\x80xyz"); }, &msg));
  CHECK(msg.find("byte offset 10") != std::string::npos);
  CHECK(throws<InvalidArgument>([] { (void)estimate_tokens("ok \xc3"); }, &msg));
  CHECK(msg.find("byte offset 3") != std::string::npos);
}

void test_tokenizer() {
  CHECK(tokenize("").empty());
  CHECK((tokenize("The Cats were RUNNING") == std::vector<std::string>{"cat", "run"}));
  CHECK((tokenize("\xc3\x89""COLE", {false, false}) == std::vector<std::string>{"\xc3\xa9""cole"}));  // ÉCOLE
  CHECK((tokenize("\xe6\x9d\xb1\xe4\xba\xac") == std::vector<std::string>{"\xe6\x9d\xb1", "\xe4\xba\xac"}));
  CHECK((tokenize("don't stop", {false, false}) == std::vector<std::string>{"dont", "stop"}));
  CHECK(is_stopword("the") && !is_stopword("cat"));
}

void test_bm25_basics() {
  Bm25Index index;
  index.add(1, 10, "apple banana");
  index.add(1, 11, "banana cherry cherry");
  index.add(2, 20, "apple apple apple");
  CHECK(index.size() == 3 && index.partition_size(1) == 2 && index.partition_size(2) == 1);
  auto hits = index.search(1, "apple", 10);
  CHECK(hits.size() == 1 && hits[0].id == 10 && hits[0].score > 0);
  hits = index.search(1, "cherry banana", 10);
  CHECK(hits.size() == 2 && hits[0].id == 11);
  CHECK(index.remove(11) && !index.remove(11) && !index.contains(11));
  CHECK(index.search(1, "cherry", 10).empty());
  AllowListFilter none({});
  CHECK(index.search(1, "apple", 10, &none).empty());
  index.drop_partition(2);
  CHECK(index.size() == 1 && !index.contains(20));
  CHECK(throws<InvalidArgument>([&] { index.add(1, 99, "bad \xff"); }));
  CHECK(!index.contains(99));
  CHECK(throws<InvalidArgument>([] { Bm25Index bad(Bm25Params{1.2f, 2.0f}); }));
}

void test_bm25_snapshot() {
  Bm25Index index(Bm25Params{1.1f, 0.5f}, TokenizerOptions{true, false});
  for (std::uint64_t i = 0; i < 50; ++i)
    index.add(std::uint32_t(i % 3), i, "doc " + std::to_string(i % 7) + " shared words here");
  index.remove(7);
  const std::string bytes = index.serialize();
  Bm25Index copy = Bm25Index::deserialize(bytes);
  CHECK(copy.serialize() == bytes);
  CHECK(copy.size() == index.size());
  const auto a = index.search(0, "shared 3", 5), b = copy.search(0, "shared 3", 5);
  CHECK(a.size() == b.size());
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) CHECK(a[i].id == b[i].id && a[i].score == b[i].score);
  for (std::size_t cut = 0; cut < bytes.size(); cut += 13)
    CHECK(throws<CorruptData>([&] { Bm25Index::deserialize(std::string_view(bytes).substr(0, cut)); }));
  for (std::size_t pos = 0; pos < bytes.size(); pos += 7) {
    std::string bad = bytes;
    bad[pos] = char(bad[pos] ^ 0x10);
    CHECK(throws<CorruptData>([&] { Bm25Index::deserialize(bad); }));
  }
}

void test_bm25_concurrent_searches() {
  Bm25Index index;
  for (std::uint64_t i = 0; i < 2000; ++i)
    index.add(0, i, "word" + std::to_string(i % 50) + " common text number " + std::to_string(i % 13));
  const auto expected = index.search(0, "word7 common 5", 20);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int r = 0; r < 200; ++r) {
        const auto got = index.search(0, "word7 common 5", 20);
        bool same = got.size() == expected.size();
        for (std::size_t i = 0; same && i < got.size(); ++i) same = got[i].id == expected[i].id;
        if (!same) ++mismatches;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(mismatches.load() == 0);
}

// An index opened from an image decodes partitions on first use; it must answer, count and write
// exactly like the index it was saved from, rebuild a bad block through the callback, and decode
// safely while other threads search.
Bm25Index lazy_source() {
  Bm25Index index;
  for (std::uint64_t i = 1; i <= 600; ++i)
    index.add(std::uint32_t(i % 6), i, "word" + std::to_string(i % 17) + " common text " + std::to_string(i % 5));
  return index;
}

bool same_hits(const std::vector<LexHit>& a, const std::vector<LexHit>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].id != b[i].id || a[i].score != b[i].score) return false;
  return true;
}

void test_bm25_lazy_open() {
  const Bm25Index source = lazy_source();
  auto image = std::make_shared<const std::string>(source.serialize());
  {
    Bm25Index lazy = Bm25Index::open(image, *image);
    CHECK(lazy.size() == source.size() && lazy.partitions() == source.partitions());
    CHECK(lazy.partition_size(3) == source.partition_size(3));
    CHECK(lazy.serialize() == *image);  // undecoded blocks are copied
    for (std::uint32_t p = 0; p < 6; ++p)
      CHECK(same_hits(lazy.search(p, "word3 common 2", 20), source.search(p, "word3 common 2", 20)));
    CHECK(lazy.serialize() == *image);  // decoded blocks re-encode to the same bytes
  }
  {
    // Writes to partitions never searched.
    Bm25Index lazy = Bm25Index::open(image, *image);
    Bm25Index plain = Bm25Index::deserialize(*image);
    for (Bm25Index* x : {&lazy, &plain}) {
      x->add(2, 1000, "zebra word3");
      x->add(1, 7, "moved and rewritten");  // id 7 lives in partition 1
      CHECK(x->remove(14, 2));
      CHECK(x->remove(15));  // no hint: found by its id range
      CHECK(!x->remove(99999));
      x->drop_partition(4);
    }
    CHECK(lazy.contains(20) && !lazy.contains(14) && !lazy.contains(4));
    CHECK(lazy.size() == plain.size());
    CHECK(lazy.serialize() == plain.serialize());
  }
  {
    // A damaged block: rebuilt by the callback (here from the source index's own texts), or an error.
    std::string bad = *image;
    bad[bad.size() - 20] = char(bad[bad.size() - 20] ^ 0x04);  // inside the last partition's block
    auto bad_image = std::make_shared<const std::string>(bad);
    CHECK(throws<CorruptData>([&] { Bm25Index::deserialize(bad); }));
    Bm25Index strict = Bm25Index::open(bad_image, *bad_image);
    CHECK(same_hits(strict.search(0, "word3", 10), source.search(0, "word3", 10)));
    CHECK(throws<CorruptData>([&] { strict.search(5, "word3", 10); }));
    int rebuilt = 0;
    Bm25Index lazy = Bm25Index::open(bad_image, *bad_image, [&](std::uint32_t p, const Bm25Index::AddDoc& add) {
      ++rebuilt;
      for (std::uint64_t i = 1; i <= 600; ++i)
        if (i % 6 == p) add(i, "word" + std::to_string(i % 17) + " common text " + std::to_string(i % 5));
    });
    CHECK(same_hits(lazy.search(5, "word3 common", 50), source.search(5, "word3 common", 50)));
    CHECK(rebuilt == 1 && lazy.serialize() == *image);
  }
  {
    std::string bad = *image;
    bad[30] = char(bad[30] ^ 0x01);  // the header: refused at open
    CHECK(throws<CorruptData>([&] { Bm25Index::open(image, bad); }));
  }
  {
    // Concurrent first searches of several partitions decode each once and agree with the source.
    Bm25Index lazy = Bm25Index::open(image, *image);
    std::atomic<int> mismatches{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        for (int r = 0; r < 30; ++r) {
          const std::uint32_t p = std::uint32_t((t + r) % 6);
          if (!same_hits(lazy.search(p, "word5 text", 15), source.search(p, "word5 text", 15))) ++mismatches;
          if (lazy.size() != source.size()) ++mismatches;
        }
      });
    for (auto& th : threads) th.join();
    CHECK(mismatches.load() == 0);
  }
}

void test_estimator() {
  CHECK(estimate_tokens("") == 0);
  CHECK(estimate_tokens("Hello world") == 2);
  CHECK(estimate_tokens("1234567") == 3);
  const auto pieces = cl100k_pieces("I'm  here!\n");
  CHECK((pieces == std::vector<std::string_view>{"I", "'m", " ", " here", "!\n"}));
}

}  // namespace

// Every listed stopword is found, by both lookups; words one letter off are not (unless listed too);
// the padded lookup agrees with the plain one on every word of up to three letters and on longer ones.
void test_stopwords() {
  const auto list = stopword_list();
  CHECK(list.size() > 150);
  auto listed = [&](std::string_view w) { return std::find(list.begin(), list.end(), w) != list.end(); };
  auto padded = [](std::string_view w) {
    char p[16] = {};
    std::copy(w.begin(), w.end(), p);
    return is_stopword_padded(p, w.size());
  };
  int missed = 0, extra = 0, disagree = 0;
  for (std::string_view w : list) {
    missed += !is_stopword(w) || !padded(w);
    std::string longer(w), shorter(w.substr(0, w.size() - 1)), changed(w);
    longer += 's';
    changed.back() = changed.back() == 'z' ? 'y' : char(changed.back() + 1);
    for (const std::string& near : {longer, shorter, changed}) {
      if (near.size() > 16) continue;
      extra += is_stopword(near) != listed(near);
      disagree += is_stopword(near) != padded(near);
    }
  }
  std::string w;
  for (char a = 'a'; a <= 'z'; ++a)
    for (char b = 'a' - 1; b <= 'z'; ++b)
      for (char c = 'a' - 1; c <= 'z'; ++c) {
        w.assign(1, a);
        if (b >= 'a') w += b;
        if (b >= 'a' && c >= 'a') w += c;
        extra += is_stopword(w) != listed(w);
        disagree += is_stopword(w) != padded(w);
      }
  CHECK(missed == 0);
  CHECK(extra == 0);
  CHECK(disagree == 0);
  CHECK(!is_stopword("") && !is_stopword("yourselvesx") && is_stopword("yourselves"));
}

int run_text_tests() {
  failures = 0;
  test_stopwords();
  test_utf8();
  test_tokenizer();
  test_bm25_basics();
  test_bm25_snapshot();
  test_bm25_lazy_open();
  test_bm25_concurrent_searches();
  test_estimator();
  std::printf("text tests: %s (%d failures)\n", failures ? "FAILED" : "ok", failures);
  return failures;
}
