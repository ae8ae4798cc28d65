// Snapshot save/load (format in persistence.h). Every size, count and link read from a file is checked
// before it is used, so a damaged file is reported as CorruptData instead of reading out of bounds.
#include "hnsw/persistence.h"

#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/checksum.h"
#include "common/fast_checksum.h"
#include "hnsw/impl.h"

namespace recallcore::hnsw {

namespace {

std::size_t align64(std::size_t x) { return (x + 63) / 64 * 64; }

struct Layout {
  std::size_t block, originals, ids, levels, flags, upper, idmap, end;
};

// extra: bytes per slot of the section after the level-0 block (f32 originals, residual bits or none).
Layout layout(std::size_t n_slots, std::size_t stride, std::size_t extra, std::size_t upper_words,
              std::size_t idmap_slots) {
  Layout L{};
  L.block = align64(sizeof(FileHeader));
  L.originals = align64(L.block + n_slots * stride);
  L.ids = align64(L.originals + n_slots * extra);
  L.levels = align64(L.ids + n_slots * 8);
  L.flags = align64(L.levels + n_slots);
  L.upper = align64(L.flags + n_slots);
  L.idmap = idmap_slots == 0 ? L.upper + upper_words * 4 : align64(L.upper + upper_words * 4);
  L.end = L.idmap + idmap_slots * sizeof(IdMap::Entry);
  return L;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  throw CorruptData("'" + path + "' is not a valid recallcore HNSW snapshot: " + what);
}

std::uint64_t header_sum(const FileHeader& h) { return checksum64(&h, offsetof(FileHeader, header_checksum), 0x4844); }

using SumFn = std::uint64_t (*)(const void*, std::size_t, std::uint64_t);
// Version 3 sums its meta sections (with the id map, several MB) with the faster checksum.
SumFn meta_fn(std::uint32_t version) { return version >= 3 ? &fast_checksum64 : &checksum64; }

std::uint64_t meta_sum(SumFn sum, const std::uint64_t* ids, const std::uint8_t* levels, const std::uint8_t* flags,
                       const std::uint32_t* upper, std::size_t n, std::size_t upper_words) {
  std::uint64_t h = sum(ids, n * 8, 1);
  h = sum(levels, n, h);
  h = sum(flags, n, h);
  return sum(upper, upper_words * 4, h);
}

// The id map's part of the meta checksum, chained over chunks of entries; `chunk` sees each chunk right
// after it is summed (a load validates it while it is in cache).
template <class Chunk>
std::uint64_t idmap_sum(const IdMap::Entry* e, std::size_t slots, std::uint64_t h, Chunk&& chunk) {
  constexpr std::size_t kChunk = 4096;  // 64 KiB
  for (std::size_t at = 0; at < slots; at += kChunk) {
    const std::size_t n = std::min(kChunk, slots - at);
    h = fast_checksum64(e + at, n * sizeof(IdMap::Entry), h);
    chunk(e + at, n);
  }
  return h;
}

}  // namespace

void save_impl(const Index::Impl& I, const std::string& path, std::uint64_t stamp) {
  const std::size_t n = I.n_slots;
  const bool compressed = I.cfg.storage != Storage::f32 && I.cfg.keep_originals;  // an originals section
  const Region& extra = compressed ? I.originals : I.residual;
  const std::size_t extra_bytes = compressed ? I.dim * sizeof(float) : I.res_bytes;
  std::vector<std::uint32_t> upper;
  for (std::size_t s = 0; s < n; ++s) {
    const std::uint32_t* u = I.upper[s].get();
    // Link words are written by inserting threads through atomic_ref; none is in flight here (the
    // caller holds the writer mutex), so plain reads are consistent.
    if (u != nullptr) upper.insert(upper.end(), u, u + std::size_t(I.slot_level[s]) * (I.Mup + 1));
  }
  const Layout L = layout(n, I.stride, extra_bytes, upper.size(), I.id_map.slots());

  FileHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kFormatVersion;
  h.header_bytes = sizeof(FileHeader);
  h.endian = kEndianMarker;
  h.dim = std::uint32_t(I.dim);
  h.M = std::uint32_t(I.cfg.M);
  h.ef_construction = std::uint32_t(I.cfg.ef_construction);
  h.metric = std::uint8_t(I.cfg.metric);
  h.storage = std::uint8_t(I.cfg.storage);
  h.flags = I.cfg.keep_originals ? 0 : kFlagNoOriginals;
  h.stride = std::uint32_t(I.stride);
  h.vec_off = std::uint32_t(I.vec_off);
  h.idmap_shift = I.id_map.slots() == 0 ? 0 : std::uint32_t(std::countr_zero(I.id_map.slots()));
  h.n_slots = n;
  h.n_live = I.n_live;
  h.n_tomb = I.n_tomb;
  h.upper_words = upper.size();
  h.entry = I.entry.load();
  h.next_auto_id = I.next_auto_id;
  h.seed = I.cfg.seed;
  h.stamp = stamp;
  h.file_bytes = L.end;
  h.meta_checksum = idmap_sum(I.id_map.entries(), I.id_map.slots(),
                              meta_sum(meta_fn(kFormatVersion), I.slot_ids.data(), I.slot_level.data(),
                                       I.deleted.data(), upper.data(), n, upper.size()),
                              [](const IdMap::Entry*, std::size_t) {});
  std::uint64_t bulk = checksum64(I.block.data(), n * I.stride, 2);
  if (extra_bytes > 0) bulk = checksum64(extra.data(), n * extra_bytes, bulk);
  h.bulk_checksum = bulk;
  h.header_checksum = header_sum(h);

  // Written to a temporary name and renamed, so a crash mid-save never leaves a torn snapshot in place.
  const std::string tmp = path + ".tmp";
  {
    File f(std::fopen(tmp.c_str(), "wb"));
    if (!f) throw StoreError("cannot write '" + tmp + "': " + std::strerror(errno));
    std::size_t pos = 0;
    bool ok = true;
    auto put = [&](std::size_t at, const void* p, std::size_t bytes) {
      static const char zeros[64] = {};
      while (ok && pos < at) {
        const std::size_t z = std::min<std::size_t>(64, at - pos);
        ok = std::fwrite(zeros, 1, z, f.get()) == z;
        pos += z;
      }
      if (ok && bytes > 0) ok = std::fwrite(p, 1, bytes, f.get()) == bytes;
      pos += bytes;
    };
    put(0, &h, sizeof h);
    put(L.block, I.block.data(), n * I.stride);
    if (extra_bytes > 0) put(L.originals, extra.data(), n * extra_bytes);
    put(L.ids, I.slot_ids.data(), n * 8);
    put(L.levels, I.slot_level.data(), n);
    put(L.flags, I.deleted.data(), n);
    put(L.upper, upper.data(), upper.size() * 4);
    put(L.idmap, I.id_map.entries(), I.id_map.slots() * sizeof(IdMap::Entry));
    ok = ok && std::fflush(f.get()) == 0;
    if (!ok) {
      std::remove(tmp.c_str());
      throw StoreError("cannot write '" + tmp + "': " + std::strerror(errno));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw StoreError("cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(errno));
  }
}

std::unique_ptr<Index::Impl> load_impl(const std::string& path, bool mmap, std::uint64_t* stamp) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) throw StoreError("cannot open '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw StoreError("cannot stat '" + path + "'");
  const std::size_t file_size = std::size_t(st.st_size);
  FileHeader h{};
  if (file_size < sizeof h || std::fread(&h, 1, sizeof h, f.get()) != sizeof h) corrupt(path, "truncated header");
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) corrupt(path, "bad magic");
  if (h.version < kOldestFormatVersion || h.version > kFormatVersion)
    corrupt(path, "format version " + std::to_string(h.version) + " (this build reads " +
                      std::to_string(kOldestFormatVersion) + " to " + std::to_string(kFormatVersion) + ")");
  if (h.header_bytes != sizeof(FileHeader) || h.endian != kEndianMarker) corrupt(path, "header size or byte order mismatch");
  if (h.header_checksum != header_sum(h)) corrupt(path, "header checksum mismatch");

  Config c;
  c.dim = h.dim;
  c.M = h.M;
  c.ef_construction = h.ef_construction;
  c.metric = simd::Metric(h.metric);
  c.storage = Storage(h.storage);
  c.seed = h.seed;
  if (h.metric > 2 || h.storage > 2) corrupt(path, "unknown metric or storage");
  if ((h.flags & ~kFlagNoOriginals) != 0 || (h.version < 2 && h.flags != 0)) corrupt(path, "unknown flags");
  c.keep_originals = (h.flags & kFlagNoOriginals) == 0;
  try {
    c.validate();
  } catch (const InvalidArgument& e) {
    corrupt(path, e.what());
  }
  auto I = std::make_unique<Index::Impl>(c);
  if (I->stride != h.stride || I->vec_off != h.vec_off) corrupt(path, "slot layout differs from this build's");
  const std::size_t n = h.n_slots;
  if (n > (std::size_t(1) << 32) - 2 || h.upper_words > (std::uint64_t(1) << 40)) corrupt(path, "implausible sizes");
  if (h.version < 3 ? h.idmap_shift != 0 : h.idmap_shift > 40 || (h.idmap_shift != 0 && h.idmap_shift < 4))
    corrupt(path, "implausible id map size");
  const std::size_t idmap_slots = h.idmap_shift == 0 ? 0 : std::size_t(1) << h.idmap_shift;
  // Above put()'s load limit a probe could find no empty entry and never stop.
  if (h.version >= 3 && h.n_live * 3 > idmap_slots * 2) corrupt(path, "id map too small for the live count");
  const bool compressed = c.storage != Storage::f32 && c.keep_originals;  // an originals section
  Region& extra = compressed ? I->originals : I->residual;
  const std::size_t extra_bytes = compressed ? I->dim * sizeof(float) : I->res_bytes;
  const Layout L = layout(n, I->stride, extra_bytes, h.upper_words, idmap_slots);
  if (h.file_bytes != L.end) corrupt(path, "sizes in the header do not add up");
  if (file_size != L.end)
    corrupt(path, "file is " + std::to_string(file_size) + " bytes, header says " + std::to_string(L.end) + " (truncated?)");
  std::shared_ptr<Mapping> m;
  if (mmap) {
    m = std::make_shared<Mapping>(path);
    if (m->size() != L.end) corrupt(path, "file changed while opening");
  }

  // Meta sections: always copied (then verified: the copies are what the index uses).
  auto read_at = [&](std::size_t at, void* p, std::size_t bytes) {
    if (bytes == 0) return;
    if (std::fseek(f.get(), long(at), SEEK_SET) != 0 || std::fread(p, 1, bytes, f.get()) != bytes)
      corrupt(path, "short read");
  };
  auto section = [&]<class T>(std::size_t at, std::size_t count, T) {
    if (m != nullptr) {
      // Copied from the mapping: no zero-fill of the vector first, no read() per section.
      const T* p = reinterpret_cast<const T*>(m->data() + at);
      return std::vector<T>(p, p + count);
    }
    std::vector<T> v(count);
    read_at(at, v.data(), count * sizeof(T));
    return v;
  };
  std::vector<std::uint64_t> ids = section(L.ids, n, std::uint64_t{});
  std::vector<std::uint8_t> levels = section(L.levels, n, std::uint8_t{});
  std::vector<std::uint8_t> flags = section(L.flags, n, std::uint8_t{});
  // Upper links are copied once, into each slot's list below: read in place when mapped.
  std::vector<std::uint32_t> upper_read;
  if (m == nullptr) upper_read = section(L.upper, h.upper_words, std::uint32_t{});
  const std::uint32_t* upper =
      m != nullptr ? reinterpret_cast<const std::uint32_t*>(m->data() + L.upper) : upper_read.data();
  // The saved id map, served in place when mapped (a page is copied on its first write).
  Region idmap_table;
  if (m != nullptr) {
    idmap_table = Region::view(m, L.idmap, idmap_slots * sizeof(IdMap::Entry));
  } else if (idmap_slots > 0) {
    idmap_table.grow(idmap_slots * sizeof(IdMap::Entry), 0);
    read_at(L.idmap, idmap_table.data(), idmap_slots * sizeof(IdMap::Entry));
  }
  std::size_t mapped_ids = 0;
  bool slot_in_range = true;
  const std::uint64_t meta = idmap_sum(
      reinterpret_cast<const IdMap::Entry*>(idmap_table.data()), idmap_slots,
      meta_sum(meta_fn(h.version), ids.data(), levels.data(), flags.data(), upper, n, h.upper_words),
      [&](const IdMap::Entry* e, std::size_t k) {
        // Each used entry must name a live slot holding that id: a map that checksums but disagrees
        // with the slots (a buggy or crafted file) would send lookups to deleted or foreign rows.
        for (std::size_t i = 0; i < k; ++i) {
          const bool used = e[i].slot != IdMap::kMissing;
          mapped_ids += used;
          slot_in_range &= !used || (e[i].slot < n && ids[e[i].slot] == e[i].id && flags[e[i].slot] == 0);
        }
      });
  if (meta != h.meta_checksum) corrupt(path, "checksum mismatch in ids/levels/links");
  if (h.version >= 3 && (!slot_in_range || mapped_ids != h.n_live)) corrupt(path, "bad id map");

  std::size_t words = 0, tomb = 0;
  for (std::size_t s = 0; s < n; ++s) {
    if (levels[s] > kMaxLevel || flags[s] > 1) corrupt(path, "bad level or flag");
    words += std::size_t(levels[s]) * (I->Mup + 1);
    tomb += flags[s];
  }
  if (words != h.upper_words || tomb != h.n_tomb || n - tomb != h.n_live) corrupt(path, "counts do not match");
  const std::uint64_t e = h.entry;
  if (n == 0 ? e != kNoEntry
             : (e == kNoEntry || Index::Impl::entry_slot(e) >= n ||
                Index::Impl::entry_level(e) != levels[Index::Impl::entry_slot(e)]))
    corrupt(path, "bad entry point");

  // Bulk sections: read (and checksummed) or mapped.
  I->capacity = n;
  I->n_slots = n;
  if (m != nullptr) {
    I->block = Region::view(m, L.block, n * I->stride);
    if (extra_bytes > 0) extra = Region::view(m, L.originals, n * extra_bytes);
  } else {
    I->block.grow(n * I->stride, 0);
    read_at(L.block, I->block.data(), n * I->stride);
    std::uint64_t bulk = checksum64(I->block.data(), n * I->stride, 2);
    if (extra_bytes > 0) {
      extra.grow(n * extra_bytes, 0);
      read_at(L.originals, extra.data(), n * extra_bytes);
      bulk = checksum64(extra.data(), n * extra_bytes, bulk);
    }
    if (bulk != h.bulk_checksum) corrupt(path, "checksum mismatch in vectors/links");
  }

  I->slot_ids = std::move(ids);
  I->slot_level = std::move(levels);
  I->deleted = std::move(flags);
  I->upper.resize(n);
  std::size_t at = 0;
  for (std::size_t s = 0; s < n; ++s) {
    const std::size_t w = std::size_t(I->slot_level[s]) * (I->Mup + 1);
    if (w == 0) continue;  // most slots (1 - 1/M) have no upper level: their list stays empty
    I->upper[s] = std::make_unique<std::uint32_t[]>(w);
    std::copy_n(upper + at, w, I->upper[s].get());
    at += w;
    for (int l = 1; l <= I->slot_level[s]; ++l) {
      const std::uint32_t* ll = I->links(std::uint32_t(s), l);
      if (ll[0] > I->Mup) corrupt(path, "link count out of range");
      for (std::size_t i = 0; i < ll[0]; ++i)
        if (ll[1 + i] >= n) corrupt(path, "link out of range");
    }
  }
  const bool saved_map = h.version >= 3;
  if (saved_map)
    I->id_map = IdMap::adopt(std::move(idmap_table), idmap_slots, h.n_live);
  else
    I->id_map.reserve(h.n_live);
  for (std::size_t s = 0; s < n; ++s) {
    if (I->deleted[s]) {
      if (s != Index::Impl::entry_slot(e)) I->free_slots.push_back(std::uint32_t(s));
      continue;
    }
    if (saved_map) continue;
    if (I->id_map.find(I->slot_ids[s]) != IdMap::kMissing) corrupt(path, "duplicate id");
    I->id_map.put(I->slot_ids[s], std::uint32_t(s));
  }
  I->n_live = h.n_live;
  I->n_tomb = h.n_tomb;
  I->entry.store(e);
  I->next_auto_id = h.next_auto_id;
  if (stamp != nullptr) *stamp = h.stamp;
  return I;
}

}  // namespace recallcore::hnsw
