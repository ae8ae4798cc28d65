#include "text/charclass.h"

#include <algorithm>
#include <iterator>

namespace recallcore::text {

namespace {

struct Range {
  char32_t lo, hi;
  CharClass cls;
};

// Sorted, non-overlapping. Hand-made from the Unicode 15 blocks: coarse inside a block (a few
// punctuation code points of a script may count as letters), which only shifts word boundaries in
// rare cases and never breaks UTF-8.
constexpr Range kRanges[] = {
    {0x00AA, 0x00AA, CharClass::letter},    {0x00B2, 0x00B3, CharClass::digit},
    {0x00B5, 0x00B5, CharClass::letter},    {0x00B9, 0x00B9, CharClass::digit},
    {0x00BA, 0x00BA, CharClass::letter},    {0x00C0, 0x00D6, CharClass::letter},
    {0x00D8, 0x00F6, CharClass::letter},    {0x00F8, 0x02C1, CharClass::letter},
    {0x02C6, 0x02D1, CharClass::letter},    {0x02E0, 0x02E4, CharClass::letter},
    {0x0300, 0x036F, CharClass::mark},      {0x0370, 0x0373, CharClass::letter},
    {0x0376, 0x0377, CharClass::letter},    {0x037B, 0x037D, CharClass::letter},
    {0x037F, 0x037F, CharClass::letter},    {0x0386, 0x0386, CharClass::letter},
    {0x0388, 0x03F5, CharClass::letter},    {0x03F7, 0x0481, CharClass::letter},
    {0x0483, 0x0489, CharClass::mark},      {0x048A, 0x052F, CharClass::letter},
    {0x0531, 0x0556, CharClass::letter},    {0x0560, 0x0588, CharClass::letter},
    {0x0591, 0x05BD, CharClass::mark},      {0x05D0, 0x05EA, CharClass::letter},
    {0x0610, 0x061A, CharClass::mark},      {0x0620, 0x064A, CharClass::letter},
    {0x064B, 0x065F, CharClass::mark},      {0x0660, 0x0669, CharClass::digit},
    {0x0671, 0x06D3, CharClass::letter},    {0x06F0, 0x06F9, CharClass::digit},
    {0x0900, 0x0903, CharClass::mark},      {0x0904, 0x0939, CharClass::letter},
    {0x093A, 0x094F, CharClass::mark},      {0x0950, 0x0961, CharClass::letter},
    {0x0966, 0x096F, CharClass::digit},
    // Bengali .. Sinhala share Devanagari's layout: consonants, then vowel signs, then digits.
    {0x0985, 0x09B9, CharClass::letter},    {0x09BC, 0x09CD, CharClass::mark},
    {0x09E6, 0x09EF, CharClass::digit},    {0x0A05, 0x0A39, CharClass::letter},
    {0x0A3C, 0x0A4D, CharClass::mark},    {0x0A66, 0x0A6F, CharClass::digit},
    {0x0A85, 0x0AB9, CharClass::letter},    {0x0ABC, 0x0ACD, CharClass::mark},
    {0x0AE6, 0x0AEF, CharClass::digit},    {0x0B05, 0x0B39, CharClass::letter},
    {0x0B3C, 0x0B4D, CharClass::mark},    {0x0B66, 0x0B6F, CharClass::digit},
    {0x0B85, 0x0BB9, CharClass::letter},    {0x0BBC, 0x0BCD, CharClass::mark},
    {0x0BE6, 0x0BEF, CharClass::digit},    {0x0C05, 0x0C39, CharClass::letter},
    {0x0C3C, 0x0C4D, CharClass::mark},    {0x0C66, 0x0C6F, CharClass::digit},
    {0x0C85, 0x0CB9, CharClass::letter},    {0x0CBC, 0x0CCD, CharClass::mark},
    {0x0CE6, 0x0CEF, CharClass::digit},    {0x0D05, 0x0D39, CharClass::letter},
    {0x0D3C, 0x0D4D, CharClass::mark},    {0x0D66, 0x0D6F, CharClass::digit},
    {0x0D85, 0x0DB9, CharClass::letter},    {0x0DBC, 0x0DCD, CharClass::mark},
    {0x0DE6, 0x0DEF, CharClass::digit},
    {0x0E01, 0x0E30, CharClass::letter},
    {0x0E31, 0x0E3A, CharClass::mark},      {0x0E40, 0x0E46, CharClass::letter},
    {0x0E47, 0x0E4E, CharClass::mark},      {0x0E50, 0x0E59, CharClass::digit},
    {0x10A0, 0x10FF, CharClass::letter},    {0x1100, 0x11FF, CharClass::letter},
    {0x1AB0, 0x1AFF, CharClass::mark},      {0x1DC0, 0x1DFF, CharClass::mark},
    {0x1E00, 0x1FBC, CharClass::letter},    {0x1FC2, 0x1FCC, CharClass::letter},
    {0x1FD0, 0x1FDB, CharClass::letter},    {0x1FE0, 0x1FEC, CharClass::letter},
    {0x1FF2, 0x1FFC, CharClass::letter},    {0x20D0, 0x20FF, CharClass::mark},
    {0x2C00, 0x2CE4, CharClass::letter},    {0x3005, 0x3007, CharClass::ideograph},
    {0x3041, 0x3096, CharClass::ideograph}, {0x3099, 0x309A, CharClass::mark},
    {0x309D, 0x309F, CharClass::ideograph}, {0x30A1, 0x30FA, CharClass::ideograph},
    {0x30FC, 0x30FF, CharClass::ideograph}, {0x3131, 0x318E, CharClass::letter},
    {0x31F0, 0x31FF, CharClass::ideograph}, {0x3400, 0x4DBF, CharClass::ideograph},
    {0x4E00, 0x9FFF, CharClass::ideograph}, {0xA640, 0xA66E, CharClass::letter},
    {0xAC00, 0xD7A3, CharClass::letter},    {0xF900, 0xFAFF, CharClass::ideograph},
    {0xFE20, 0xFE2F, CharClass::mark},      {0xFF10, 0xFF19, CharClass::digit},
    {0xFF21, 0xFF3A, CharClass::letter},    {0xFF41, 0xFF5A, CharClass::letter},
    {0xFF66, 0xFF9D, CharClass::ideograph}, {0x20000, 0x323AF, CharClass::ideograph},
};

}  // namespace

CharClass classify_slow(char32_t cp) noexcept {
  const auto* end = std::end(kRanges);
  const auto* it = std::upper_bound(std::begin(kRanges), end, cp, [](char32_t c, const Range& r) { return c < r.lo; });
  if (it == std::begin(kRanges)) return CharClass::other;
  --it;
  return cp <= it->hi ? it->cls : CharClass::other;
}

char32_t to_lower_slow(char32_t cp) noexcept {
  // Latin-1 Supplement: À..Þ except ×.
  if (cp >= 0xC0 && cp <= 0xDE) return cp == 0xD7 ? cp : cp + 0x20;
  if (cp < 0x100) return cp;
  // Latin Extended-A: mostly (upper, lower) pairs at (even, odd), with runs shifted by one.
  if (cp <= 0x17F) {
    if (cp == 0x130) return U'i';  // İ: Turkish dotted capital I; plain i is the useful search key
    if (cp == 0x178) return 0xFF;  // Ÿ -> ÿ
    if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) return (cp & 1) ? cp + 1 : cp;
    if (cp == 0x131 || cp == 0x138 || cp == 0x149 || cp == 0x17F) return cp;
    return (cp & 1) ? cp : cp + 1;
  }
  // Latin Extended-B: the regular pair runs only (the block is irregular elsewhere).
  if ((cp >= 0x1CD && cp <= 0x1DC)) return (cp & 1) ? cp + 1 : cp;
  if ((cp >= 0x1DE && cp <= 0x1EF) || (cp >= 0x1F8 && cp <= 0x21F) || (cp >= 0x222 && cp <= 0x233))
    return (cp & 1) ? cp : cp + 1;
  // Greek.
  if (cp >= 0x370 && cp <= 0x3FF) {
    if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) return cp + 0x20;
    if (cp == 0x386) return 0x3AC;
    if (cp >= 0x388 && cp <= 0x38A) return cp + 0x25;
    if (cp == 0x38C) return 0x3CC;
    if (cp == 0x38E || cp == 0x38F) return cp + 0x3F;
    if (cp == 0x3C2) return 0x3C3;  // final sigma (ς) folds to σ, as Unicode case folding does
    if (cp >= 0x3D8 && cp <= 0x3EF) return (cp & 1) ? cp : cp + 1;
    return cp;
  }
  // Cyrillic.
  if (cp >= 0x400 && cp <= 0x52F) {
    if (cp <= 0x40F) return cp + 0x50;
    if (cp <= 0x42F) return cp + 0x20;
    if (cp <= 0x45F) return cp;
    if ((cp >= 0x460 && cp <= 0x481) || (cp >= 0x48A && cp <= 0x4BF) || cp >= 0x4D0) return (cp & 1) ? cp : cp + 1;
    if (cp == 0x4C0) return 0x4CF;
    if (cp >= 0x4C1 && cp <= 0x4CE) return (cp & 1) ? cp + 1 : cp;
    return cp;
  }
  // Armenian capitals.
  if (cp >= 0x531 && cp <= 0x556) return cp + 0x30;
  // Latin Extended Additional (Vietnamese etc.).
  if ((cp >= 0x1E00 && cp <= 0x1E95) || (cp >= 0x1EA0 && cp <= 0x1EFF)) return (cp & 1) ? cp : cp + 1;
  if (cp == 0x1E9E) return 0xDF;  // ẞ -> ß
  // Fullwidth Latin capitals.
  if (cp >= 0xFF21 && cp <= 0xFF3A) return cp + 0x20;
  return cp;
}

}  // namespace recallcore::text
