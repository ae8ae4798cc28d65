// A resizable byte region that either owns 64-byte-aligned heap memory or views part of a read-only
// file mapping (the mmap load path). A mapped region is copy-on-write (MAP_PRIVATE), so in-place link
// updates after a load never touch the file; growing a mapped region copies it to the heap.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace recallcore::hnsw {

// A whole file mapped privately; shared by the regions that view it.
class Mapping {
 public:
  explicit Mapping(const std::string& path);  // throws StoreError when the file cannot be opened/mapped
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

class Region {
 public:
  Region() = default;
  static Region view(std::shared_ptr<Mapping> m, std::size_t offset, std::size_t bytes);

  std::byte* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  bool mapped() const { return mapping_ != nullptr; }
  // bytes() when owned; for a mapped view, the bytes of its pages resident in memory now (mincore).
  std::size_t resident_bytes() const;
  // Grows to at least `bytes`, keeping the first `keep` bytes; new bytes are zero.
  void grow(std::size_t bytes, std::size_t keep);
  void reset() { *this = Region(); }

 private:
  struct Free {
    void operator()(std::byte* p) const;
  };
  std::unique_ptr<std::byte[], Free> owned_;
  std::shared_ptr<Mapping> mapping_;
  std::byte* data_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace recallcore::hnsw
