// The snapshot file of an HNSW index (little-endian), version 3 (versions 1 and 2 still load: the same
// layout without the id-map section, and in version 1 the flags word always 0):
//
//   FileHeader (144 bytes): magic "RCHNSW\x1a\n", format version, header size, endianness marker,
//     dim, M, ef_construction, metric, storage, flags (bit 0: no f32 originals), slot stride and vector offset (the layout the file
//     assumes), the id map's size (version 3: log2 of its entries, 0 = none), slot/live/tombstone counts, upper-level word count, entry point, next automatic id,
//     seed, the caller's stamp, the file size, two section checksums and a checksum of the header.
//   Sections, each starting at a 64-byte aligned offset (so a mapping can serve them in place):
//     level-0 block   n_slots * stride bytes
//     f32 originals   n_slots * dim * 4 bytes (compressed storage with originals kept), or
//     residual bits   n_slots * ceil(dim / 8) bytes (i8 without originals), or nothing
//     slot ids        n_slots * 8
//     slot levels     n_slots * 1
//     deleted flags   n_slots * 1
//     upper links     upper_words * 4 (levels 1..L of every slot, in slot order)
//     id map          (version 3) the id -> slot hash table as it is in memory (hnsw/idmap.h): 16-byte
//                     entries {u64 id, u32 slot (0xFFFFFFFF: empty), u32 0}; a load serves it from the
//                     mapping instead of inserting every id into a fresh table
//
// "meta" checksum: ids, levels, flags, upper links, then the id map in chunks (always verified: with
// every used entry's slot in range and their count the live count; version 3 sums them with
// fast_checksum64, earlier versions with checksum64); "bulk" checksum: the level-0 block and the
// originals/residual section (checksum64; verified unless the file is mapped).
#pragma once

#include <cstdint>

namespace recallcore::hnsw {

inline constexpr char kMagic[8] = {'R', 'C', 'H', 'N', 'S', 'W', '\x1a', '\n'};
inline constexpr std::uint32_t kFormatVersion = 3;
inline constexpr std::uint32_t kOldestFormatVersion = 1;  // still read
inline constexpr std::uint16_t kFlagNoOriginals = 1;     // FileHeader::flags (version >= 2)
inline constexpr std::uint32_t kEndianMarker = 0x01020304u;

struct FileHeader {
  char magic[8];
  std::uint32_t version;
  std::uint32_t header_bytes;
  std::uint32_t endian;
  std::uint32_t dim;
  std::uint32_t M;
  std::uint32_t ef_construction;
  std::uint8_t metric;
  std::uint8_t storage;
  std::uint16_t flags;  // reserved (0) in version 1
  std::uint32_t stride;
  std::uint32_t vec_off;
  std::uint32_t idmap_shift;  // version 3: the id map has 1 << idmap_shift entries (0: no id map); else 0
  std::uint64_t n_slots;
  std::uint64_t n_live;
  std::uint64_t n_tomb;
  std::uint64_t upper_words;
  std::uint64_t entry;
  std::uint64_t next_auto_id;
  std::uint64_t seed;
  std::uint64_t stamp;
  std::uint64_t file_bytes;
  std::uint64_t meta_checksum;
  std::uint64_t bulk_checksum;
  std::uint64_t header_checksum;  // of every byte before this field
};
static_assert(sizeof(FileHeader) == 144, "the header layout is part of the file format");

}  // namespace recallcore::hnsw
