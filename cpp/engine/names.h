// Small integer ids for namespace, session, kind and role strings (the `names` table), so records
// and secondary keys carry 4 bytes instead of a string. Cached in memory; LMDB stays the truth, so
// names created by another process are found on a cache miss.
#pragma once

#include <cstdint>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "storage/lmdb.h"

namespace recallcore::engine {

enum class NameKind : char { ns = 'N', session = 'S', kind = 'K', role = 'R', entity = 'E' };

class Names {
 public:
  explicit Names(MDB_dbi dbi) : dbi_(dbi) {}

  // The id of `name`, creating it inside `txn` when `create`; 0 when absent and not created.
  // Ids created in an uncommitted transaction are kept aside until commit() (a retried write
  // transaction calls rollback()).
  std::uint32_t resolve(storage::Txn& txn, NameKind kind, std::string_view name, bool create);
  void commit();
  void rollback();

  // Cached lookups (a miss reads LMDB through `txn`).
  std::uint32_t find(const storage::Txn& txn, NameKind kind, std::string_view name);
  std::string name_of(const storage::Txn& txn, NameKind kind, std::uint32_t id);
  std::vector<std::pair<std::uint32_t, std::string>> all(const storage::Txn& txn, NameKind kind);

  void forget(storage::Txn& txn, NameKind kind, std::uint32_t id);  // deletes both directions
  void drop_cached(NameKind kind, std::uint32_t id);
  void clear_cache();  // after a rebuild: names may have been forgotten by another process

 private:
  static std::string by_name_key(NameKind kind, std::string_view name);
  static std::string by_id_key(NameKind kind, std::uint32_t id);
  static std::string counter_key(NameKind kind);
  static std::string cache_key(NameKind kind, std::string_view name);
  MDB_dbi dbi_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, std::uint32_t> ids_;   // kind char + name -> id
  std::unordered_map<std::uint64_t, std::string> names_;  // (kind << 32 | id) -> name
  std::vector<std::pair<std::string, std::uint32_t>> pending_;
};

}  // namespace recallcore::engine
