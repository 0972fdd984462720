"""The Numba kernels of the ``pcx64-v1`` page hash (the algorithm is defined in :mod:`.hashing`).

Layers (see STYLE.md): ``_hash_page`` (inlined leaf) → ``_hash_serial`` (writes into
preallocated outputs) → ``_hash_parallel`` (owns the ``prange``); :func:`.hashing.hash_pages`
checks shapes and dtypes and carries the docstring. ``hash_into`` is the serial kernel on raw
pointers: :mod:`._native` compiles it with Numba into a C function and caches the machine code,
so that ``pagecore hash`` loads it without importing Numba (issue 18: start-up). This module is
imported only where that cache cannot be used (``NUMBA_DISABLE_JIT=1``, no llvmlite) or to build it.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit, prange

from pagecore import PAGE_SIZE
from pagecore._intrinsics import prefetch_read
from pagecore._jit import INLINE, PARALLEL, SERIAL

# the algorithm's shape, as defined in :mod:`.hashing` (not imported from there: hashing imports
# this module's machine code through ._native; tests/test_hashing.py checks the two agree)
WORDS = PAGE_SIZE // 8
LANES = 8
LANE_WORDS = WORDS // LANES

_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_P = np.uint64(0x9E3779B97F4A7C15)
_SIP_C = (
    np.uint64(0x736F6D6570736575),
    np.uint64(0x646F72616E646F6D),
    np.uint64(0x6C7967656E657261),
    np.uint64(0x7465646279746573),
)


@njit(**INLINE)
def _rotl(x, b):
    return (x << np.uint64(b)) | (x >> np.uint64(64 - b))


@njit(**INLINE)
def _sipround(v0, v1, v2, v3):
    v0 += v1
    v1 = _rotl(v1, 13)
    v1 ^= v0
    v0 = _rotl(v0, 32)
    v2 += v3
    v3 = _rotl(v3, 16)
    v3 ^= v2
    v0 += v3
    v3 = _rotl(v3, 21)
    v3 ^= v0
    v2 += v1
    v1 = _rotl(v1, 17)
    v1 ^= v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


@njit(**INLINE)
def _hash_page(p, kw, k0, k1, st):
    """Hash one page ``p`` (uint64[512]); ``st`` is uint64[16] scratch. Returns (hash, zero)."""
    z = np.uint64(0)
    for l in range(LANES):
        a = np.uint64(0)
        b = np.uint64(0)
        base = l * LANE_WORDS
        for j in range(base, base + LANE_WORDS):
            w = p[j]
            x = w ^ kw[j]
            a += (x & _M32) * (x >> _S32)
            b += w
            z |= w
        st[2 * l] = a
        st[2 * l + 1] = b
    v0 = k0 ^ _SIP_C[0]
    v1 = k1 ^ _SIP_C[1]
    v2 = k0 ^ _SIP_C[2]
    v3 = k1 ^ _SIP_C[3]
    for i in range(4):
        m = ((st[4 * i] ^ _rotl(st[4 * i + 1], 29)) * _P) ^ (st[4 * i + 2] + _rotl(st[4 * i + 3], 41))
        v3 ^= m
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= m
    v2 ^= np.uint64(0xFF)
    for _ in range(3):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3, z == np.uint64(0)


@njit(**SERIAL)
def _hash_serial(pages, kw, k0, k1, out_hash, out_zero):
    st = np.empty(2 * LANES, np.uint64)
    for i in range(pages.shape[0]):
        h, zz = _hash_page(pages[i], kw, k0, k1, st)
        out_hash[i] = h
        out_zero[i] = zz


@njit(**PARALLEL)
def _hash_parallel(pages, kw, k0, k1, out_hash, out_zero, nchunks):
    n = pages.shape[0]
    for c in prange(nchunks):
        lo = c * n // nchunks
        hi = (c + 1) * n // nchunks
        st = np.empty(2 * LANES, np.uint64)
        for i in range(lo, hi):
            h, zz = _hash_page(pages[i], kw, k0, k1, st)
            out_hash[i] = h
            out_zero[i] = zz


@njit(**SERIAL)
def _hash_rows_known_zero(pages, lo, hi, known_zero, kw, k0, k1, zero_hash, out_hash, out_zero):
    """Rows ``lo .. hi - 1``: ``zero_hash`` and True where ``known_zero`` says the page is all zero
    (the caller knows it: it wrote zeros there), else the page's hash, as ``_hash_serial``."""
    st = np.empty(2 * LANES, np.uint64)
    for i in range(lo, hi):
        if known_zero[i]:
            out_hash[i] = zero_hash
            out_zero[i] = True
        else:
            h, zz = _hash_page(pages[i], kw, k0, k1, st)
            out_hash[i] = h
            out_zero[i] = zz


@njit(**SERIAL)
def _hash_rows_elsewhere(pages, lo, hi, known_zero, src, src_off, kw, k0, k1, zero_hash, out_hash, out_zero):
    """As :func:`_hash_rows_known_zero`, and rows with ``src_off[i] >= 0`` hashed from the page at
    byte ``src_off[i]`` of ``src`` (``uint8[:]``, any alignment) instead of ``pages[i]`` (a reader
    that has not copied them there: raw pages of a kdump file, hashed where the file holds them)."""
    st = np.empty(2 * LANES, np.uint64)
    nbytes = pages.shape[1] * 8
    ahead = lo  # rows before this one have been looked at for the prefetch
    for i in range(lo, hi):
        o = src_off[i]
        if known_zero[i]:
            out_hash[i] = zero_hash
            out_zero[i] = True
        elif o >= 0:
            # prefetch the next such row's page while this one is hashed: these pages come from the
            # mapped file (memory, not cache), and the CPU's own prefetcher stops at each page's end
            # (hashing scattered pages: 0.65 -> 0.53 us a page; issue 18)
            ahead = max(ahead, i + 1)
            while ahead < hi and (known_zero[ahead] or src_off[ahead] < 0):
                ahead += 1
            if ahead < hi:
                p = src_off[ahead]
                for line in range(0, nbytes, 64):
                    prefetch_read(src, p + line)
                ahead += 1
            h, zz = _hash_page(src[o : o + nbytes].view(np.uint64), kw, k0, k1, st)
            out_hash[i] = h
            out_zero[i] = zz
        else:
            h, zz = _hash_page(pages[i], kw, k0, k1, st)
            out_hash[i] = h
            out_zero[i] = zz


def hash_into(pp, n, kp, k0, k1, oh, oz, sp):
    """``_hash_serial`` on raw pointers: ``n`` pages at ``pp`` (uint64[n, 512]), key words at
    ``kp`` (uint64[512]), outputs at ``oh`` (uint64[n]) and ``oz`` (bool[n]), scratch at ``sp``
    (uint64[16]). No allocation and nothing that can raise, so the compiled C function needs no
    Numba runtime (:mod:`._native` checks that it references no outside symbol)."""
    pages = carray(pp, (n, WORDS))
    kw = carray(kp, (WORDS,))
    out_hash = carray(oh, (n,))
    out_zero = carray(oz, (n,))
    st = carray(sp, (2 * LANES,))
    for i in range(n):
        h, zz = _hash_page(pages[i], kw, k0, k1, st)
        out_hash[i] = h
        out_zero[i] = zz
