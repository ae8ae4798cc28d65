#include "text/token_estimator.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>  // part of every x86-64 CPU; other CPUs take the byte loop below
#endif
#include <string_view>
#include <type_traits>

#include "text/charclass.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace recallcore::text {

namespace {

struct ScriptRate {
  char32_t lo, hi;
  float rate, intercept;
};

// kWordTable, kAccentCost and kScriptRates, fitted by benchmarks/calibrate_estimator.py: ASCII word
// tables on REALTALK conversations 0-4, GPL-3 and CPython's IDLE NEWS (English) and on the system's
// gettext catalogs of 16 Latin-script languages (other languages); script rates on the catalogs of 14
// languages in other scripts. Evaluated on held-out text (benchmarks/RESULTS.md).
constexpr int kMaxLen = 16;
#include "text/token_estimator_table.inc"

// Past 16 letters (rare names, URLs without separators, run-together words): tokens per extra letter.
constexpr float kLongTailPerLetter = 0.30f;

enum class Kind { letter, digit, space, newline, other };

bool is_space(char32_t c) {
  switch (c) {
    case U'\t': case U'\n': case U'\v': case U'\f': case U'\r': case U' ': case 0x85: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

Kind kind_of(char32_t c) {
  if (c == U'\n' || c == U'\r') return Kind::newline;
  if (is_space(c)) return Kind::space;
  switch (classify(c)) {
    case CharClass::letter:
    case CharClass::ideograph:
      return Kind::letter;
    case CharClass::digit:
      return Kind::digit;
    default:
      return Kind::other;  // includes combining marks: not \p{L} for the regex
  }
}

struct Cp {
  char32_t c;
  std::size_t pos;  // byte offset
  Kind k;
};

// A chunk's code points, as the splitter reads them: decoded from any UTF-8 (24 bytes each), or, for
// pure-ASCII text (chat and prose in English, the common case), the bytes themselves with their kinds
// from a table, which spares the decoding and the copy (~3x faster on a packed context).
struct DecodedText {
  const std::vector<Cp>& cps;
  char32_t c(std::size_t i) const { return cps[i].c; }
  Kind k(std::size_t i) const { return cps[i].k; }
  std::size_t pos(std::size_t i) const { return cps[i].pos; }
  std::size_t size() const { return cps.size(); }
};

struct AsciiText {
  std::string_view s;
  const Kind* kinds;  // kind_of() of the 128 ASCII code points
  char32_t c(std::size_t i) const { return static_cast<unsigned char>(s[i]); }
  Kind k(std::size_t i) const { return kinds[static_cast<unsigned char>(s[i])]; }
  std::size_t pos(std::size_t i) const { return i; }
  std::size_t size() const { return s.size(); }
};

bool is_latin_letter(char32_t c) { return c < 0x250 || (c >= 0x1E00 && c <= 0x1EFF); }

const ScriptRate* script_rate(char32_t c) {
  for (const ScriptRate& r : kScriptRates)
    if (c >= r.lo && c <= r.hi) return &r;
  return nullptr;
}

// Cost of one non-letter, non-digit, non-space character inside a punctuation run.
float symbol_cost(char32_t c) {
  if (c == 0xFE0F) return 0.5f;  // emoji presentation selector: often merged with its emoji
  if (c < 0x800) return 1.0f;
  if (c < 0x10000) return 1.0f;  // 3-byte: quotes, dashes, bullets, most merged to one token
  return 2.3f;                   // 4-byte: emoji, mostly two or three byte-level tokens
}

// An ASCII word of n letters, by its case: first letter a capital, a later letter a capital, all
// capitals. `table` 0 is English, 1 the table for languages written with accented Latin letters.
double ascii_word_cost(std::size_t n, bool upper0, bool upper_rest, bool all_upper, int lead, int table) {
  int cs = 3;  // mixed
  if (!upper_rest) cs = upper0 ? 1 : 0;
  else if (all_upper) cs = 2;
  const std::size_t len = std::min<std::size_t>(n, kMaxLen);
  return kWordTable[table][lead][cs][len - 1] + (n > kMaxLen ? kLongTailPerLetter * double(n - kMaxLen) : 0.0);
}

// `table` as for ascii_word_cost().
// The word is t[from, from + n).
template <class Text>
double word_tokens(const Text& t, std::size_t from, std::size_t n, int lead, int table) {
  auto ch = [&](std::size_t i) { return t.c(from + i); };
  bool ascii = true;  // (ASCII text takes ascii_word() and ascii_word_cost() instead)
  for (std::size_t i = 0; i < n; ++i) ascii = ascii && ch(i) < 0x80;
  if (!ascii) {
    // Latin letters (accented or not) use the word table plus a cost per accent; letters of other
    // scripts a per-letter rate plus the intercept of the piece's first such script.
    std::size_t latin = 0, accents = 0;
    double other = 0;
    const ScriptRate* first = nullptr;
    for (std::size_t i = 0; i < n; ++i) {
      const char32_t c = ch(i);
      if (is_latin_letter(c)) {
        ++latin;
        accents += c >= 0x80;
      } else if (const ScriptRate* r = script_rate(c)) {
        other += r->rate;
        if (!first) first = r;
      } else {
        other += 1.5;  // scripts without a fitted rate: a few byte-level tokens per letter
      }
    }
    double t = other + (first ? first->intercept : 0.0);
    if (latin) {
      const bool cap = (ch(0) >= 'A' && ch(0) <= 'Z') || (ch(0) >= 0xC0 && ch(0) <= 0xDE);
      t += kWordTable[table][lead][cap ? 1 : 0][std::min<std::size_t>(latin, kMaxLen) - 1] +
           kAccentCost * double(accents);
    }
    return std::max(1.0, t);
  }
  bool upper_rest = false, all_upper = true;
  for (std::size_t i = 0; i < n; ++i) {
    const bool up = ch(i) <= 'Z';
    upper_rest = upper_rest || (i && up);
    all_upper = all_upper && up;
  }
  return ascii_word_cost(n, ch(0) <= 'Z', upper_rest, all_upper, lead, table);
}

// An ASCII word: where its letter run ends, and what ascii_word_cost() needs of its case.
struct AsciiWord {
  std::size_t end;
  bool upper0;      // the first letter is a capital
  bool upper_rest;  // a later letter is
  bool all_upper;
};

// The letter run of ASCII text starting at the letter s[from], sixteen bytes at a time: one mask per
// block instead of a loop per letter, whose exit at a word's unpredictable length cost a branch
// miss per word (the final count of a packed context is ~1,400 words).
AsciiWord ascii_word(std::string_view s, std::size_t from) {
  AsciiWord w{from, s[from] <= 'Z', false, true};
  std::size_t e = from;
#if defined(__SSE2__)
  // Unsigned "x - lo < 26" as a signed byte compare: (x - lo) ^ 0x80 < 26 - 128.
  const __m128i lower_a = _mm_set1_epi8(char(0x80 - 'a')), upper_a = _mm_set1_epi8(char(0x80 - 'A'));
  const __m128i case_bit = _mm_set1_epi8(0x20), limit = _mm_set1_epi8(char(26 - 128));
  unsigned first = 1;  // the word's first letter, in the first block only
  while (e + 16 <= s.size()) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + e));
    const __m128i letter = _mm_cmplt_epi8(_mm_add_epi8(_mm_or_si128(x, case_bit), lower_a), limit);
    const __m128i upper = _mm_cmplt_epi8(_mm_add_epi8(x, upper_a), limit);
    const unsigned letters = unsigned(_mm_movemask_epi8(letter));
    const unsigned run = unsigned(__builtin_ctz(~letters | 0x10000u));  // letters from e on
    const unsigned in_run = (1u << run) - 1u;
    const unsigned uppers = unsigned(_mm_movemask_epi8(upper)) & in_run;
    w.upper_rest = w.upper_rest || (uppers & ~first) != 0;
    w.all_upper = w.all_upper && uppers == in_run;
    first = 0;
    e += run;
    if (run < 16) {
      w.end = e;
      return w;
    }
  }
#endif
  for (; e < s.size(); ++e) {  // the text's last bytes (every byte without SSE2)
    const unsigned char c = static_cast<unsigned char>(s[e]);
    if (unsigned((c | 0x20) - 'a') >= 26u) break;
    w.upper_rest = w.upper_rest || (e > from && c <= 'Z');
    w.all_upper = w.all_upper && c <= 'Z';
  }
  w.end = e;
  return w;
}

// Counted while decoding a chunk, for table_for().
struct Counts {
  std::size_t latin = 0, accented = 0, words = 0;  // Latin letters, accented ones, ASCII words
};

// The table for a chunk. Other languages written in Latin script cost more tokens per word than
// English (cl100k's vocabulary is mostly English). Without a vocabulary, two signals tell them apart:
// accents (on >= 1% of the Latin letters in French, Polish, Czech, Turkish, ...; almost never in
// English) and English stopwords (about half of the words of English text, rare elsewhere).
template <class Text>
int table_for(const Text& t, const Counts& counts) {
  const std::size_t latin = counts.latin, accented = counts.accented, words = counts.words;
  const bool accents = latin && accented * 100 >= latin;
  if (!accents && words < 6) return 0;
  // English stopwords, stopping as soon as there are enough to call the text English
  // (after a few words for English text, whose every other word is a stopword).
  std::size_t stop = 0;
  auto english = [&] { return stop * 100 >= words * 12 && (!accents || stop * 10 >= words * 3); };
  char word[16] = {};  // zero-padded, as is_stopword_padded() takes it
  std::size_t len = 0;
  bool ascii = true, in_word = false;
  for (std::size_t i = 0; i <= t.size(); ++i) {
    if (i < t.size() && t.k(i) == Kind::letter) {
      in_word = true;
      ascii = ascii && t.c(i) < 0x80;
      if (ascii && len < sizeof word) word[len] = char(t.c(i) | 0x20);
      ++len;
      continue;
    }
    // Stopwords have at most 10 letters; longer words are not looked up.
    // Whether a word is a stopword is a coin toss to the branch predictor: counted without a branch
    // (english() can only turn true as `stop` grows, so checking it after every word changes nothing).
    if (in_word && ascii && len <= 10) {
      stop += is_stopword_padded(word, len);
      if (english()) return 0;
    }
    if (in_word) std::memset(word, 0, sizeof word);
    in_word = false;
    ascii = true;
    len = 0;
  }
  return english() ? 0 : 1;
}

// The run is text[from, from + n).
template <class Text>
double punct_tokens(const Text& text, std::size_t from, std::size_t n, bool space_lead) {
  std::size_t ascii = 0;
  double t = 0;
  for (std::size_t i = from; i < from + n; ++i) {
    if (text.c(i) < 0x80) ++ascii;
    else t += symbol_cost(text.c(i));
  }
  // Short ASCII runs (".", "?!", "...") are single tokens; longer ones add a fraction per char.
  if (ascii) t += 1.0 + 0.3 * double(std::min<std::size_t>(ascii, 6) - std::min<std::size_t>(ascii, 2)) +
                  0.1 * double(ascii > 6 ? ascii - 6 : 0);
  if (space_lead && ascii == 0) t += 0.3;  // a space before a non-ASCII symbol often stays separate
  return std::max(1.0, t);
}

// Walks the cl100k pre-tokenisation; calls emit(begin, end, estimate) for each piece, where begin and
// end index the text's code points.
template <class Text, class Emit>
void split(const Text& t, const Counts& counts, Emit&& emit) {
  const int table = table_for(t, counts);
  const std::size_t n = t.size();
  auto kind = [&](std::size_t i) { return t.k(i); };
  auto ws = [&](std::size_t i) { return t.k(i) == Kind::space || t.k(i) == Kind::newline; };
  std::size_t i = 0;
  while (i < n) {
    const char32_t c = t.c(i);
    // 1. Contractions: '(?i:[sdmt]|ll|ve|re)
    if (c == U'\'' && i + 1 < n) {
      const char32_t a = t.c(i + 1) | 0x20, b = i + 2 < n ? (t.c(i + 2) | 0x20) : 0;
      std::size_t len = 0;
      if (t.c(i + 1) < 0x80 && (a == 's' || a == 'd' || a == 'm' || a == 't')) len = 2;
      else if (i + 2 < n && t.c(i + 1) < 0x80 && t.c(i + 2) < 0x80 &&
               ((a == 'l' && b == 'l') || (a == 'v' && b == 'e') || (a == 'r' && b == 'e')))
        len = 3;
      if (len) {
        emit(i, i + len, 1.0);
        i += len;
        continue;
      }
    }
    // 2. [^\r\n\p{L}\p{N}]?+\p{L}++
    {
      std::size_t j = i;
      int lead = 0;
      if (kind(i) == Kind::other || kind(i) == Kind::space) {
        if (i + 1 < n && kind(i + 1) == Kind::letter) {
          lead = c == U' ' ? 1 : 2;
          j = i + 1;
        }
      }
      if (kind(j) == Kind::letter) {
        if constexpr (std::is_same_v<Text, AsciiText>) {
          const AsciiWord w = ascii_word(t.s, j);
          emit(i, w.end, ascii_word_cost(w.end - j, w.upper0, w.upper_rest, w.all_upper, lead, table));
          i = w.end;
        } else {
          std::size_t e = j;
          while (e < n && kind(e) == Kind::letter) ++e;
          emit(i, e, word_tokens(t, j, e - j, lead, table));
          i = e;
        }
        continue;
      }
    }
    // 3. \p{N}{1,3}+
    if (kind(i) == Kind::digit) {
      std::size_t e = i;
      while (e < n && e - i < 3 && kind(e) == Kind::digit) ++e;
      emit(i, e, 1.0);
      i = e;
      continue;
    }
    // 4.  ?[^\s\p{L}\p{N}]++[\r\n]*+
    {
      std::size_t j = (c == U' ' && i + 1 < n) ? i + 1 : i;
      if (kind(j) == Kind::other) {
        std::size_t e = j;
        while (e < n && kind(e) == Kind::other) ++e;
        const std::size_t body_end = e;
        while (e < n && kind(e) == Kind::newline) ++e;
        emit(i, e, punct_tokens(t, j, body_end - j, j != i));
        i = e;
        continue;
      }
    }
    // Whitespace: 5. \s++$  6. \s*[\r\n]  7. \s+(?!\S)  8. \s
    std::size_t e = i;
    std::size_t last_nl = n;  // index of the last newline in the run
    while (e < n && ws(e)) {
      if (kind(e) == Kind::newline) last_nl = e;
      ++e;
    }
    if (e == n) {
      emit(i, e, 1.0);
    } else if (last_nl != n) {
      e = last_nl + 1;
      emit(i, e, 1.0);
    } else if (e - i >= 2) {
      e = e - 1;  // leave one space to lead the next word
      emit(i, e, 1.0);
    } else {
      e = i + 1;
      emit(i, e, 1.0);
    }
    i = e;
  }
}

// kind_of() for the 128 ASCII code points, so the common byte needs no decoding or classification.
struct AsciiKinds {
  Kind k[128];
  AsciiKinds() {
    for (char32_t c = 0; c < 128; ++c) k[c] = kind_of(c);
  }
};

const AsciiKinds& ascii_kinds() {
  static const AsciiKinds table;
  return table;
}

bool all_ascii(std::string_view s) {
  std::uint64_t any = 0;  // OR of every byte, eight at a time (the compiler widens it further)
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    any |= w;
  }
  for (; i < s.size(); ++i) any |= static_cast<unsigned char>(s[i]);
  return (any & 0x8080808080808080ull) == 0;
}

// What decode_all() counts, for ASCII text: every letter (A-Z, a-z: kind letter) is Latin and
// unaccented; words are runs of letters, counted at their first letter. Written without a carried
// state so the compiler vectorises it.
Counts count_ascii(const AsciiText& t) {
  auto letter = [&](std::size_t i) {
    return unsigned(static_cast<unsigned char>(t.s[i] | 0x20) - unsigned('a')) < 26u ? 1u : 0u;
  };
  Counts counts;
  if (t.size() == 0) return counts;
  std::uint32_t latin = letter(0), starts = letter(0);  // 32-bit sums widen less (texts are < 4 GB)
  for (std::size_t i = 1; i < t.size(); ++i) {
    const unsigned l = letter(i);
    latin += l;
    starts += l & (letter(i - 1) ^ 1u);
  }
  counts.latin = latin;
  counts.words = starts;
  return counts;
}

// Decodes already-validated UTF-8, counting what table_for() needs on the way.
void decode_all(std::string_view s, std::vector<Cp>& out, Counts& counts) {
  const AsciiKinds& ascii = ascii_kinds();
  out.clear();
  out.reserve(s.size());  // at most one code point per byte
  counts = {};
  bool in_word = false, ascii_word = true;
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t at = i;
    char32_t c = static_cast<unsigned char>(s[i]);
    Kind k;
    if (c < 0x80) {
      ++i;
      k = ascii.k[c];
    } else {
      decode_utf8(s, i, c);
      k = kind_of(c);
    }
    out.push_back({c, at, k});
    if (k != Kind::letter) {
      counts.words += in_word && ascii_word;
      in_word = false;
      ascii_word = true;
      continue;
    }
    in_word = true;
    ascii_word = ascii_word && c < 0x80;
    if (is_latin_letter(c)) {
      ++counts.latin;
      counts.accented += c >= 0x80;
    }
  }
  counts.words += in_word && ascii_word;
}

// Long texts are estimated in chunks so the decoded code points (24 bytes each) stay few. A chunk
// may end only where a pre-tokenisation piece must end: before an ASCII space that follows an ASCII
// non-space character. Every piece that could hold that character ends there (only whitespace
// pieces contain spaces, and a leading space begins a piece), and the piece starting at the space
// depends only on what follows, so the chunks' pieces are exactly the text's pieces.
constexpr std::size_t kChunk = std::size_t(1) << 16;

std::size_t next_cut(std::string_view s, std::size_t from) {
  if (s.size() - from <= kChunk) return s.size();
  for (std::size_t q = from + kChunk; q < s.size(); ++q) {
    const unsigned char prev = static_cast<unsigned char>(s[q - 1]);
    if (s[q] == ' ' && prev < 0x80 && prev > ' ') return q;
  }
  return s.size();
}

}  // namespace

namespace {

std::size_t estimate(std::string_view utf8, bool force_decoding) {
  const bool ascii = all_ascii(utf8);  // ASCII is valid UTF-8, and every chunk of it is ASCII
  if (!ascii) require_valid_utf8(utf8);  // once, so an error names the offset in the whole text
  if (utf8.empty()) return 0;
  thread_local std::vector<Cp> cps;
  Counts counts;
  double total = 0;
  auto add = [&](std::size_t, std::size_t, double t) { total += t; };
  for (std::size_t from = 0; from < utf8.size();) {
    const std::size_t to = next_cut(utf8, from);
    const std::string_view chunk = utf8.substr(from, to - from);
    if ((ascii || all_ascii(chunk)) && !force_decoding) {
      const AsciiText text{chunk, ascii_kinds().k};
      split(text, count_ascii(text), add);
    } else {
      decode_all(chunk, cps, counts);
      split(DecodedText{cps}, counts, add);
    }
    from = to;
  }
  if (cps.capacity() > 4 * kChunk) cps = {};  // a text without cut points: do not keep its buffer
  return std::max<std::size_t>(1, std::size_t(std::llround(total)));
}

}  // namespace

std::size_t estimate_tokens(std::string_view utf8) { return estimate(utf8, false); }

std::size_t estimate_tokens_decoding(std::string_view utf8) { return estimate(utf8, true); }

std::vector<std::string_view> cl100k_pieces(std::string_view utf8) {
  require_valid_utf8(utf8);
  std::vector<Cp> cps;
  Counts counts;
  std::vector<std::string_view> out;
  auto collect = [&](const auto& text, const Counts& c) {
    split(text, c, [&](std::size_t b, std::size_t e, double) {
      const std::size_t from = text.pos(b), to = e < text.size() ? text.pos(e) : utf8.size();
      out.push_back(utf8.substr(from, to - from));
    });
  };
  if (all_ascii(utf8)) {
    const AsciiText text{utf8, ascii_kinds().k};
    collect(text, count_ascii(text));
  } else {
    decode_all(utf8, cps, counts);
    collect(DecodedText{cps}, counts);
  }
  return out;
}

}  // namespace recallcore::text
