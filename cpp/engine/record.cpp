#include "engine/record.h"

#include <cstring>

#include "common/errors.h"

namespace recallcore::engine {

namespace {

constexpr std::uint8_t kRecordVersion = 1;

template <class T>
void put(std::string& s, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  s.append(b, sizeof(T));
}
void put_str(std::string& s, std::string_view v) {
  put<std::uint32_t>(s, std::uint32_t(v.size()));
  s.append(v);
}

struct Reader {
  std::string_view in;
  std::size_t at = 0;
  template <class T>
  T get() {
    if (at + sizeof(T) > in.size()) throw CorruptData("record truncated");
    T v;
    std::memcpy(&v, in.data() + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  std::string get_str() {
    const auto n = get<std::uint32_t>();
    if (at + n > in.size()) throw CorruptData("record truncated");
    std::string s(in.substr(at, n));
    at += n;
    return s;
  }
};

void put_header(std::string& s, const RecordHeader& h) {
  put(s, kRecordVersion);
  put(s, h.ns), put(s, h.session), put(s, h.kind), put(s, h.role);
  put(s, h.ts), put(s, h.created), put(s, h.updated);
  put(s, h.valid_from), put(s, h.valid_to), put(s, h.expires_at);
  put(s, h.importance);
  put(s, h.tokens_text), put(s, h.tokens_summary), put(s, h.flags), put(s, h.repeats);
  put(s, h.supersedes), put(s, h.superseded_by);
}

RecordHeader get_header(Reader& r) {
  if (r.get<std::uint8_t>() != kRecordVersion) throw CorruptData("record has an unknown format version");
  RecordHeader h;
  h.ns = r.get<std::uint32_t>(), h.session = r.get<std::uint32_t>(), h.kind = r.get<std::uint32_t>(),
  h.role = r.get<std::uint32_t>();
  h.ts = r.get<double>(), h.created = r.get<double>(), h.updated = r.get<double>();
  h.valid_from = r.get<double>(), h.valid_to = r.get<double>(), h.expires_at = r.get<double>();
  h.importance = r.get<float>();
  h.tokens_text = r.get<std::uint32_t>(), h.tokens_summary = r.get<std::uint32_t>(), h.flags = r.get<std::uint32_t>(),
  h.repeats = r.get<std::uint32_t>();
  h.supersedes = r.get<std::uint64_t>(), h.superseded_by = r.get<std::uint64_t>();
  return h;
}

}  // namespace

std::string encode_record(const Record& r) {
  std::string s;
  s.reserve(96 + r.text.size() + r.summary.size() + r.metadata.size());
  put_header(s, r.h);
  put_str(s, r.text);
  put_str(s, r.summary);
  put_str(s, r.metadata);
  put<std::uint32_t>(s, std::uint32_t(r.entities.size()));
  for (const auto& e : r.entities) put_str(s, e);
  put<std::uint32_t>(s, std::uint32_t(r.sources.size()));
  for (auto id : r.sources) put(s, id);
  return s;
}

RecordHeader decode_header(std::string_view bytes) {
  Reader rd{bytes};
  return get_header(rd);
}

Record decode_record(std::uint64_t id, std::string_view bytes) {
  Reader rd{bytes};
  Record r;
  r.id = id;
  r.h = get_header(rd);
  r.text = rd.get_str();
  r.summary = rd.get_str();
  r.metadata = rd.get_str();
  const auto ne = rd.get<std::uint32_t>();
  if (ne > bytes.size()) throw CorruptData("record entity count is corrupt");
  r.entities.reserve(ne);
  for (std::uint32_t i = 0; i < ne; ++i) r.entities.push_back(rd.get_str());
  const auto ns = rd.get<std::uint32_t>();
  if (ns > bytes.size()) throw CorruptData("record source count is corrupt");
  r.sources.reserve(ns);
  for (std::uint32_t i = 0; i < ns; ++i) r.sources.push_back(rd.get<std::uint64_t>());
  return r;
}

}  // namespace recallcore::engine
