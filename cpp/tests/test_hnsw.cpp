// Python-free tests of the HNSW index (run under ASan/UBSan with -DRECALLCORE_SANITIZE=ON):
// recall against brute force, filters, deletes, replace, compact, snapshots (incl. mmap and damaged
// files), concurrent readers during writes, and argument validation. Plain asserts, no framework.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "hnsw/index.h"
#include "tests/check.h"

using namespace recallcore;
using namespace recallcore::hnsw;

namespace {

int failures = 0;

using recallcore::tests::throws;

std::vector<float> clustered(std::size_t n, std::size_t dim, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> centres(40 * dim);
  for (auto& c : centres) c = g(rng);
  std::vector<float> x(n * dim);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t c = rng() % 40;
    for (std::size_t d = 0; d < dim; ++d) x[i * dim + d] = centres[c * dim + d] + 0.4f * g(rng);
  }
  return x;
}

float l2(const float* a, const float* b, std::size_t dim) {
  float s = 0;
  for (std::size_t i = 0; i < dim; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

std::vector<std::uint64_t> brute(const std::vector<float>& x, const std::vector<std::uint64_t>& ids, const float* q,
                                 std::size_t dim, std::size_t k) {
  std::vector<std::pair<float, std::uint64_t>> d;
  for (std::size_t i = 0; i < ids.size(); ++i) d.push_back({l2(q, &x[i * dim], dim), ids[i]});
  std::sort(d.begin(), d.end());
  std::vector<std::uint64_t> out;
  for (std::size_t i = 0; i < std::min(k, d.size()); ++i) out.push_back(d[i].second);
  return out;
}

double recall_of(const std::vector<Hit>& hits, const std::vector<std::uint64_t>& truth) {
  std::set<std::uint64_t> t(truth.begin(), truth.end());
  std::size_t h = 0;
  for (const Hit& x : hits) h += t.count(x.id);
  return truth.empty() ? 1.0 : double(h) / double(truth.size());
}

constexpr std::size_t kDim = 24, kN = 2000, kQ = 50;

void test_recall_filters_exact() {
  auto x = clustered(kN + kQ, kDim, 1);
  Config c;
  c.dim = kDim;
  c.metric = simd::Metric::l2;
  c.ef_construction = 100;
  Index idx(c);
  std::vector<std::uint64_t> ids(kN);
  for (std::size_t i = 0; i < kN; ++i) ids[i] = 10 * i + 3;
  idx.add(x.data(), ids.data(), kN, 2);
  CHECK(idx.size() == kN);
  double r = 0;
  for (std::size_t qi = 0; qi < kQ; ++qi) {
    const float* q = &x[(kN + qi) * kDim];
    auto hits = idx.search(q, 10, 64);
    CHECK(hits.size() == 10);
    for (std::size_t i = 1; i < hits.size(); ++i) CHECK(hits[i - 1].distance <= hits[i].distance);
    r += recall_of(hits, brute(x, ids, q, kDim, 10));
  }
  CHECK(r / kQ >= 0.95);

  // Filters: a small allow-list (exact path) and a large one (walk), against filtered brute force.
  for (std::size_t step : {3u, 97u}) {
    std::vector<std::uint64_t> allowed;
    std::vector<float> sub;
    for (std::size_t i = 0; i < kN; i += step) {
      allowed.push_back(ids[i]);
      sub.insert(sub.end(), &x[i * kDim], &x[(i + 1) * kDim]);
    }
    IdListFilter f(allowed.data(), allowed.size());
    double fr = 0;
    for (std::size_t qi = 0; qi < kQ; ++qi) {
      const float* q = &x[(kN + qi) * kDim];
      auto hits = idx.search(q, 10, 64, &f);
      for (const Hit& h : hits) CHECK(f.allows(h.id));
      fr += recall_of(hits, brute(sub, allowed, q, kDim, 10));
      auto ex = idx.search_exact(q, 10, allowed.data(), allowed.size());
      CHECK(recall_of(ex, brute(sub, allowed, q, kDim, 10)) == 1.0);
    }
    CHECK(fr / kQ >= 0.99);
  }
  // distance / get_vector
  std::vector<float> v(kDim);
  CHECK(idx.get_vector(ids[5], v.data()));
  CHECK(std::equal(v.begin(), v.end(), &x[5 * kDim]));
  CHECK(std::fabs(idx.distance(&x[kN * kDim], ids[5]) - l2(&x[kN * kDim], &x[5 * kDim], kDim)) < 1e-3f);
  CHECK(!idx.get_vector(4, v.data()));
  CHECK(throws<InvalidArgument>([&] { idx.distance(v.data(), 4); }));
  CHECK(throws<InvalidArgument>([&] { idx.search(v.data(), 0); }));
  CHECK(throws<InvalidArgument>([&] { idx.search(v.data(), 10, 5); }));
  std::uint64_t unknown[2] = {ids[0], 4};
  CHECK(throws<InvalidArgument>([&] { idx.remove(unknown, 2); }));
  CHECK(idx.contains(ids[0]) && idx.size() == kN);
  std::vector<float> bad(kDim, 1.0f);
  bad[3] = NAN;
  std::uint64_t nid = 1;
  CHECK(throws<InvalidArgument>([&] { idx.add(bad.data(), &nid, 1); }));
  CHECK(!idx.contains(1));
}

void test_deletes_replace_compact() {
  for (Storage st : {Storage::f32, Storage::f16, Storage::i8}) {
    auto x = clustered(kN + kQ, kDim, 2);
    Config c;
    c.dim = kDim;
    c.metric = simd::Metric::l2;
    c.storage = st;
    Index idx(c);
    std::vector<std::uint64_t> ids(kN);
    for (std::size_t i = 0; i < kN; ++i) ids[i] = i;
    idx.add(x.data(), ids.data(), kN, 2);
    std::vector<std::uint64_t> gone, keep;
    std::vector<float> kept;
    for (std::size_t i = 0; i < kN; ++i) {
      if (i % 2 == 0) {
        gone.push_back(i);
      } else {
        keep.push_back(i);
        kept.insert(kept.end(), &x[i * kDim], &x[(i + 1) * kDim]);
      }
    }
    idx.remove(gone.data(), gone.size());
    CHECK(idx.size() == keep.size());
    double r = 0;
    for (std::size_t qi = 0; qi < kQ; ++qi) {
      const float* q = &x[(kN + qi) * kDim];
      auto hits = idx.search(q, 10, 64);
      CHECK(hits.size() == 10);
      for (const Hit& h : hits) CHECK(h.id % 2 == 1);
      r += recall_of(hits, brute(kept, keep, q, kDim, 10));
    }
    CHECK(r / kQ >= 0.95);
    // Re-adding removed ids reuses their slots; replacing a live id moves it.
    idx.add(x.data(), gone.data(), 100, 2);
    CHECK(idx.size() == keep.size() + 100);
    idx.add(&x[kN * kDim], &keep[0], 1, 1);
    auto self = idx.search(&x[kN * kDim], 1);
    CHECK(!self.empty() && self[0].id == keep[0]);
    idx.compact();
    CHECK(idx.stats().tombstones == 0 && idx.size() == keep.size() + 100);
    self = idx.search(&x[kN * kDim], 1);
    CHECK(!self.empty() && self[0].id == keep[0]);
  }
}

void test_persistence() {
  auto x = clustered(kN, kDim, 3);
  for (Storage st : {Storage::f32, Storage::i8}) {
    Config c;
    c.dim = kDim;
    c.storage = st;
    Index idx(c);
    idx.add(x.data(), nullptr, kN, 2);
    std::uint64_t some[3] = {1, 2, 3};
    idx.remove(some, 3);
    const std::string path = "/tmp/recallcore_test_hnsw.bin";
    idx.save(path, 42);
    for (bool mm : {false, true}) {
      std::uint64_t stamp = 0;
      auto loaded = Index::load(path, mm, &stamp);
      CHECK(stamp == 42 && loaded->size() == idx.size());
      for (std::size_t qi = 0; qi < 20; ++qi) {
        auto a = idx.search(&x[qi * kDim], 10), b = loaded->search(&x[qi * kDim], 10);
        CHECK(a.size() == b.size());
        for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].id == b[i].id && a[i].distance == b[i].distance);
      }
      loaded->add(x.data(), some, 3, 1);  // copy-on-write for a mapping
      CHECK(loaded->size() == idx.size() + 3);
    }
    // Damaged files: truncated and bit-flipped.
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string bad_path = "/tmp/recallcore_test_hnsw_bad.bin";
    for (std::size_t cut : {std::size_t(0), std::size_t(50), bytes.size() / 2, bytes.size() - 1}) {
      std::ofstream(bad_path, std::ios::binary).write(bytes.data(), std::streamsize(cut));
      CHECK(throws<CorruptData>([&] { Index::load(bad_path); }));
      CHECK(throws<CorruptData>([&] { Index::load(bad_path, true); }));
    }
    std::mt19937 rng(5);
    for (int t = 0; t < 40; ++t) {
      std::string b = bytes;
      const std::size_t pos = rng() % b.size();
      if (b[pos] == 0 && pos > 144) continue;  // may be alignment padding (unread)
      b[pos] = char(b[pos] ^ 0x41);
      std::ofstream(bad_path, std::ios::binary).write(b.data(), std::streamsize(b.size()));
      CHECK(throws<CorruptData>([&] { Index::load(bad_path); }));
      // Mapped: either rejected or usable without crashing (the bulk block is bounds-checked).
      try {
        auto m = Index::load(bad_path, true);
        (void)m->search(&x[0], 10);
      } catch (const CorruptData&) {
      }
    }
    std::remove(path.c_str());
    std::remove(bad_path.c_str());
  }
}

void test_concurrency() {
  const std::size_t n = 4000;
  auto x = clustered(n, kDim, 4);
  Config c;
  c.dim = kDim;
  c.metric = simd::Metric::l2;
  c.ef_construction = 64;
  Index idx(c);
  std::vector<std::uint64_t> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = i;
  idx.add(x.data(), ids.data(), 500, 1);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937 rng{static_cast<unsigned>(t)};
      while (!stop.load()) {
        const float* q = &x[(rng() % n) * kDim];
        auto hits = idx.search(q, 10);
        if (hits.size() != 10) ++bad;
        std::set<std::uint64_t> uniq;
        for (const Hit& h : hits) uniq.insert(h.id);
        if (uniq.size() != hits.size()) ++bad;
        std::uint64_t some[4] = {1, 2, 3, 4};
        (void)idx.search_exact(q, 3, some, 4);
        std::vector<float> v(kDim);
        (void)idx.get_vector(rng() % n, v.data());
      }
    });
  }
  for (std::size_t start = 500; start < n; start += 500) {
    idx.add(&x[start * kDim], &ids[start], 500, 2);
    idx.remove(&ids[start - 500], 100);
  }
  stop = true;
  for (auto& th : readers) th.join();
  CHECK(bad.load() == 0);
  CHECK(idx.size() == n - 7 * 100);
}

}  // namespace

// Entry point for the shared test main (cpp/tests/main.cpp); returns the number of failures.
int run_hnsw_tests() {
  test_recall_filters_exact();
  test_deletes_replace_compact();
  test_persistence();
  test_concurrency();
  if (failures != 0) std::fprintf(stderr, "test_hnsw: %d check(s) failed\n", failures);
  else std::printf("test_hnsw: all checks passed\n");
  return failures;
}
