"""Slow, obviously-correct twins of pagecore's fast kernels, written from their specifications.

Each one is plain Python over bytes and ints, written from the docstring that defines the
fast kernel, never by calling it.
"""

from __future__ import annotations

import hashlib
import struct
from collections import Counter

M64 = (1 << 64) - 1
PAGE = 4096


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & M64


def _sipround(v0, v1, v2, v3):
    v0 = (v0 + v1) & M64
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & M64
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & M64
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & M64
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def key_material(secret: bytes = b""):
    """(K[0..511], k0, k1) exactly as PageKey.from_secret documents it."""
    raw = hashlib.shake_256(b"pagecore/pcx64-v1/key\x00" + secret).digest(8 * 512 + 16)
    words = struct.unpack("<514Q", raw)
    return list(words[:512]), words[512], words[513]


def pcx64(page: bytes, secret: bytes = b"") -> int:
    """pcx64-v1 of one 4096-byte page, transcribed from pagecore.hashing's module docstring."""
    assert len(page) == PAGE
    w = struct.unpack("<512Q", page)
    K, k0, k1 = key_material(secret)
    A, B = [], []
    for l in range(8):
        a = b = 0
        for j in range(64 * l, 64 * l + 64):
            x = w[j] ^ K[j]
            a = (a + (x & 0xFFFFFFFF) * (x >> 32)) & M64
            b = (b + w[j]) & M64
        A.append(a)
        B.append(b)
    P = 0x9E3779B97F4A7C15
    m = [
        (((A[2 * i] ^ _rotl(B[2 * i], 29)) * P) & M64) ^ ((A[2 * i + 1] + _rotl(B[2 * i + 1], 41)) & M64)
        for i in range(4)
    ]
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    for mi in m:
        v3 ^= mi
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= mi
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def is_zero(page: bytes) -> bool:
    return page == bytes(PAGE)


def sharing_by_content(pages: list[bytes]) -> dict:
    """Paper Figure 4 metrics by grouping pages on their full content (sha256 + bytes)."""
    groups = Counter(hashlib.sha256(p).digest() + p[:0] for p in pages)
    total = len(pages)
    shared = sum(c for c in groups.values() if c > 1)
    distinct = len(groups)
    return {
        "total_pages": total,
        "zero_pages": sum(is_zero(p) for p in pages),
        "shared_pages": shared,
        "reclaimed_pages": total - distinct,
        "distinct_pages": distinct,
        "shared_minus_reclaimed_pages": sum(1 for c in groups.values() if c > 1),
    }


def sharing_by_hash(hashes: list[int], zero: list[bool]) -> dict:
    """The same metrics from (hash, zero) pairs with a dict."""
    groups = Counter(hashes)
    total = len(hashes)
    return {
        "total_pages": total,
        "zero_pages": sum(bool(z) for z in zero),
        "shared_pages": sum(c for c in groups.values() if c > 1),
        "reclaimed_pages": total - len(groups),
        "distinct_pages": len(groups),
        "shared_minus_reclaimed_pages": sum(1 for c in groups.values() if c > 1),
    }
