// Retention scores: which records a capped namespace keeps. Higher is kept longer.
//
//   score = 2^(-age / half_life) · (0.5 + importance) · (1 + ln(accesses + repeats)) · (superseded ? 0.25 : 1)
//
// where age = now - max(ts, last_access) (a recalled memory is as fresh as its last use), accesses
// counts recalls of this record in this process, and repeats counts merged duplicates. A fact that
// was superseded keeps a quarter of its weight: history is evicted before current facts.
#pragma once

#include <cstdint>

#include "engine/record.h"

namespace recallcore::engine {

constexpr double kDefaultHalfLife = 30.0 * 86400.0;  // seconds

double retention_score(const RecordHeader& h, std::uint32_t accesses, double last_access, double now,
                       double half_life);

}  // namespace recallcore::engine
