// RAII over the LMDB C API: one environment, its named databases, transactions and cursors.
//
// Rules this layer enforces (after py-lmdb's hard-won lessons):
//   * MDB_NOTLS, so read transactions are not tied to OS threads (Python threads hop);
//   * every named database is opened once, at start, in one write transaction;
//   * the map grows on MDB_MAP_FULL: the write is aborted, in-flight transactions of this process are
//     drained (the `gate`), the map is doubled and the write retried; a map grown by another process
//     (MDB_MAP_RESIZED) is adopted with mdb_env_set_mapsize(0) the same way;
//   * stale reader slots of dead processes are cleared on open (mdb_reader_check);
//   * an environment is never used across fork() nor opened twice by one process.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace recallcore::storage {

// Throws StoreError naming the operation and LMDB's message.
void check(int rc, const char* what);

// Raised when the map is full (resized = false) or was grown by another process (resized = true);
// Env::write() and Env::Reader catch it, resize or adopt the size, and retry.
struct MapFull {
  bool resized = false;
};

inline MDB_val as_val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
inline std::string_view as_view(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

class Env;

// A transaction; aborted on destruction unless committed.
class Txn {
 public:
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  Txn(Txn&& o) noexcept : env_(o.env_), txn_(o.txn_) { o.txn_ = nullptr; }
  ~Txn();

  MDB_txn* get() const { return txn_; }
  bool readonly() const { return readonly_; }

  // Values are views into the map, valid until the transaction ends.
  bool get(MDB_dbi dbi, std::string_view key, std::string_view* value) const;
  void put(MDB_dbi dbi, std::string_view key, std::string_view value, unsigned flags = 0);
  bool del(MDB_dbi dbi, std::string_view key);
  void commit();
  void abort();

 private:
  friend class Env;
  Txn(Env* env, MDB_txn* txn, bool readonly) : env_(env), txn_(txn), readonly_(readonly) {}
  Env* env_;
  MDB_txn* txn_;
  bool readonly_ = true;
};

class Cursor {
 public:
  Cursor(const Txn& txn, MDB_dbi dbi);
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  ~Cursor();

  // Positions at the first key >= `key`; false at the end.
  bool seek(std::string_view key);
  bool first();
  bool last();
  bool next();
  bool prev();
  std::string_view key() const { return as_view(k_); }
  std::string_view value() const { return as_view(v_); }
  void del();  // deletes the current entry (write transactions only)

 private:
  bool op(MDB_cursor_op o);
  MDB_cursor* cur_ = nullptr;
  MDB_val k_{0, nullptr}, v_{0, nullptr};
};

struct EnvOptions {
  std::string path;          // a directory (created if missing, unless readonly)
  bool readonly = false;
  bool durable = true;       // false: MDB_NOSYNC (survives a process crash, not a power loss)
  std::size_t map_size = std::size_t(64) << 20;  // initial; grows on demand
  unsigned max_dbs = 16;
  unsigned max_readers = 256;
};

class Env {
 public:
  explicit Env(const EnvOptions& options);
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;
  ~Env();

  // Opens (creating unless read-only) every named database; call once, right after construction.
  std::vector<MDB_dbi> open_dbis(const std::vector<std::string>& names);

  // A short read transaction. Holds the shared side of the gate so a resize cannot run under it.
  class Reader {
   public:
    explicit Reader(Env& env);
    Txn& txn() { return *txn_; }
   private:
    std::shared_lock<std::shared_mutex> gate_;
    std::unique_ptr<Txn> txn_;
  };

  // Runs `body` in a write transaction and commits it; on MDB_MAP_FULL grows the map and runs it
  // again from the start (so `body` must be idempotent up to its own side effects on the txn).
  void write(const std::function<void(Txn&)>& body);

  const std::string& path() const { return options_.path; }
  std::size_t map_size() const;
  std::uint64_t file_bytes() const;
  bool readonly() const { return options_.readonly; }
  MDB_env* raw() { return env_; }
  void copy_compacted(const std::string& dest_dir);
  void check_fork() const;  // throws StoreError when used in a child of fork()
  bool forked() const;      // true in a child of fork()

 private:
  friend class Txn;
  Txn begin(bool readonly);
  void grow(bool adopt_only);
  EnvOptions options_;
  MDB_env* env_ = nullptr;
  int owner_pid_ = 0;
  std::string registry_key_;
  mutable std::shared_mutex gate_;  // shared: transactions in flight; exclusive: map resize
};

}  // namespace recallcore::storage
