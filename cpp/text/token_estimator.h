// Fast estimate of how many cl100k_base (GPT-4 / GPT-3.5) BPE tokens a text encodes to, without the
// 100k-entry vocabulary: used to budget context at write time when the user has no real tokenizer.
//
// How: the text is split exactly as cl100k's pre-tokenisation regex splits it (contractions, words
// with their leading space or symbol, 1-3 digit groups, punctuation runs, whitespace); BPE runs inside
// each piece independently, so the count is a sum over pieces. Each piece's expected token count
// comes from a small model fitted on real text against the real tokenizer
// (benchmarks/calibrate_estimator.py): for ASCII words a table by (leading char, case pattern,
// length), with a second table for other Latin-script languages (chosen per text from accents and
// the share of English stopwords); per-letter rates for other scripts; per-character costs for
// symbols and emoji. The sum is rounded once at the end.
//
// Accuracy (measured, see benchmarks/RESULTS.md): within about ±4% in aggregate on English chat,
// prose and documentation (about 4% mean error per chat message); within ±10% on 19 of 30 other
// languages tested and ±23% on all (worst: Finnish, Dutch, Hungarian, Russian, whose word costs the
// signals above cannot tell apart from their neighbours').
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace recallcore::text {

// Estimated cl100k_base token count of `utf8` (0 for empty text). Throws InvalidArgument on
// ill-formed UTF-8.
std::size_t estimate_tokens(std::string_view utf8);

// The same, always through the general (decoding) path, even for ASCII text, which estimate_tokens
// reads as bytes: for tests that the two paths agree.
std::size_t estimate_tokens_decoding(std::string_view utf8);

// The pieces of cl100k_base's pre-tokenisation of `utf8` (exposed to test the splitter against the
// reference regex). Throws InvalidArgument on ill-formed UTF-8.
std::vector<std::string_view> cl100k_pieces(std::string_view utf8);

}  // namespace recallcore::text
