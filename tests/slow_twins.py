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
    """pcx64-v1 of one 4096-byte page, transcribed from pagecore.pages.hashing's module docstring."""
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


def exact_sharing(
    vms: list[tuple[str, list[tuple[int, bytes, int]]]],
    *,
    use_zero_pages=False,
    max_page_sharing=256,
    domain: dict[str, int] | None = None,
) -> dict:
    """Reference for pagecore.experiments.analyze: hash, then verify, then count — with dicts and bytes.

    ``vms``: ``[(vm name, [(gpfn, page bytes, table hash), ...]), ...]`` in table order, pages
    in gpfn order. Pages share only with pages of the same bytes (and domain): a hash that
    covers several contents is split by bytes. A false match is a page whose bytes differ from
    the first page seen with its hash (in table order, then gpfn order).
    """
    domain = domain or {}
    first: dict[int, bytes] = {}
    groups: dict[tuple[int, int, bytes], list[tuple[str, bool]]] = {}
    ineligible = 0
    false_matches = 0
    total = zero = 0
    for name, pages in vms:
        for _gpfn, data, h in sorted(pages):
            total += 1
            zero += is_zero(data)
            first.setdefault(h, data)
            false_matches += first[h] != data
            groups.setdefault((domain.get(name, 0), h, data), []).append((name, is_zero(data)))
    shared = reclaimed = intra = inter = zsaved = inter_shared = 0
    ksm_shared = ksm_sharing = ksm_unshared = ksm_zero = 0
    for members in groups.values():
        c = len(members)
        is_z = members[0][1]
        vms_in = Counter(n for n, _ in members)
        if use_zero_pages and is_z:
            ksm_zero += c
        elif c >= 2:
            kp = -(-c // max_page_sharing)
            left = 1 if c % max_page_sharing == 1 else 0
            ksm_shared += kp - left
            ksm_sharing += c - kp
            ksm_unshared += left
        else:
            ksm_unshared += 1
        if c >= 2:
            shared += c
            reclaimed += c - 1
            intra += sum(n - 1 for n in vms_in.values())
            inter += len(vms_in) - 1
            zsaved += (c - 1) if is_z else 0
            inter_shared += c if len(vms_in) >= 2 else 0
    return {
        "total_pages": total,
        "zero_pages": zero,
        "shared_pages": shared,
        "reclaimed_pages": reclaimed,
        "distinct_pages": len(groups) + ineligible,
        "ineligible_pages": ineligible,
        "false_matches": false_matches,
        "unshared_pages": total - shared,
        "intra_vm_saved_pages": intra,
        "inter_vm_saved_pages": inter,
        "zero_saved_pages": zsaved,
        "inter_vm_shared_pages": inter_shared,
        "ksm": {
            "pages_shared": ksm_shared,
            "pages_sharing": ksm_sharing,
            "pages_unshared": ksm_unshared + ineligible,
            "ksm_zero_pages": ksm_zero,
        },
    }
