// Strict UTF-8 decoding shared by the tokenizer and the token estimator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace recallcore::text {

// Decodes the code point starting at s[i] and advances i past it. Returns false (i unchanged) on an
// ill-formed sequence: a stray continuation byte, a truncated sequence, an overlong form, a surrogate
// (U+D800..U+DFFF, which Python's "surrogateescape"/"surrogatepass" can smuggle in) or a value above
// U+10FFFF. The rules are the "well-formed UTF-8 byte sequences" table of Unicode 15, section 3.9.
inline bool decode_utf8(std::string_view s, std::size_t& i, char32_t& cp) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  const unsigned c0 = p[i];
  if (c0 < 0x80) {
    cp = c0;
    ++i;
    return true;
  }
  auto cont = [&](std::size_t k) { return i + k < n && (p[i + k] & 0xC0u) == 0x80u; };
  if (c0 >= 0xC2 && c0 <= 0xDF) {
    if (!cont(1)) return false;
    cp = char32_t(((c0 & 0x1Fu) << 6) | (p[i + 1] & 0x3Fu));
    i += 2;
    return true;
  }
  if (c0 >= 0xE0 && c0 <= 0xEF) {
    if (!cont(1) || !cont(2)) return false;
    const unsigned c1 = p[i + 1];
    if (c0 == 0xE0 && c1 < 0xA0) return false;  // overlong
    if (c0 == 0xED && c1 > 0x9F) return false;  // surrogate
    cp = char32_t(((c0 & 0x0Fu) << 12) | ((c1 & 0x3Fu) << 6) | (p[i + 2] & 0x3Fu));
    i += 3;
    return true;
  }
  if (c0 >= 0xF0 && c0 <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return false;
    const unsigned c1 = p[i + 1];
    if (c0 == 0xF0 && c1 < 0x90) return false;  // overlong
    if (c0 == 0xF4 && c1 > 0x8F) return false;  // above U+10FFFF
    cp = char32_t(((c0 & 0x07u) << 18) | ((c1 & 0x3Fu) << 12) | ((p[i + 2] & 0x3Fu) << 6) | (p[i + 3] & 0x3Fu));
    i += 4;
    return true;
  }
  return false;
}

// Appends the UTF-8 encoding of a valid scalar value.
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

// Byte offset of the first ill-formed sequence, or npos when the whole string is valid UTF-8.
std::size_t first_invalid_utf8(std::string_view s) noexcept;

// Throws InvalidArgument naming the byte offset of the first ill-formed sequence.
void require_valid_utf8(std::string_view s);

}  // namespace recallcore::text
