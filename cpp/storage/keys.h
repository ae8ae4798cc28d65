// Key encodings: big-endian integers so LMDB's byte order is numeric order (ids append at the end
// of the B-tree, which keeps pages full), and an order-preserving encoding of float64 times.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace recallcore::storage {

inline void put_be32(std::string& s, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) s.push_back(char((v >> (8 * i)) & 0xFF));
}
inline void put_be64(std::string& s, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) s.push_back(char((v >> (8 * i)) & 0xFF));
}
inline std::uint32_t get_be32(std::string_view s, std::size_t at = 0) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | std::uint8_t(s[at + i]);
  return v;
}
inline std::uint64_t get_be64(std::string_view s, std::size_t at = 0) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | std::uint8_t(s[at + i]);
  return v;
}

// float64 -> uint64 whose unsigned order is the numeric order (negative times included).
inline std::uint64_t time_key(double t) {
  std::uint64_t b;
  std::memcpy(&b, &t, 8);
  return (b & 0x8000000000000000ull) ? ~b : (b | 0x8000000000000000ull);
}
inline double time_from_key(std::uint64_t k) {
  const std::uint64_t b = (k & 0x8000000000000000ull) ? (k & ~0x8000000000000000ull) : ~k;
  double t;
  std::memcpy(&t, &b, 8);
  return t;
}

inline std::string id_key(std::uint64_t id) {
  std::string s;
  s.reserve(8);
  put_be64(s, id);
  return s;
}

}  // namespace recallcore::storage
