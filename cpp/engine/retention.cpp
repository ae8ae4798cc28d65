#include "engine/retention.h"

#include <algorithm>
#include <cmath>

namespace recallcore::engine {

double retention_score(const RecordHeader& h, std::uint32_t accesses, double last_access, double now,
                       double half_life) {
  if (!(half_life > 0)) half_life = kDefaultHalfLife;
  const double age = std::max(0.0, now - std::max(h.ts, last_access));
  double s = std::exp2(-age / half_life) * (0.5 + double(h.importance)) *
             (1.0 + std::log(double(accesses) + double(std::max<std::uint32_t>(h.repeats, 1))));
  if (h.superseded_by != 0 && h.valid_to <= now) s *= 0.25;
  return s;
}

}  // namespace recallcore::engine
