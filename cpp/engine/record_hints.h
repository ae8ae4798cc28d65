#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <string_view>

namespace recallcore::engine {

// Where each record's bytes were last found in LMDB's map, as a prefetch hint.
//
// A record read is a B-tree lookup: a chain of dependent cache misses ending in a leaf page that is
// cold (a DRAM and TLB miss; ~0.7 us each, measured on the 100k store), and a recall or a context
// reads tens of records one after another. With the address each record was last read from, the
// reader requests every record's page before the first lookup, so the batch's misses overlap
// instead of queueing. A hint is only ever prefetched, never read through: a page rewritten by a
// later transaction (LMDB copies on write), or a map moved by a resize, costs a useless prefetch
// and nothing else (a prefetch of any address cannot fault). Records never read by this process
// have no hint and are read as before.
//
// Lock-free: hints live in 4,096-entry chunks allocated on first use and installed with a CAS, so
// any number of readers can remember and prefetch concurrently, without the store's locks.
class RecordHints {
 public:
  RecordHints()
      : chunks_(static_cast<std::uintptr_t*>(std::calloc(kChunks, sizeof(std::uintptr_t)))),
        page_mask_(~std::uintptr_t(page_bytes() - 1)) {
    // calloc: the 8 MB directory is zero pages mapped on demand, touched only where ids exist.
  }
  RecordHints(const RecordHints&) = delete;
  RecordHints& operator=(const RecordHints&) = delete;
  ~RecordHints() {
    if (chunks_)  // up to the highest chunk installed: the rest of the directory was never touched
      for (std::size_t c = 0; c < chunk_end_.load(); ++c) std::free(reinterpret_cast<void*>(chunks_.get()[c]));
  }

  // Requests the lines `id`'s bytes occupied when last read, with its leaf page's header and node
  // offsets (LMDB's binary search starts there).
  void prefetch(std::uint64_t id) const noexcept {
    const std::uintptr_t h = load(id);
    if (h == 0) return;
    const std::uintptr_t at = h & kAddressMask, page = at & page_mask_;
    auto fetch = [](std::uintptr_t a) { __builtin_prefetch(reinterpret_cast<const void*>(a)); };
    fetch(page);
    fetch(page + 64);
    fetch(at - 16);  // the node header and key before the value
    const std::size_t lines = std::size_t(h >> kLinesShift);
    for (std::size_t i = 0; i < lines; ++i) fetch(at + 64 * i);
  }

  // Visits the ids of `seq` in order (id_of(element) gives each id), each hinted record's lines
  // requested kAhead records before its visit. A recall's or a context's batch (10 to 60 records)
  // is requested whole: for a 50-record context that beat 4, 8 or 16 records ahead by 5-10 us
  // (RESULTS.md); a longer batch (a get_many of thousands) slides, so the first records' lines are
  // not evicted before they are read.
  template <class Seq, class IdOf, class Visit>
  void visit(const Seq& seq, IdOf&& id_of, Visit&& visit_one) const {
    const std::size_t n = std::size(seq);
    auto it = std::begin(seq), ahead = std::begin(seq);
    for (std::size_t i = 0; i < std::min(n, kAhead); ++i, ++ahead) prefetch(id_of(*ahead));
    for (std::size_t i = 0; i < n; ++i, ++it) {
      if (i + kAhead < n) prefetch(id_of(*ahead++));
      visit_one(*it);
    }
  }

  // The address `id`'s bytes were last read from; 0 when none is remembered.
  std::uintptr_t address_of(std::uint64_t id) const noexcept { return load(id) & kAddressMask; }

  void remember(std::uint64_t id, std::string_view bytes) noexcept {
    const auto at = reinterpret_cast<std::uintptr_t>(bytes.data());
    if (id >= kChunks * kPerChunk || (at & ~kAddressMask) != 0 || !chunks_) return;
    std::uintptr_t* chunk = chunk_for(id);
    if (chunk == nullptr) return;
    // The value's first lines only: enough for its header and a turn's text; a long document's
    // tail streams in behind them.
    const std::size_t lines = std::min<std::size_t>(kMaxLines, ((at & 63) + bytes.size() + 63) / 64);
    std::atomic_ref<std::uintptr_t>(chunk[id % kPerChunk]).store(at | (std::uintptr_t(lines) << kLinesShift),
                                                                 std::memory_order_relaxed);
  }

 private:
  static constexpr std::size_t kPerChunk = 4096;
  static constexpr std::size_t kChunks = std::size_t(1) << 20;  // ids below 2^32 have hints
  static constexpr std::size_t kAhead = 64;
  static constexpr std::size_t kMaxLines = 8;
  static constexpr unsigned kLinesShift = 56;  // user-space addresses fit in 56 bits
  static constexpr std::uintptr_t kAddressMask = (std::uintptr_t(1) << kLinesShift) - 1;

  struct Free {
    void operator()(std::uintptr_t* p) const noexcept { std::free(p); }
  };

  static std::size_t page_bytes() {  // LMDB's page is the OS page (4 KB here, 16 KB on Apple silicon)
    const long p = sysconf(_SC_PAGESIZE);
    return p > 0 && (p & (p - 1)) == 0 ? std::size_t(p) : 4096;
  }

  std::uintptr_t load(std::uint64_t id) const noexcept {
    if (id >= kChunks * kPerChunk || !chunks_) return 0;
    const std::uintptr_t c = std::atomic_ref<std::uintptr_t>(chunks_.get()[id / kPerChunk]).load(std::memory_order_acquire);
    if (c == 0) return 0;
    return std::atomic_ref<std::uintptr_t>(reinterpret_cast<std::uintptr_t*>(c)[id % kPerChunk])
        .load(std::memory_order_relaxed);
  }

  std::uintptr_t* chunk_for(std::uint64_t id) noexcept {
    std::atomic_ref<std::uintptr_t> slot(chunks_.get()[id / kPerChunk]);
    std::uintptr_t c = slot.load(std::memory_order_acquire);
    if (c != 0) return reinterpret_cast<std::uintptr_t*>(c);
    void* fresh = std::calloc(kPerChunk, sizeof(std::uintptr_t));
    if (fresh == nullptr) return nullptr;  // no memory: no hint, as if never read
    std::uintptr_t expected = 0;
    if (slot.compare_exchange_strong(expected, reinterpret_cast<std::uintptr_t>(fresh), std::memory_order_acq_rel)) {
      const std::size_t end = id / kPerChunk + 1;
      for (std::size_t e = chunk_end_.load(); e < end && !chunk_end_.compare_exchange_weak(e, end);) {
      }
      return static_cast<std::uintptr_t*>(fresh);
    }
    std::free(fresh);  // another reader installed one first
    return reinterpret_cast<std::uintptr_t*>(expected);
  }

  std::unique_ptr<std::uintptr_t, Free> chunks_;
  std::uintptr_t page_mask_;
  std::atomic<std::size_t> chunk_end_{0};  // one past the highest chunk installed
};

}  // namespace recallcore::engine
