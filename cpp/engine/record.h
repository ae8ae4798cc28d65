// A memory record as stored in the `records` table, and its binary codec.
//
// Layout (little-endian, version byte first): a fixed header of scalars, then length-prefixed text,
// summary, metadata JSON, entity names and source ids. Names (namespace, session, kind, role) are
// stored as small integer ids from the `names` table.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace recallcore::engine {

enum RecordFlag : std::uint32_t {
  kHasVector = 1u << 0,
  kArchived = 1u << 1,  // kept and restorable, not recalled by default (compaction)
};

constexpr double kForever = std::numeric_limits<double>::infinity();

// The scalar part of a record; also the in-memory filter table's row (see engine/state.h).
struct RecordHeader {
  std::uint32_t ns = 0, session = 0, kind = 0, role = 0;  // name ids; 0 = none
  double ts = 0, created = 0, updated = 0;
  double valid_from = -kForever, valid_to = kForever;  // temporal validity (superseded facts)
  double expires_at = kForever;                       // ttl
  float importance = 0.5f;
  std::uint32_t tokens_text = 0, tokens_summary = 0;
  std::uint32_t flags = 0;
  std::uint32_t repeats = 1;  // merged duplicates
  std::uint32_t reserved = 0;  // explicit, always 0: the saved bytes hold no indeterminate padding
  std::uint64_t supersedes = 0, superseded_by = 0;
};

// Which records a read sees by time and state: facts valid at `valid_at` (every version with
// `history`), archived originals only with `archived`, never an expired record. The one rule for
// recall's filter, the scan copies' mirrored fields and the pinned kinds of a context.
struct Visibility {
  double valid_at = 0, now = 0;
  bool history = false, archived = false;
  bool admits(double valid_from, double valid_to, double expires_at, bool is_archived) const {
    if (!history && !(valid_from <= valid_at && valid_at < valid_to)) return false;
    if (!archived && is_archived) return false;
    return expires_at > now;
  }
  bool admits(const RecordHeader& h) const {
    return admits(h.valid_from, h.valid_to, h.expires_at, (h.flags & kArchived) != 0);
  }
};

struct Record {
  std::uint64_t id = 0;
  RecordHeader h;
  std::string text, summary, metadata;  // metadata: JSON text ("" = none)
  std::vector<std::string> entities;
  std::vector<std::uint64_t> sources;  // compaction: the records a summary was made from
};

std::string encode_record(const Record& r);
// Throws CorruptData when the bytes are not a record of a known version.
Record decode_record(std::uint64_t id, std::string_view bytes);
RecordHeader decode_header(std::string_view bytes);
// Snapshots (derived data, read back by the same build on the same machine) hold the in-memory rows
// that embed RecordHeader as bytes (engine/snapshot.cpp): an open maps them, it decodes nothing.
static_assert(std::is_trivially_copyable_v<RecordHeader>);
static_assert(sizeof(RecordHeader) == 4 * 4 + 6 * 8 + 4 + 5 * 4 + 2 * 8, "RecordHeader has implicit padding");

}  // namespace recallcore::engine
