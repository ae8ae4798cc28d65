// Character classes and case folding for the scripts the text layer handles, without ICU: a small
// table of code point ranges is enough for word segmentation, and keeps the wheel dependency-free.
#pragma once

namespace recallcore::text {

enum class CharClass : unsigned char {
  other,        // whitespace, punctuation, symbols, emoji: separates words
  letter,       // \p{L} for the scripts in the table (Latin, Greek, Cyrillic, Armenian, Hebrew, Arabic, Hangul, ...)
  digit,        // decimal digits (ASCII, Arabic-Indic, fullwidth)
  ideograph,    // CJK ideographs and kana: each character is a word of its own
  mark,         // combining marks (U+0300..U+036F etc.): continue the word they follow
};

CharClass classify_slow(char32_t cp) noexcept;

inline CharClass classify(char32_t cp) noexcept {
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CharClass::letter;
    if (cp >= '0' && cp <= '9') return CharClass::digit;
    return CharClass::other;
  }
  return classify_slow(cp);
}

// Simple (1:1) lowercase mapping for ASCII, Latin-1, Latin Extended-A/B (pairs), Latin Extended
// Additional, Greek (with final sigma folded to sigma), Cyrillic and fullwidth Latin. Other code
// points map to themselves.
char32_t to_lower_slow(char32_t cp) noexcept;

inline char32_t to_lower(char32_t cp) noexcept {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 0x20 : cp;
  return to_lower_slow(cp);
}

}  // namespace recallcore::text
