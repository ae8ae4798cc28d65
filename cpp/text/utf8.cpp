#include "text/utf8.h"

#include "common/errors.h"

namespace recallcore::text {

std::size_t first_invalid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  char32_t cp = 0;
  while (i < s.size()) {
    // ASCII fast path: most text is mostly ASCII.
    while (i + 8 <= s.size()) {
      std::uint64_t w = 0;
      for (int k = 0; k < 8; ++k) w |= std::uint64_t(static_cast<unsigned char>(s[i + k])) << (8 * k);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    if (!decode_utf8(s, i, cp)) return i;
  }
  return std::string_view::npos;
}

void require_valid_utf8(std::string_view s) {
  const std::size_t at = first_invalid_utf8(s);
  if (at != std::string_view::npos)
    throw InvalidArgument("invalid UTF-8 at byte offset " + std::to_string(at) + " (byte 0x" +
                          [](unsigned v) {
                            const char* hex = "0123456789abcdef";
                            return std::string{hex[v >> 4], hex[v & 15]};
                          }(static_cast<unsigned char>(s[at])) +
                          ")");
}

}  // namespace recallcore::text
