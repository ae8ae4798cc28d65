#include "storage/lmdb.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>

#include "common/errors.h"

namespace recallcore::storage {

namespace {

// Paths (device:inode of the directory) this process has open: LMDB forbids opening one environment
// twice in a process (its locks are per process; a second handle would corrupt reader tracking).
std::mutex registry_mutex;
std::set<std::string>& registry() {
  static std::set<std::string> open_paths;
  return open_paths;
}

std::string identity_of(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return std::filesystem::weakly_canonical(dir).string();
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

}  // namespace

void check(int rc, const char* what) {
  if (rc == MDB_SUCCESS) return;
  if (rc == MDB_MAP_FULL) throw MapFull{false};
  throw StoreError(std::string(what) + ": " + mdb_strerror(rc));
}

// ---------------------------------------------------------------------------------------------------
Txn::~Txn() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
}

bool Txn::get(MDB_dbi dbi, std::string_view key, std::string_view* value) const {
  MDB_val k = as_val(key), v;
  const int rc = mdb_get(txn_, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return false;
  check(rc, "mdb_get");
  if (value != nullptr) *value = as_view(v);
  return true;
}

void Txn::put(MDB_dbi dbi, std::string_view key, std::string_view value, unsigned flags) {
  MDB_val k = as_val(key), v = as_val(value);
  check(mdb_put(txn_, dbi, &k, &v, flags), "mdb_put");
}

bool Txn::del(MDB_dbi dbi, std::string_view key) {
  MDB_val k = as_val(key);
  const int rc = mdb_del(txn_, dbi, &k, nullptr);
  if (rc == MDB_NOTFOUND) return false;
  check(rc, "mdb_del");
  return true;
}

void Txn::commit() {
  MDB_txn* t = txn_;
  txn_ = nullptr;
  check(mdb_txn_commit(t), "mdb_txn_commit");
}

void Txn::abort() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
  txn_ = nullptr;
}

// ---------------------------------------------------------------------------------------------------
Cursor::Cursor(const Txn& txn, MDB_dbi dbi) { check(mdb_cursor_open(txn.get(), dbi, &cur_), "mdb_cursor_open"); }
Cursor::~Cursor() {
  if (cur_ != nullptr) mdb_cursor_close(cur_);
}

bool Cursor::op(MDB_cursor_op o) {
  const int rc = mdb_cursor_get(cur_, &k_, &v_, o);
  if (rc == MDB_NOTFOUND) return false;
  check(rc, "mdb_cursor_get");
  return true;
}

bool Cursor::seek(std::string_view key) {
  k_ = as_val(key);
  return op(MDB_SET_RANGE);
}
bool Cursor::first() { return op(MDB_FIRST); }
bool Cursor::last() { return op(MDB_LAST); }
bool Cursor::next() { return op(MDB_NEXT); }
bool Cursor::prev() { return op(MDB_PREV); }
void Cursor::del() { check(mdb_cursor_del(cur_, 0), "mdb_cursor_del"); }

// ---------------------------------------------------------------------------------------------------
Env::Env(const EnvOptions& options) : options_(options) {
  namespace fs = std::filesystem;
  if (!options_.readonly) {
    std::error_code ec;
    fs::create_directories(options_.path, ec);
    if (ec) throw StoreError("cannot create store directory " + options_.path + ": " + ec.message());
  } else if (!fs::exists(fs::path(options_.path) / "data.mdb")) {
    throw StoreError("no store at " + options_.path + " (read-only open needs an existing store)");
  }
  registry_key_ = identity_of(options_.path);
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    if (!registry().insert(registry_key_).second)
      throw StoreError("the store at " + options_.path +
                       " is already open in this process; share that Memory object instead of opening it twice");
  }
  try {
    check(mdb_env_create(&env_), "mdb_env_create");
    check(mdb_env_set_maxdbs(env_, options_.max_dbs), "mdb_env_set_maxdbs");
    check(mdb_env_set_maxreaders(env_, options_.max_readers), "mdb_env_set_maxreaders");
    check(mdb_env_set_mapsize(env_, options_.map_size), "mdb_env_set_mapsize");
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
    if (options_.readonly) flags |= MDB_RDONLY;
    if (!options_.durable) flags |= MDB_NOSYNC;
    check(mdb_env_open(env_, options_.path.c_str(), flags, 0644), "mdb_env_open");
    int dead = 0;
    mdb_reader_check(env_, &dead);  // clears reader slots left by crashed processes
    // An existing environment may be larger than our initial map: adopt its size.
    MDB_envinfo info;
    mdb_env_info(env_, &info);
    if (info.me_mapsize < options_.map_size && !options_.readonly) mdb_env_set_mapsize(env_, options_.map_size);
  } catch (...) {
    if (env_ != nullptr) mdb_env_close(env_);
    env_ = nullptr;
    std::lock_guard<std::mutex> lock(registry_mutex);
    registry().erase(registry_key_);
    throw;
  }
  owner_pid_ = int(::getpid());
}

Env::~Env() {
  if (env_ != nullptr) {
    // In a forked child the parent's environment must not be touched (not even closed): LMDB's
    // locks and mmap belong to the parent. Leak the handle on purpose in that case.
    if (int(::getpid()) == owner_pid_) {
      std::unique_lock<std::shared_mutex> drain(gate_);
      mdb_env_close(env_);
    }
    env_ = nullptr;
  }
  std::lock_guard<std::mutex> lock(registry_mutex);
  registry().erase(registry_key_);
}

bool Env::forked() const { return int(::getpid()) != owner_pid_; }

void Env::check_fork() const {
  if (int(::getpid()) != owner_pid_)
    throw StoreError("this store was opened in another process (before fork()); open it again in the child");
}

std::vector<MDB_dbi> Env::open_dbis(const std::vector<std::string>& names) {
  std::vector<MDB_dbi> out(names.size());
  if (options_.readonly) {
    Reader r(*this);
    for (std::size_t i = 0; i < names.size(); ++i) {
      const int rc = mdb_dbi_open(r.txn().get(), names[i].c_str(), 0, &out[i]);
      if (rc == MDB_NOTFOUND) throw StoreError("store at " + options_.path + " lacks table '" + names[i] + "'");
      check(rc, "mdb_dbi_open");
    }
    // A handle opened in a transaction is private to it until that transaction commits, even a
    // read-only one: commit (not abort) so the handles outlive it.
    r.txn().commit();
    return out;
  }
  write([&](Txn& txn) {
    for (std::size_t i = 0; i < names.size(); ++i)
      check(mdb_dbi_open(txn.get(), names[i].c_str(), MDB_CREATE, &out[i]), "mdb_dbi_open");
  });
  return out;
}

Txn Env::begin(bool readonly) {
  check_fork();
  MDB_txn* t = nullptr;
  const int rc = mdb_txn_begin(env_, nullptr, readonly ? MDB_RDONLY : 0, &t);
  if (rc == MDB_MAP_RESIZED) throw MapFull{true};  // handled by the caller: adopt the new size, retry
  check(rc, "mdb_txn_begin");
  return Txn(this, t, readonly);
}

Env::Reader::Reader(Env& env) {
  for (int attempt = 0;; ++attempt) {
    gate_ = std::shared_lock<std::shared_mutex>(env.gate_);
    try {
      txn_ = std::make_unique<Txn>(env.begin(true));
      return;
    } catch (const MapFull&) {
      gate_.unlock();
      if (attempt > 3) throw StoreError("could not adopt the map size grown by another process");
      env.grow(true);
    }
  }
}

void Env::grow(bool adopt_only) {
  std::unique_lock<std::shared_mutex> drain(gate_);  // no transaction of this process in flight
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  const std::size_t target = adopt_only ? 0 : info.me_mapsize * 2;
  check(mdb_env_set_mapsize(env_, target), "mdb_env_set_mapsize");
}

void Env::write(const std::function<void(Txn&)>& body) {
  if (options_.readonly) throw StoreError("the store is open read-only");
  for (int attempt = 0;; ++attempt) {
    bool adopt = false;
    {
      std::shared_lock<std::shared_mutex> gate(gate_);
      try {
        Txn txn = begin(false);
        body(txn);
        txn.commit();
        return;
      } catch (const MapFull& full) {
        adopt = full.resized;  // the transaction has been aborted by now (RAII)
      }
    }
    if (attempt > 40) throw StoreError("the store's map could not grow enough for this write");
    grow(adopt);
  }
}

std::size_t Env::map_size() const {
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  return info.me_mapsize;
}

std::uint64_t Env::file_bytes() const {
  std::error_code ec;
  const auto n = std::filesystem::file_size(std::filesystem::path(options_.path) / "data.mdb", ec);
  return ec ? 0 : n;
}

void Env::copy_compacted(const std::string& dest_dir) {
  check_fork();
  std::error_code ec;
  std::filesystem::create_directories(dest_dir, ec);
  if (ec) throw StoreError("cannot create " + dest_dir + ": " + ec.message());
  std::shared_lock<std::shared_mutex> gate(gate_);
  check(mdb_env_copy2(env_, dest_dir.c_str(), MDB_CP_COMPACT), "mdb_env_copy2");
}

}  // namespace recallcore::storage
