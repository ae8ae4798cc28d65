"""Edits HNSW snapshot files the way an older build wrote them (cpp/hnsw/persistence.h), for the
format-compatibility tests."""

from __future__ import annotations

import struct

MASK = (1 << 64) - 1


def checksum64(data: bytes, seed: int) -> int:
    """common/checksum.h, to re-seal a header edited by the test."""
    p = 0x100000001B3
    h = [seed ^ 0xCBF29CE484222325, seed ^ 0x84222325CBF29CE4, seed ^ 0x9E3779B97F4A7C15, seed ^ 0xC2B2AE3D27D4EB4F]
    i, n = 0, len(data)
    while i + 32 <= n:
        for lane in range(4):
            h[lane] = ((h[lane] ^ struct.unpack_from("<Q", data, i + 8 * lane)[0]) * p) & MASK
        i += 32
    for b in data[i:]:
        h[0] = ((h[0] ^ b) * p) & MASK
    r = n
    for lane in range(4):
        r ^= (h[lane] + 0x9E3779B97F4A7C15 + ((r << 6) & MASK) + (r >> 2)) & MASK
        r = (r * p) & MASK
    return r


def _align64(x: int) -> int:
    return (x + 63) // 64 * 64


def meta_sections(raw: bytes) -> list[tuple[int, int]]:
    """(offset, bytes) of the ids, levels, flags and upper links, in checksum order."""
    dim, = struct.unpack_from("<I", raw, 20)
    storage, flags = raw[33], struct.unpack_from("<H", raw, 34)[0]
    stride, = struct.unpack_from("<I", raw, 36)
    n, = struct.unpack_from("<Q", raw, 48)
    upper_words, = struct.unpack_from("<Q", raw, 72)
    keep = flags & 1 == 0
    extra = dim * 4 if storage != 0 and keep else (dim + 7) // 8 if storage == 2 else 0
    originals = _align64(192 + n * stride)
    ids = _align64(originals + n * extra)
    levels = _align64(ids + n * 8)
    flag_sec = _align64(levels + n)
    upper = _align64(flag_sec + n)
    return [(ids, n * 8), (levels, n), (flag_sec, n), (upper, upper_words * 4)]


def as_version(raw: bytes, version: int, flags: int | None = None) -> bytes:
    """The file re-sealed as `version`; below 3 without the id-map section (and its meta sums)."""
    b = bytearray(raw)
    if version < 3 and struct.unpack_from("<I", b, 44)[0] != 0:
        sections = meta_sections(raw)
        end = sections[-1][0] + sections[-1][1]
        del b[end:]
        struct.pack_into("<I", b, 44, 0)  # no id map
        struct.pack_into("<Q", b, 112, end)  # file size
        h = 1
        for at, size in sections:
            h = checksum64(bytes(b[at:at + size]), h)
        struct.pack_into("<Q", b, 120, h)
    struct.pack_into("<I", b, 8, version)
    if flags is not None:
        struct.pack_into("<H", b, 34, flags)  # after magic, 6 u32 fields and metric/storage bytes
    struct.pack_into("<Q", b, 136, checksum64(bytes(b[:136]), 0x4844))
    return bytes(b)
