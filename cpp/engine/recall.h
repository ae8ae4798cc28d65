// Recall: one query -> the best few live records of one namespace, fusing vector similarity, BM25,
// recency and importance, with filters applied inside both searches.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/record.h"

namespace recallcore::engine {

enum class RecallMode : std::uint8_t { hybrid, vector, lexical };

// How hybrid mode merges the vector and lexical candidate lists (each `candidates` deep).
//  rrf:      sum over lists of weight / (rrf_k + rank)   (reciprocal-rank fusion, the default: it
//            needs no score calibration between the lists, whatever the embedder or the corpus)
//  relative: sum over lists of weight * (s - min) / (max - min), divided by the sum of the weights
//            (relative-score fusion: each list's raw scores min-max normalised over its own
//            candidates; a record absent from a list gets 0 from it; a list whose scores are all
//            equal gives each record 1). It keeps how much better the best hit of a list is than
//            the rest, which rank fusion throws away: slightly better on REALTALK (R@10 0.540 vs
//            0.535 over all ten conversations; see benchmarks/RESULTS.md).
enum class Fusion : std::uint8_t { rrf, relative };

struct RecallQuery {
  std::string ns = "default";
  std::string text;               // BM25 query (and what the embedder embedded, upstream)
  const float* vector = nullptr;  // dim floats or null
  std::size_t k = 10;
  RecallMode mode = RecallMode::hybrid;
  std::vector<std::string> kinds;  // empty: every kind
  std::optional<std::string> session;
  double since = -INFINITY, until = INFINITY;  // on ts
  std::vector<std::string> entities;           // records mentioning any of them
  double now = 0;                              // for recency, validity and expiry
  std::optional<double> as_of;                 // facts valid at this time (default: now)
  bool include_history = false;                // superseded versions too
  bool include_archived = false;               // compacted originals too
  double recency_half_life = 0;                // seconds; 0: no recency decay
  float recency_weight = 0.5f;                 // score x (1 - w + w * 2^(-age/half_life))
  float importance_weight = 0.5f;              // score x (1 + w * (importance - 0.5))
  float diversity = 0;                         // MMR trade-off in [0, 1]; 0: off
  float dedupe_similarity = 0.97f;             // with diversity > 0: drop hits this similar to a better one
  float vector_weight = 1.0f, lexical_weight = 1.0f;  // fusion weights
  Fusion fusion = Fusion::rrf;
  // RRF's constant (fusion = rrf). 60 (Cormack et al. 2009) was set for fusing 1000-deep TREC runs; a memory
  // namespace yields lists of a few hundred at most and callers want ~10 results, so a small
  // constant lets the top ranks of either list count (chosen on REALTALK conversations 0-4:
  // R@10 is flat for 1..10 and falls from 15 on; see benchmarks/RESULTS.md).
  std::size_t rrf_k = 10;
  // Per list; 0: max(kDefaultCandidates, 5 * k). Fusion sees only these, so deeper lists let a
  // record ranked modestly by both searches surface (R@10 rose from 50 to 100, flat beyond).
  std::size_t candidates = 0;
  // Vector hits whose similarity is re-scored exactly (default: all k; 0: none). Hits below carry the
  // int8 estimate (within ~1e-3 of a cosine, in estimate order) when the namespace is scanned; a
  // caller that uses only the ranks, like context packing, saves a cold f32 row read per hit.
  std::size_t exact = SIZE_MAX;
  std::size_t ef = 0;          // HNSW ef; 0: index default
};

constexpr std::size_t kDefaultCandidates = 100;

struct RecallHit {
  std::uint64_t id = 0;
  float score = 0;
  std::uint32_t vector_rank = 0;  // 1-based; 0: not in the vector list
  float vector_similarity = NAN;  // 1 - distance
  std::uint32_t lexical_rank = 0;
  float bm25 = NAN;
  float recency = 1.0f;           // the factor applied (1 when off)
  float importance = 0.5f;
};

}  // namespace recallcore::engine
