#include "engine/names.h"

#include <mutex>

#include "storage/keys.h"

namespace recallcore::engine {

using storage::get_be32;
using storage::put_be32;

std::string Names::by_name_key(NameKind kind, std::string_view name) {
  std::string k{'n', char(kind)};
  k.append(name);
  return k;
}
std::string Names::by_id_key(NameKind kind, std::uint32_t id) {
  std::string k{'i', char(kind)};
  put_be32(k, id);
  return k;
}
std::string Names::counter_key(NameKind kind) { return std::string{'c', char(kind)}; }
std::string Names::cache_key(NameKind kind, std::string_view name) {
  std::string k{char(kind)};
  k.append(name);
  return k;
}

static std::uint64_t pack(NameKind kind, std::uint32_t id) { return (std::uint64_t(std::uint8_t(kind)) << 32) | id; }

std::uint32_t Names::find(const storage::Txn& txn, NameKind kind, std::string_view name) {
  {
    std::shared_lock lock(mu_);
    auto it = ids_.find(cache_key(kind, name));
    // A write re-checks the table: another process may have forgotten the name (Memory::forget), and
    // a record must never be written under a dead id. Reads trust the cache until the next rebuild.
    if (it != ids_.end() && txn.readonly()) return it->second;
  }
  std::string_view v;
  if (!txn.get(dbi_, by_name_key(kind, name), &v) || v.size() != 4) {
    if (!txn.readonly()) {
      std::unique_lock lock(mu_);
      if (auto it = ids_.find(cache_key(kind, name)); it != ids_.end()) {
        names_.erase(pack(kind, it->second));
        ids_.erase(it);
      }
    }
    return 0;
  }
  const std::uint32_t id = get_be32(v);
  std::unique_lock lock(mu_);
  ids_[cache_key(kind, name)] = id;
  names_[pack(kind, id)] = std::string(name);
  return id;
}

std::uint32_t Names::resolve(storage::Txn& txn, NameKind kind, std::string_view name, bool create) {
  for (const auto& [key, id] : pending_)
    if (key == cache_key(kind, name)) return id;
  if (std::uint32_t id = find(txn, kind, name)) return id;
  if (!create) return 0;
  std::string_view c;
  std::uint32_t next = 1;
  if (txn.get(dbi_, counter_key(kind), &c) && c.size() == 4) next = get_be32(c);
  std::string nv;
  put_be32(nv, next + 1);
  txn.put(dbi_, counter_key(kind), nv);
  std::string idv;
  put_be32(idv, next);
  txn.put(dbi_, by_name_key(kind, name), idv);
  txn.put(dbi_, by_id_key(kind, next), name);
  pending_.emplace_back(cache_key(kind, name), next);
  return next;
}

void Names::commit() {
  std::unique_lock lock(mu_);
  for (auto& [key, id] : pending_) {
    names_[pack(NameKind(key[0]), id)] = key.substr(1);
    ids_[key] = id;
  }
  pending_.clear();
}

void Names::rollback() { pending_.clear(); }

std::string Names::name_of(const storage::Txn& txn, NameKind kind, std::uint32_t id) {
  if (id == 0) return {};
  {
    std::shared_lock lock(mu_);
    auto it = names_.find(pack(kind, id));
    if (it != names_.end()) return it->second;
  }
  std::string_view v;
  if (!txn.get(dbi_, by_id_key(kind, id), &v)) return {};
  std::string name(v);
  std::unique_lock lock(mu_);
  names_[pack(kind, id)] = name;
  ids_[cache_key(kind, name)] = id;
  return name;
}

std::vector<std::pair<std::uint32_t, std::string>> Names::all(const storage::Txn& txn, NameKind kind) {
  std::vector<std::pair<std::uint32_t, std::string>> out;
  storage::Cursor cur(txn, dbi_);
  const std::string prefix{'i', char(kind)};
  for (bool ok = cur.seek(prefix); ok && cur.key().substr(0, 2) == prefix; ok = cur.next())
    out.emplace_back(get_be32(cur.key(), 2), std::string(cur.value()));
  return out;
}

void Names::forget(storage::Txn& txn, NameKind kind, std::uint32_t id) {
  std::string_view v;
  if (!txn.get(dbi_, by_id_key(kind, id), &v)) return;
  const std::string name(v);
  txn.del(dbi_, by_name_key(kind, name));
  txn.del(dbi_, by_id_key(kind, id));
}

void Names::drop_cached(NameKind kind, std::uint32_t id) {
  std::unique_lock lock(mu_);
  auto it = names_.find(pack(kind, id));
  if (it == names_.end()) return;
  ids_.erase(cache_key(kind, it->second));
  names_.erase(it);
}

void Names::clear_cache() {
  std::unique_lock lock(mu_);
  ids_.clear();
  names_.clear();
}

}  // namespace recallcore::engine
