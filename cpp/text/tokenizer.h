// Word tokenizer for lexical search (BM25): UTF-8 in, normalised word tokens out.
//
// Rules, in order:
//  1. The input must be well-formed UTF-8; otherwise InvalidArgument names the byte offset.
//  2. A word is a maximal run of letters, digits and combining marks (so "abc123" is one word and a
//     decomposed "é" stays inside its word). Everything else separates words. CJK ideographs and kana
//     are words of one character each (no dictionary segmentation); Hangul is written with spaces and
//     is treated as letters.
//  3. An apostrophe (' or U+2019) between two letters is dropped and the word continues:
//     "don't" -> "dont", "John's" -> "johns" (-> "john" after stemming). Elsewhere it separates.
//  4. Words are lowercased (ASCII, Latin-1, Latin Extended-A/B pairs, Latin Extended Additional, Greek
//     with final sigma folded, Cyrillic, Armenian, fullwidth Latin).
//  5. With `stopwords`, words of the English stopword list (NLTK's 179 words with apostrophes
//     removed, plus a few chat contractions such as "im", "ive", "cant") are dropped.
//  6. With `stem`, words made only of ASCII letters go through a light suffix stripper (see stem_light):
//     plurals, -ed and -ing, and a final -e, so "running", "runs" -> "run"; "hoped", "hoping",
//     "hope" -> "hop"; "studies", "studied" -> "study". Other words are left as they are.
#pragma once

#include <functional>
#include <string>
#include <span>
#include <string_view>
#include <vector>

namespace recallcore::text {

struct TokenizerOptions {
  bool stopwords = true;
  bool stem = true;
};

// The tokens of `utf8`, in order (duplicates kept). Throws InvalidArgument on ill-formed UTF-8.
std::vector<std::string> tokenize(std::string_view utf8, const TokenizerOptions& options = {});

// Same tokens, handed one at a time to `sink` without allocating a vector of strings; the view is
// valid only during the call. Validates the whole input before the first call to `sink`. Uses a
// per-thread word buffer, so `sink` must not call for_each_token/tokenize itself.
void for_each_token(std::string_view utf8, const TokenizerOptions& options,
                    const std::function<void(std::string_view)>& sink);

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or values above U+10FFFF).
bool valid_utf8(std::string_view s) noexcept;

// True for a word of the built-in English stopword list (lowercase, apostrophes removed).
bool is_stopword(std::string_view lower_word) noexcept;

// The built-in stopword list (lowercase, apostrophes removed), for tests and documentation.
std::span<const std::string_view> stopword_list() noexcept;

// The same for the word padded[0, n), whose bytes padded[n, 16) must be zero (the estimator keeps
// its word buffer so, and looks words up without copying them).
bool is_stopword_padded(const char (&padded)[16], std::size_t n) noexcept;

// The light stemmer of rule 6, applied in place to a lowercase ASCII word.
void stem_light(std::string& word);

}  // namespace recallcore::text
