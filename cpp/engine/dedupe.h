// Duplicate detection on write: the normalised-text form whose hash keys the `dedupe` table.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace recallcore::engine {

// Lowercase (ASCII), ASCII punctuation removed, whitespace runs collapsed to one space and trimmed,
// so "Likes  tea!" and "likes tea" are the same fact. Non-ASCII bytes are kept as they are.
std::string normalise_for_dedupe(std::string_view text);
// 64-bit hash of the normalised text; 0 when the normalised text is empty (never deduplicated).
std::uint64_t dedupe_hash(std::string_view text);

}  // namespace recallcore::engine
