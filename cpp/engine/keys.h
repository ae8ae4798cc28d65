// Keys of the store's secondary tables and the small helpers every engine file shares (the write
// path in memory.cpp, forgetting in forget.cpp). One definition, so the layouts cannot drift apart.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/record.h"
#include "storage/keys.h"

namespace recallcore::engine {

// Change-log operations (the `changes` table: sequence -> op + id).
constexpr char kOpPut = 'P', kOpDelete = 'D', kOpUpdate = 'U';

inline std::string ns_prefix(std::uint32_t ns) {
  std::string k;
  storage::put_be32(k, ns);
  return k;
}

// by_ns: namespace · time · id (time order within a namespace).
inline std::string by_ns_key(std::uint32_t ns, double ts, std::uint64_t id) {
  std::string k = ns_prefix(ns);
  storage::put_be64(k, storage::time_key(ts));
  storage::put_be64(k, id);
  return k;
}

// by_session: namespace · session · time · id.
inline std::string by_session_key(std::uint32_t ns, std::uint32_t session, double ts, std::uint64_t id) {
  std::string k = ns_prefix(ns);
  storage::put_be32(k, session);
  storage::put_be64(k, storage::time_key(ts));
  storage::put_be64(k, id);
  return k;
}

// Entity names are matched case-insensitively (ASCII folding).
inline std::string entity_norm(std::string_view e) {
  std::string s(e);
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return s;
}

// entities: namespace · normalised name · NUL · id.
inline std::string entity_key(std::uint32_t ns, std::string_view entity, std::uint64_t id) {
  std::string k = ns_prefix(ns);
  k.append(entity_norm(entity));
  k.push_back('\0');
  storage::put_be64(k, id);
  return k;
}

// state: namespace · key.
inline std::string state_key(std::uint32_t ns, std::string_view key) {
  std::string k = ns_prefix(ns);
  k.append(key);
  return k;
}

inline bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// What the lexical index sees of a record: its text and the entities it mentions.
inline std::string lexical_text(const Record& r) {
  std::string s = r.text;
  for (const auto& e : r.entities) {
    s.push_back('\n');
    s.append(e);
  }
  return s;
}

}  // namespace recallcore::engine
