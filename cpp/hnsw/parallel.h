// A parallel loop whose worker exceptions are caught and rethrown on the calling thread (a worker that
// throws must never call std::terminate, and the caller must see the first error).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace recallcore::hnsw {

// 0 means "all cores".
inline std::size_t resolve_threads(std::size_t threads) {
  if (threads != 0) return threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : hw;
}

// Calls f(i, worker) for i in [0, n) on up to `threads` threads; items are handed out one at a time
// through an atomic counter (insertion costs vary a lot per item). After the first exception no new
// items start; the exception is rethrown here once every worker has stopped.
template <class F>
void parallel_for(std::size_t n, std::size_t threads, F&& f) {
  threads = std::min(resolve_threads(threads), n);
  if (threads <= 1) {
    for (std::size_t i = 0; i < n; ++i) f(i, std::size_t(0));
    return;
  }
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mu;
  auto work = [&](std::size_t worker) {
    try {
      for (std::size_t i; !failed.load(std::memory_order_relaxed) && (i = next.fetch_add(1)) < n;) f(i, worker);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (!error) error = std::current_exception();
      failed.store(true);
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace recallcore::hnsw
