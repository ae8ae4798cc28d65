#include "text/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <iterator>

#include "text/charclass.h"
#include "text/utf8.h"

namespace recallcore::text {

namespace {

// NLTK's English stopword list (179 words) with apostrophes removed, as rule 3 of the header does
// to the text, plus contractions frequent in chat ("im", "ive", "cant", ...).
constexpr std::string_view kStopwords[] = {
    "a",        "about",   "above",   "after",    "again",  "against", "ain",     "all",     "am",
    "an",       "and",     "any",     "are",      "aren",   "arent",   "as",      "at",      "be",
    "because",  "been",    "before",  "being",    "below",  "between", "both",    "but",     "by",
    "can",      "cant",    "couldn",  "couldnt",  "d",      "did",     "didn",    "didnt",   "do",
    "does",     "doesn",   "doesnt",  "doing",    "don",    "dont",    "down",    "during",  "each",
    "few",      "for",     "from",    "further",  "had",    "hadn",    "hadnt",   "has",     "hasn",
    "hasnt",    "have",    "haven",   "havent",   "having", "he",      "hed",     "her",     "here",
    "hers",     "herself", "hes",     "him",      "himself", "his",    "how",     "i",       "if",
    "im",       "in",      "into",    "is",       "isn",    "isnt",    "it",      "its",     "itself",
    "ive",      "just",    "ll",      "m",        "ma",     "me",      "mightn",  "mightnt", "more",
    "most",     "mustn",   "mustnt",  "my",       "myself", "needn",   "neednt",  "no",      "nor",
    "not",      "now",     "o",       "of",       "off",    "on",      "once",    "only",    "or",
    "other",    "our",     "ours",    "ourselves", "out",   "over",    "own",     "re",      "s",
    "same",     "shan",    "shant",   "she",      "shes",   "should",  "shouldn", "shouldnt", "shouldve",
    "so",       "some",    "such",    "t",        "than",   "that",    "thatll",  "thats",   "the",
    "their",    "theirs",  "them",    "themselves", "then", "there",   "theres",  "these",   "they",
    "theyre",   "theyve",  "this",    "those",    "through", "to",     "too",     "under",   "until",
    "up",       "ve",      "very",    "was",      "wasn",   "wasnt",   "we",      "were",    "weren",
    "werent",   "weve",    "what",    "whats",    "when",   "where",   "which",   "while",   "who",
    "whom",     "why",     "will",    "with",     "won",    "wont",    "wouldn",  "wouldnt", "y",
    "you",      "youd",    "youll",   "your",     "youre",  "yours",   "yourself", "yourselves", "youve",
};

bool is_vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

bool has_vowel(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return is_vowel(c) || c == 'y'; });
}

bool all_ascii_lower(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_apostrophe(char32_t cp) { return cp == U'\'' || cp == U'\u2019'; }

}  // namespace

namespace {

// A word of at most 10 bytes as a hash key: its bytes, zero-padded to 16, in two 64-bit words, with
// its length in the last byte (so "a" and "a\0" differ, and no key is all zeros: that marks an empty
// slot).
struct WordKey {
  std::uint64_t lo, hi;
  bool operator==(const WordKey&) const = default;
};

WordKey key_of(const char (&padded)[16], std::size_t n) {
  char bytes[16];
  std::memcpy(bytes, padded, 16);
  bytes[15] = char(n);  // a padding byte (words have at most 10 bytes), on any byte order
  WordKey k;
  std::memcpy(&k.lo, bytes, 8);
  std::memcpy(&k.hi, bytes + 8, 8);
  return k;
}

// Open addressing over a power-of-two table, built once: a multiply hash of the two key words and
// usually one comparison of two integers per lookup (the estimator calls this per word; it used
// std::hash of the string, a call into libstdc++, and a string comparison).
constexpr unsigned kStopBits = 9;
constexpr std::size_t kStopSlots = std::size_t(1) << kStopBits;

std::size_t slot_of(const WordKey& k) {
  return std::size_t(((k.lo * 0x9E3779B97F4A7C15ull) ^ (k.hi * 0xC2B2AE3D27D4EB4Full)) >> (64 - kStopBits));
}

constexpr bool stopwords_fit() {
  for (std::string_view sw : kStopwords)
    if (sw.empty() || sw.size() > 10) return false;
  return true;
}
static_assert(stopwords_fit(), "is_stopword_padded() looks up words of 1 to 10 bytes");

const std::array<WordKey, kStopSlots>& stopword_table() {
  static const auto table = [] {
    std::array<WordKey, kStopSlots> t{};
    for (std::string_view sw : kStopwords) {
      char padded[16] = {};
      std::memcpy(padded, sw.data(), sw.size());
      const WordKey k = key_of(padded, sw.size());
      std::size_t h = slot_of(k);
      while (t[h] != WordKey{}) h = (h + 1) & (kStopSlots - 1);
      t[h] = k;
    }
    return t;
  }();
  return table;
}

}  // namespace

bool is_stopword_padded(const char (&padded)[16], std::size_t n) noexcept {
  if (n == 0 || n > 10) return false;  // the longest stopwords have 10 letters
  const auto& table = stopword_table();
  const WordKey k = key_of(padded, n);
  for (std::size_t h = slot_of(k);; h = (h + 1) & (kStopSlots - 1)) {
    if (table[h] == k) return true;
    if (table[h] == WordKey{}) return false;
  }
}

std::span<const std::string_view> stopword_list() noexcept { return kStopwords; }

bool is_stopword(std::string_view w) noexcept {
  if (w.empty() || w.size() > 10) return false;
  char padded[16] = {};
  std::memcpy(padded, w.data(), w.size());
  return is_stopword_padded(padded, w.size());
}

void stem_light(std::string& w) {
  // Short words are left alone: stripping "is" -> "i" or "bus" -> "bu" hurts more than it helps.
  if (w.size() < 4 || !all_ascii_lower(w)) return;
  // Step 1: plurals (Harman's S-stemmer, plus "sses").
  if (ends_with(w, "sses")) {
    w.resize(w.size() - 2);
  } else if (ends_with(w, "ies")) {
    w.resize(w.size() - 3);
    w += w.size() > 1 ? "y" : "ie";  // "studies" -> "study", "ties" -> "tie"
  } else if (w.back() == 's' && !ends_with(w, "ss") && !ends_with(w, "us") && !ends_with(w, "is")) {
    w.pop_back();
  }
  // Step 2: -ed / -ing (Porter's step 1b, simplified). The stem must keep a vowel and 3 letters, so
  // "need", "bring", "thing", "red" stay whole.
  bool stripped = false;
  if (ends_with(w, "eed")) {
    if (has_vowel(std::string_view(w).substr(0, w.size() - 3))) w.pop_back();  // "agreed" -> "agree"
  } else if (ends_with(w, "ied") && w.size() >= 4) {
    w.resize(w.size() - 3);
    w += w.size() > 1 ? "y" : "ie";  // "studied" -> "study", "died" -> "die"
  } else if (ends_with(w, "ed") && w.size() >= 5 && has_vowel(std::string_view(w).substr(0, w.size() - 2))) {
    w.resize(w.size() - 2);
    stripped = true;
  } else if (ends_with(w, "ing") && w.size() >= 6 && has_vowel(std::string_view(w).substr(0, w.size() - 3))) {
    w.resize(w.size() - 3);
    stripped = true;
  }
  if (stripped && w.size() >= 2) {
    const char a = w[w.size() - 1], b = w[w.size() - 2];
    // "running" -> "runn" -> "run", but "falling" -> "fall", "missed" -> "miss".
    if (a == b && !is_vowel(a) && a != 'l' && a != 's' && a != 'z') w.pop_back();
  }
  // Step 3: a final -e, so that "hope", "hoped" and "hoping" meet at "hop" without Porter's
  // measure-based "add an e back" rule.
  if (w.size() >= 4 && w.back() == 'e') w.pop_back();
}

bool valid_utf8(std::string_view s) noexcept { return first_invalid_utf8(s) == std::string_view::npos; }

void for_each_token(std::string_view s, const TokenizerOptions& options,
                    const std::function<void(std::string_view)>& sink) {
  require_valid_utf8(s);
  thread_local std::string word;  // reused: no allocation per word once warm
  word.clear();
  bool word_has_letter = false;
  auto flush = [&] {
    if (word.empty()) return;
    if (!(options.stopwords && is_stopword(word))) {
      if (options.stem && word_has_letter) stem_light(word);
      sink(word);
    }
    word.clear();
    word_has_letter = false;
  };
  std::size_t i = 0;
  CharClass prev_cls = CharClass::other;
  while (i < s.size()) {
    char32_t cp = 0;
    decode_utf8(s, i, cp);  // cannot fail: validated above
    const CharClass cls = classify(cp);
    switch (cls) {
      case CharClass::letter:
        word_has_letter = true;
        [[fallthrough]];
      case CharClass::digit:
        append_utf8(word, to_lower(cp));
        break;
      case CharClass::mark:
        if (!word.empty()) append_utf8(word, cp);
        break;
      case CharClass::ideograph:
        flush();
        append_utf8(word, cp);
        flush();
        break;
      case CharClass::other: {
        // An apostrophe between two letters joins them: look one code point ahead.
        if (is_apostrophe(cp) && prev_cls == CharClass::letter && i < s.size()) {
          std::size_t j = i;
          char32_t next = 0;
          decode_utf8(s, j, next);
          if (classify(next) == CharClass::letter) break;
        }
        flush();
        break;
      }
    }
    prev_cls = cls;
  }
  flush();
}

std::vector<std::string> tokenize(std::string_view utf8, const TokenizerOptions& options) {
  std::vector<std::string> out;
  for_each_token(utf8, options, [&](std::string_view t) { out.emplace_back(t); });
  return out;
}

}  // namespace recallcore::text
