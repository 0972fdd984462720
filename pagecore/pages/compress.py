"""Per-page compressed sizes, computed once per distinct content, and zram's same-filled test.

What a compressing memory manager stores for a page depends on two per-page facts measured
here: the page's **compressed size** under the manager's algorithm, and whether the page is
**same-filled** (one machine word repeated), which zram stores without any memory. The models
that count what zram, zswap and ESXi keep from these facts are in
:mod:`pagecore.sharing.compress`.

Algorithms (``ALGORITHMS``)
---------------------------
``lz4``
    The kernel's LZ4 (lib/lz4/lz4_compress.c, ``LZ4_compress_fast`` with acceleration 1, the
    16-bit position table of inputs < 64 KiB) re-implemented here in Numba
    (:func:`lz4_kernel_compress`). Linux zram's ``lz4`` backend calls exactly this
    (drivers/block/zram/backend_lz4.c, Linux 6.12+; crypto/lz4.c before). PyPI ``lz4``
    (liblz4 1.9.x, ``lz4-pypi`` here) is a different version of the compressor: on the shipped
    real dump it differs from the kernel on 70 % of non-zero pages (sizes within ~1 % in total,
    but 11 vs 4 pages above zram's huge threshold), while this port gives the kernel's size for
    every page (checked page by page against a real zram device, ``tests/test_zram_real.py``).
    Its output is a valid LZ4 block (tests decompress it with PyPI ``lz4``).
``lz4-pypi``
    ``LZ4_compress_default`` of the liblz4 bundled with PyPI ``lz4`` (GIL released, so run in a
    thread pool); the baseline of the benchmark, not a kernel model.
``zstd``
    Zstandard frame at ``ZSTD_LEVEL`` (3, zstd's and zram's default level) via PyPI
    ``zstandard``, with the content size in the frame header and no checksum, as the kernel's
    ``zstd_compress_cctx`` writes it with ``zstd_get_params(level, PAGE_SIZE)``.
``lzo`` and ``lzo-rle``
    LZO1X-1 as the kernel implements it (lib/lzo/lzo1x_compress.c, Linux 5.1+ for the RLE
    bitstream). There is no PyPI implementation of the kernel's LZO1X-1 (``lzokay`` is a
    different, slower and stronger LZO1X compressor), so :func:`lzo1x_1_compress` is written
    here from the algorithm's description (Documentation/staging/lzo.rst and the structure
    of lib/lzo/lzo1x_compress.c): a 2^13-entry hash of the next 4 bytes
    (``(dv * 0x1824429d) >> 19``) finds match candidates; literal runs skip ahead faster the
    longer they get (``1 + run/32``); matches extend 8 bytes at a time (the x86-64 code path)
    and are coded as M2 (length ≤ 8, distance ≤ 2 KiB, 2 bytes), M3 (distance ≤ 16 KiB) or M4;
    ``lzo-rle`` (bitstream version 1, zram's default since Linux 5.1) adds a 2-byte header
    and codes runs of ≥ 4 zero bytes found at match candidates as one 4-byte instruction.
    The kernel emits the bytes; here they are emitted too (so tests can decompress plain
    LZO1X output with ``lzokay``), and the size is what the models use.

Deduplication
-------------
A dump has far fewer distinct page contents than pages (zero pages, shared code). Sizes are
computed once per content, keyed by the page's 64-bit ``pcx64-v1`` hash
(:mod:`pagecore.hashing`) in an open-addressing table of the whole stream
(:class:`ContentTable`): memory grows with the number of distinct contents (about 40 bytes
each with the sizes), page bytes stay bounded by one chunk. Two different contents with one
hash would share a size; with d distinct contents that happens with probability about
d²/2^65 (the sharing report prints the expected number of such false matches).

Speed
-----
``pagecore compress`` reads every page once to hash it and once more only for contents new to
the stream, when the same-filled test and the compressor run in one pass (:func:`new_content_facts`).
The ports compute the compressed *size* without writing the literal bytes (the matches and
every length code are the kernel's; :func:`lz4_kernel_compress` and :func:`lzo1x_1_compress`
write the full output, and the tests compare both paths). Input words are read with unaligned
native loads, as the kernel's ``LZ4_read32`` / ``get_unaligned_le32`` do. A chunk is cut into
slices taken by worker threads as they come free, and the new contents a slice finds are
shared out in one block per thread (:class:`ChunkSizer`). For a memory-mapped dump in the page
cache the worker threads also map the pages (page faults on first touch) and drop their
page-table entries when a slice is done (:func:`_map_in_workers`, :func:`_release_mapped`):
on this kind of machine that mapping costs about as much CPU as hashing the bytes, and done by
the reader and at ``munmap`` it ran on one core.

Same-filled pages
-----------------
zram's ``page_same_filled`` (drivers/block/zram/zram_drv.c, Linux 4.13+) compares every
``unsigned long`` of the page (8 bytes on 64-bit hosts, ``SAME_FILL_WORD``) with the first; such
pages are recorded by their word and counted in ``same_pages``. :func:`same_filled` is the
Numba kernel; ``tests/test_compress.py`` has its slow twin.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from numba import njit, parallel_chunksize, prange
from numba.cpython.unsafe.numbers import trailing_zeros

from pagecore._defaults import COMPRESS_ALGORITHMS, DEFAULT_COMPRESS_ALGORITHM
from pagecore._jit import JIT_DISABLED, PARALLEL, SERIAL, resolve_threads, usable_cpus
from pagecore.errors import ConfigError

ALGORITHMS = COMPRESS_ALGORITHMS
#: Also accepted by :func:`compressed_sizes` (not a kernel model): userspace liblz4 via PyPI lz4.
EXTRA_ALGORITHMS = ("lz4-pypi",)
#: zram's default since Linux 5.1 (CONFIG_ZRAM_DEF_COMP, drivers/block/zram/Kconfig).
DEFAULT_ALGORITHM = DEFAULT_COMPRESS_ALGORITHM
#: zstd level zram uses when none is set (ZSTD_CLEVEL_DEFAULT = 3, zstd and Linux 6.12+ zram).
ZSTD_LEVEL = 3
#: Bytes compared by zram's page_same_filled: sizeof(unsigned long) on a 64-bit kernel.
SAME_FILL_WORD = 8

# LZO1X-1 constants (lib/lzo/lzodefs.h, Linux 6.x)
_D_BITS = 13
_D_MASK = (1 << _D_BITS) - 1
_M2_MAX_LEN = 8
_M3_MAX_LEN = 33
_M4_MAX_LEN = 9
_M2_MAX_OFFSET = 0x0800
_M3_MAX_OFFSET = 0x4000
_M3_MARKER = 32
_M4_MARKER = 16
_MIN_ZERO_RUN = 4
_MAX_ZERO_RUN = 2047 + _MIN_ZERO_RUN
_M4_MAX_OFFSET_V0 = 0xBFFF
_M4_MAX_OFFSET_V1 = 0xBFFE
#: Output bound of LZO1X-1 for n input bytes (lzo1x_worst_compress in include/linux/lzo.h) + header.
LZO_MAX_INPUT = _M4_MAX_OFFSET_V1 + 1


def lzo_worst(n: int) -> int:
    """Output bound for ``n`` input bytes (include/linux/lzo.h ``lzo1x_worst_compress`` + 2)."""
    return n + n // 16 + 64 + 3 + 2


# ---------------------------------------------------------------------------------- same-filled
@njit(**SERIAL)
def _same_filled_serial(words, rows, out_same, out_value):
    w = words.shape[1]
    for i in range(rows.shape[0]):
        r = rows[i]
        v = words[r, 0]
        ok = True
        for j in range(1, w):
            if words[r, j] != v:
                ok = False
                break
        out_same[i] = ok
        out_value[i] = v


@njit(**PARALLEL)
def _same_filled_parallel(words, rows, out_same, out_value, nchunks):
    n = rows.shape[0]
    for c in prange(nchunks):
        a = c * n // nchunks
        b = (c + 1) * n // nchunks
        _same_filled_serial(words, rows[a:b], out_same[a:b], out_value[a:b])


def same_filled(
    pages: np.ndarray, threads: int | None = 1, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """zram's same-filled test: is every 8-byte word of the page equal to the first?

    Parameters
    ----------
    pages : numpy.ndarray
        ``uint8[n, 4096]`` (or ``uint64[n, 512]``), C-contiguous rows.
    threads : int or None
        1 = serial; ``None``/0 = all Numba threads. Results do not depend on it.
    rows : int64[k], optional
        Test only these rows (no copy of the pages); outputs then have length k.

    Returns
    -------
    same : bool[n]
    value : uint64[n]
        The first word of each page (the fill word where ``same``).
    """
    from pagecore.pages.hashing import as_page_words

    words = as_page_words(pages)
    rows = np.arange(words.shape[0], dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    n = rows.shape[0]
    same = np.empty(n, np.bool_)
    value = np.empty(n, np.uint64)
    if n == 0:
        return same, value
    nt = resolve_threads(threads)
    if nt == 1 or n < 64:
        _same_filled_serial(words, rows, same, value)
    else:
        _same_filled_parallel(words, rows, same, value, min(n, nt * 4))
    return same, value


# ---------------------------------------------------------------------------------- LZO1X-1
if JIT_DISABLED:  # the LLVM intrinsic has no pure-Python body (NUMBA_DISABLE_JIT=1 coverage runs)

    def _ctz64(v):
        v = int(v)
        return (v & -v).bit_length() - 1

else:

    @njit(**SERIAL)
    def _ctz64(v):
        return int(trailing_zeros(v))


if JIT_DISABLED:  # pure-Python loads for NUMBA_DISABLE_JIT=1 coverage runs

    def _ld32(a, i):
        return np.uint32(int.from_bytes(bytes(a[i : i + 4]), "little"))

    def _ld64(a, i):
        return np.uint64(int.from_bytes(bytes(a[i : i + 8]), "little"))

else:
    import sys

    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    if sys.byteorder != "little":  # pragma: no cover - x86-64 and arm64 hosts are little-endian
        raise ImportError("pagecore's compressor ports read little-endian words with native loads")

    def _unaligned_load(bits):
        ty = types.uint32 if bits == 32 else types.uint64

        def impl(typingctx, arr, i):
            if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == types.uint8 and arr.layout == "C"):
                return None

            def codegen(context, builder, signature, args):
                ary = context.make_array(signature.args[0])(context, builder, args[0])
                idx = context.cast(builder, args[1], signature.args[1], types.intp)
                ptr = builder.bitcast(builder.gep(ary.data, [idx]), ir.IntType(bits).as_pointer())
                return builder.load(ptr, align=1)

            return ty(arr, i), codegen

        impl.__name__ = f"_ld{bits}"
        return intrinsic(impl)

    #: ``_ld32(a, i)``: the little-endian uint32 at byte ``i`` of a contiguous ``uint8`` array,
    #: one unaligned load (LZ4_read32 / the LZO ports' 4-byte reads); no bounds check.
    _ld32 = _unaligned_load(32)
    #: ``_ld64(a, i)``: the same for 8 bytes (LZ4_read_ARCH on 64-bit).
    _ld64 = _unaligned_load(64)


@njit(**SERIAL)
def _put_literal_count(dst, op, t):
    """Length code of a literal run of t > 3 bytes (the copy follows); returns new op."""
    if t <= 18:
        dst[op] = t - 3
        return op + 1
    tt = t - 18
    dst[op] = 0
    op += 1
    while tt > 255:
        tt -= 255
        dst[op] = 0
        op += 1
    dst[op] = tt
    return op + 1


@njit(**SERIAL)
def _copy(dst, op, src, ii, t):
    if t < 32:  # short literal runs: a plain loop beats the slice machinery
        for k in range(t):
            dst[op + k] = src[ii + k]
    else:
        dst[op : op + t] = src[ii : ii + t]
    return op + t


@njit(**SERIAL)
def _lzo1x_1_block(src, dst, op, dct, rle, st, emit):
    """One lzo1x_1_do_compress pass over all of ``src`` (len ≤ 0xbfff, > 20).

    ``st[0]`` is the state offset (where a short literal count is OR-ed into the previous
    instruction); returns (op, literal bytes left at the end)."""
    n = src.shape[0]
    ip_end = n - 20
    for k in range(dct.shape[0]):
        dct[k] = 0
    ii = 0
    ip = 4
    while True:
        # "literal": skip ahead, faster the longer the current literal run
        ip += 1 + ((ip - ii) >> 5)
        while True:  # "next"
            if ip >= ip_end:
                return op, n - ii
            dv = _ld32(src, ip)
            run = 0
            m_pos = 0
            if dv == 0 and rle:
                ir = ip + 4
                limit = min(ip_end, ip + _MAX_ZERO_RUN + 1)
                while ir < limit and src[ir] == 0:
                    ir += 1
                run = min(ir - ip, _MAX_ZERO_RUN)
            else:
                h = ((np.uint64(dv) * np.uint64(0x1824429D)) & np.uint64(0xFFFFFFFF)) >> np.uint64(32 - _D_BITS)
                h = int(h) & _D_MASK
                m_pos = int(dct[h])
                dct[h] = ip
                if dv != _ld32(src, m_pos):
                    break  # back to "literal"
            # emit the literal run [ii, ip)
            t = ip - ii
            if t != 0:
                if t <= 3:
                    dst[op + st[0]] |= t
                    op = _copy(dst, op, src, ii, t) if emit else op + t
                else:
                    op = _put_literal_count(dst, op, t)
                    op = _copy(dst, op, src, ii, t) if emit else op + t
            if run:
                ip += run
                r = run - _MIN_ZERO_RUN
                code = (r << 21) | 0xFFFC18 | (r & 7)
                dst[op] = code & 0xFF
                dst[op + 1] = (code >> 8) & 0xFF
                dst[op + 2] = (code >> 16) & 0xFF
                dst[op + 3] = (code >> 24) & 0xFF
                op += 4
                st[0] = -3
                ii = ip
                continue
            # match length: 8 bytes at a time (x86-64 LZO_USE_CTZ64 path)
            m_len = 4
            v = _ld64(src, ip + m_len) ^ _ld64(src, m_pos + m_len)
            done = False
            if v == 0:
                while True:
                    m_len += 8
                    v = _ld64(src, ip + m_len) ^ _ld64(src, m_pos + m_len)
                    if ip + m_len >= ip_end:
                        done = True
                        break
                    if v != 0:
                        break
            if not done:
                m_len += _ctz64(v) // 8
            m_off = ip - m_pos
            ip += m_len
            if m_len <= _M2_MAX_LEN and m_off <= _M2_MAX_OFFSET:
                m_off -= 1
                dst[op] = (((m_len - 1) << 5) | ((m_off & 7) << 2)) & 0xFF
                dst[op + 1] = (m_off >> 3) & 0xFF
                op += 2
            elif m_off <= _M3_MAX_OFFSET:
                m_off -= 1
                if m_len <= _M3_MAX_LEN:
                    dst[op] = _M3_MARKER | (m_len - 2)
                    op += 1
                else:
                    m_len -= _M3_MAX_LEN
                    dst[op] = _M3_MARKER
                    op += 1
                    while m_len > 255:
                        m_len -= 255
                        dst[op] = 0
                        op += 1
                    dst[op] = m_len
                    op += 1
                dst[op] = (m_off << 2) & 0xFF
                dst[op + 1] = (m_off >> 6) & 0xFF
                op += 2
            else:
                m_off -= 0x4000
                if m_len <= _M4_MAX_LEN:
                    dst[op] = (_M4_MARKER | ((m_off >> 11) & 8) | (m_len - 2)) & 0xFF
                    op += 1
                else:
                    if rle and (m_off & 0x403F) == 0x403F and 261 <= m_len <= 264:
                        ip -= m_len - 260  # lzo-rle: avoid an ambiguous code
                        m_len = 260
                    m_len -= _M4_MAX_LEN
                    dst[op] = (_M4_MARKER | ((m_off >> 11) & 8)) & 0xFF
                    op += 1
                    while m_len > 255:
                        m_len -= 255
                        dst[op] = 0
                        op += 1
                    dst[op] = m_len
                    op += 1
                dst[op] = (m_off << 2) & 0xFF
                dst[op + 1] = (m_off >> 6) & 0xFF
                op += 2
            st[0] = -2
            ii = ip


@njit(**SERIAL)
def _lzo1x_1(src, dst, dct, rle, emit):
    """Compress ``src`` (≤ 0xbfff bytes) into ``dst``; return the compressed length.

    With ``emit`` false the literal bytes are not copied (``dst`` is scratch then: it holds the
    instructions at their offsets and garbage between); the length is the same."""
    n = src.shape[0]
    op = 0
    if rle:
        dst[0] = 17
        dst[1] = 1
        op = 2
    data_start = op
    st = np.empty(1, np.int64)
    st[0] = -2
    t = n
    if n > 20:
        op, t = _lzo1x_1_block(src, dst, op, dct, rle, st, emit)
    if t > 0:
        ii = n - t
        if op == data_start and t <= 238:
            dst[op] = 17 + t
            op += 1
        elif t <= 3:
            dst[op + st[0]] |= t
        else:
            op = _put_literal_count(dst, op, t)
        op = _copy(dst, op, src, ii, t) if emit else op + t
    dst[op] = _M4_MARKER | 1
    dst[op + 1] = 0
    dst[op + 2] = 0
    return op + 3


def lzo1x_1_compress(data: bytes | np.ndarray, rle: bool = False) -> bytes:
    """The kernel's LZO1X-1 (``rle=False``) or lzo-rle (``rle=True``) output for ``data``.

    For tests and inspection; :func:`compressed_sizes` is the fast path. ``data`` is at most
    49,150 bytes (one ``lzo1x_1_do_compress`` block; pages are 4 KiB).
    """
    src = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    src = np.ascontiguousarray(src, dtype=np.uint8)
    if src.shape[0] > LZO_MAX_INPUT - 1:
        raise ValueError(f"lzo1x_1_compress takes at most {LZO_MAX_INPUT - 1} bytes, got {src.shape[0]}")
    dst = np.zeros(lzo_worst(src.shape[0]), np.uint8)
    dct = np.empty(1 << _D_BITS, np.uint16)
    n = _lzo1x_1(src, dst, dct, bool(rle), True)
    return dst[:n].tobytes()


# ---------------------------------------------------------------------------------- LZ4 (kernel)
# lib/lz4/lz4defs.h (Linux 4.11+, LZ4 1.7.3 adapted by Sven Schmidt): LZ4_MEMORY_USAGE 14,
# LZ4_HASHLOG 12 (13 bits for 16-bit tables), LZ4_SKIPTRIGGER 6, MINMATCH 4, MFLIMIT 12,
# LASTLITERALS 5, ML_BITS 4, RUN_MASK 15, MAX_DISTANCE 65535.
_LZ4_HASH_BITS_U16 = 13
_LZ4_SKIPTRIGGER = 6
_LZ4_MINMATCH = 4
_LZ4_MFLIMIT = 12
_LZ4_LASTLITERALS = 5
_LZ4_MASK = 15


@njit(**SERIAL)
def _lz4_hash16(v):
    """LZ4_hash4 for the 16-bit table (lz4_compress.c): (v * 2654435761U) >> (32 - 13), in 32 bits."""
    return int(((np.uint64(v) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)) >> np.uint64(32 - _LZ4_HASH_BITS_U16))


@njit(**SERIAL)
def _lz4_len_bytes(dst, op, n):
    """Extension bytes of a length field whose 4-bit code saturated (n = length - 15)."""
    while n >= 255:
        dst[op] = 255
        op += 1
        n -= 255
    dst[op] = n
    return op + 1


@njit(**SERIAL)
def _lz4_ext(n):
    """Bytes that length code ``n`` (literal run or match length - 4) adds after its token nibble."""
    return 0 if n < _LZ4_MASK else (n - _LZ4_MASK) // 255 + 1


@njit(**SERIAL)
def _lz4_count(src, a, b, limit):
    """LZ4_count: equal bytes at ``a`` and ``b`` (b < a), reading at most up to ``limit``; 8 at a time."""
    code = 0
    while a + code + 8 <= limit:
        x = _ld64(src, a + code) ^ _ld64(src, b + code)
        if x != 0:
            return code + (_ctz64(x) >> 3)
        code += 8
    while a + code < limit and src[a + code] == src[b + code]:
        code += 1
    return code


@njit(**SERIAL)
def _lz4_kernel(src, dst, table, emit):
    """LZ4_compress_fast(acceleration=1) as the kernel's lib/lz4 does it for inputs < 64 KiB
    (16-bit position table, no dictionary, unlimited output); returns the compressed length.

    ``table`` is ``uint16[8192]`` (zeroed here, as LZ4_resetStream does). With ``emit`` false
    nothing is written to ``dst`` (it may be empty): only the length is computed, with the same
    matches and lengths (the literal copies, which are most of the output's bytes, are skipped).
    Reads are unaligned little-endian loads of the input, as the kernel's LZ4_read32/LZ4_read_ARCH."""
    n = src.shape[0]
    table[:] = 0
    op = 0
    anchor = 0
    mflimit = n - _LZ4_MFLIMIT
    matchlimit = n - _LZ4_LASTLITERALS
    if n >= _LZ4_MFLIMIT + 1:
        table[_lz4_hash16(_ld32(src, 0))] = 0
        ip = 1
        fwd_h = _lz4_hash16(_ld32(src, ip))
        while True:
            # find a match, skipping faster the longer nothing is found
            fwd = ip
            step = 1
            search = 1 << _LZ4_SKIPTRIGGER
            while True:
                h = fwd_h
                ip = fwd
                fwd += step
                step = search >> _LZ4_SKIPTRIGGER
                search += 1
                if fwd > mflimit:
                    break
                match = int(table[h])
                fwd_h = _lz4_hash16(_ld32(src, fwd))
                table[h] = ip
                if _ld32(src, match) == _ld32(src, ip):
                    break
            if fwd > mflimit:
                break
            # catch up backwards
            while ip > anchor and match > 0 and src[ip - 1] == src[match - 1]:
                ip -= 1
                match -= 1
            lit = ip - anchor
            token = op
            if emit:
                op += 1
                if lit >= _LZ4_MASK:
                    dst[token] = _LZ4_MASK << 4
                    op = _lz4_len_bytes(dst, op, lit - _LZ4_MASK)
                else:
                    dst[token] = lit << 4
                op = _copy(dst, op, src, anchor, lit)
            else:
                op += 1 + _lz4_ext(lit) + lit
            while True:  # _next_match
                if emit:
                    off = ip - match
                    dst[op] = off & 0xFF
                    dst[op + 1] = (off >> 8) & 0xFF
                code = _lz4_count(src, ip + _LZ4_MINMATCH, match + _LZ4_MINMATCH, matchlimit)
                op += 2
                ip += _LZ4_MINMATCH + code
                if emit:
                    if code >= _LZ4_MASK:
                        dst[token] += _LZ4_MASK
                        op = _lz4_len_bytes(dst, op, code - _LZ4_MASK)
                    else:
                        dst[token] += code
                else:
                    op += _lz4_ext(code)
                anchor = ip
                if ip > mflimit:
                    break
                table[_lz4_hash16(_ld32(src, ip - 2))] = ip - 2
                h = _lz4_hash16(_ld32(src, ip))
                match = int(table[h])
                table[h] = ip
                if match + 65535 >= ip and _ld32(src, match) == _ld32(src, ip):
                    token = op
                    if emit:
                        dst[token] = 0
                    op += 1
                    continue
                break
            if ip > mflimit:
                break
            ip += 1
            fwd_h = _lz4_hash16(_ld32(src, ip))
    last_run = n - anchor
    if not emit:
        return op + 1 + _lz4_ext(last_run) + last_run
    if last_run >= _LZ4_MASK:
        dst[op] = _LZ4_MASK << 4
        op = _lz4_len_bytes(dst, op + 1, last_run - _LZ4_MASK)
    else:
        dst[op] = last_run << 4
        op += 1
    return _copy(dst, op, src, anchor, last_run)


def lz4_kernel_compress(data: bytes | np.ndarray) -> bytes:
    """The Linux kernel's LZ4 block (``LZ4_compress_fast``, acceleration 1) for ``data`` < 64 KiB."""
    src = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    src = np.ascontiguousarray(src, dtype=np.uint8)
    if src.shape[0] >= 65536 + 11:
        raise ValueError(f"lz4_kernel_compress takes less than 64 KiB, got {src.shape[0]} bytes")
    dst = np.zeros(src.shape[0] + src.shape[0] // 255 + 32, np.uint8)
    table = np.empty(1 << _LZ4_HASH_BITS_U16, np.uint16)
    return dst[: _lz4_kernel(src, dst, table, True)].tobytes()


def lz4_kernel_size(data: bytes | np.ndarray) -> int:
    """Length of :func:`lz4_kernel_compress`'s output, computed without writing it (the fast path)."""
    src = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    src = np.ascontiguousarray(src, dtype=np.uint8)
    if src.shape[0] >= 65536 + 11:
        raise ValueError(f"lz4_kernel_size takes less than 64 KiB, got {src.shape[0]} bytes")
    return int(_lz4_kernel(src, np.empty(0, np.uint8), np.empty(1 << _LZ4_HASH_BITS_U16, np.uint16), False))


# ---------------------------------------------------------------------------------- sizes
_tls = threading.local()


def _zstd_compressor():
    c = getattr(_tls, "zstd", None)
    if c is None:
        import zstandard

        c = _tls.zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True, write_checksum=False)
    return c


def _py_sizes(pages: np.ndarray, rows: np.ndarray, algorithm: str, out: np.ndarray) -> None:
    if algorithm == "lz4-pypi":
        import lz4.block

        comp = lz4.block.compress
        for i, r in enumerate(rows):
            out[i] = len(comp(pages[r], store_size=False))
    elif algorithm == "zstd":
        comp = _zstd_compressor().compress
        for i, r in enumerate(rows):
            out[i] = len(comp(pages[r]))
    else:  # pragma: no cover - checked by callers
        raise ValueError(algorithm)


def check_algorithm(algorithm: str) -> str:
    """Return ``algorithm`` if known, else raise ConfigError naming the choices."""
    if algorithm not in ALGORITHMS + EXTRA_ALGORITHMS:
        raise ConfigError(f"unknown compression algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    return algorithm


def compressed_sizes(
    pages: np.ndarray,
    algorithm: str,
    threads: int | None = 1,
    pool: ThreadPoolExecutor | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Compressed size in bytes of every page (no deduplication).

    Parameters
    ----------
    pages : numpy.ndarray
        ``uint8[n, 4096]``, C-contiguous rows.
    algorithm : {"lzo-rle", "lzo", "lz4", "zstd", "lz4-pypi"}
    threads : int or None
        Threads (Numba threads for lzo and lz4, a thread pool for zstd and lz4-pypi, which
        release the GIL).
    pool : ThreadPoolExecutor, optional
        Reuse a pool across calls.
    rows : int64[k], optional
        Compress only these rows (read in place, no copy); the result then has length k.

    Returns
    -------
    numpy.ndarray
        ``int32[n]``; may exceed 4096 for incompressible pages (the formats' own overhead).
    """
    check_algorithm(algorithm)
    if pages.ndim != 2 or pages.dtype != np.uint8:
        raise ValueError(f"pages must be uint8[n, page_size], got {pages.dtype}{pages.shape}")
    if not pages.flags.c_contiguous:
        pages = np.ascontiguousarray(pages)
    rows = np.arange(pages.shape[0], dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    n = rows.shape[0]
    out = np.zeros(n, np.int32)
    if n == 0:
        return out
    if algorithm in _NUMBA_CODES:
        return new_content_facts(pages, rows, algorithm, False, threads)[1]
    nt = resolve_threads(threads)
    if nt == 1 or n < 16:
        _py_sizes(pages, rows, algorithm, out)
        return out
    own = pool is None
    pool = pool or ThreadPoolExecutor(nt)
    try:
        bounds = [(k * n // nt, (k + 1) * n // nt) for k in range(nt)]
        futs = [pool.submit(_py_sizes, pages, rows[a:b], algorithm, out[a:b]) for a, b in bounds if b > a]
        for f in futs:
            f.result()
    finally:
        if own:
            pool.shutdown()
    return out


# ---------------------------------------------------------------------------------- dedup table
@njit(**SERIAL)
def _claim(hashes, keys, ids, next_id, out_ids, new_rows):
    """Content id of every hash in an open-addressing table (linear probing, ``ids`` -1 = empty).

    Unseen hashes are inserted with ids ``next_id, next_id + 1, …`` in order of first
    occurrence, and ``new_rows`` gets each one's first row. Returns how many were inserted.
    ``keys`` has a power-of-two length with room for every hash (the caller grows it)."""
    mask = keys.shape[0] - 1
    k = 0
    for i in range(hashes.shape[0]):
        h = hashes[i]
        s = h & np.uint64(mask)  # pcx64 hashes are uniform: their low bits index the table
        while True:
            c = ids[s]
            if c < 0:
                keys[s] = h
                ids[s] = next_id + k
                out_ids[i] = next_id + k
                new_rows[k] = i
                k += 1
                break
            if keys[s] == h:
                out_ids[i] = c
                break
            s = (s + np.uint64(1)) & np.uint64(mask)
    return k


@njit(**SERIAL)
def _rehash(keys, ids, new_keys, new_ids):
    mask = new_keys.shape[0] - 1
    for j in range(keys.shape[0]):
        if ids[j] >= 0:
            s = keys[j] & np.uint64(mask)
            while new_ids[s] >= 0:
                s = (s + np.uint64(1)) & np.uint64(mask)
            new_keys[s] = keys[j]
            new_ids[s] = ids[j]


class ContentTable:
    """Content ids for the 64-bit page hashes of a stream: the same hash, the same id.

    One open-addressing table (8-byte key + 8-byte id per slot, at most half full, so 32 to 64
    bytes per distinct content); memory grows with the number of distinct contents only.
    """

    def __init__(self, capacity: int = 1 << 12):
        cap = 1 << max(4, int(capacity - 1).bit_length())
        self.keys = np.zeros(cap, np.uint64)
        self.ids = np.full(cap, -1, np.int64)
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def claim(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(content id int64[k] per hash, first row int64[m] of each content new in this call);
        new contents get ids ``len(self)`` … ``len(self) + m - 1`` in the order of ``new_rows``."""
        hashes = np.ascontiguousarray(hashes, np.uint64)
        need = 2 * (self.n + len(hashes))
        if need > len(self.keys):
            cap = 1 << (need - 1).bit_length()
            keys, ids = np.zeros(cap, np.uint64), np.full(cap, -1, np.int64)
            _rehash(self.keys, self.ids, keys, ids)
            self.keys, self.ids = keys, ids
        out = np.empty(len(hashes), np.int64)
        new = np.empty(len(hashes), np.int64)
        m = _claim(hashes, self.keys, self.ids, self.n, out, new) if len(hashes) else 0
        self.n += m
        return out, new[:m]


#: Numba compressor codes of :func:`_new_facts` (0: same-filled test only).
_NUMBA_CODES = {"lz4": 1, "lzo": 2, "lzo-rle": 3}
#: Pages per work item of :func:`_new_facts` (dynamic scheduling: contents differ in cost).
_BLOCK = 32


@njit(**SERIAL)
def _new_facts_block(pages, rows, alg, want_same, out_same, out_size, table, dct, dst):
    w = pages.shape[1]
    nw = w // 8
    for i in range(rows.shape[0]):
        p = pages[rows[i]]
        if want_same:
            v = _ld64(p, 0)
            ok = True
            for j in range(1, nw):
                if _ld64(p, 8 * j) != v:
                    ok = False
                    break
            out_same[i] = ok
        if alg == 1:
            out_size[i] = _lz4_kernel(p, dst, table, False)
        elif alg >= 2:
            out_size[i] = _lzo1x_1(p, dst, dct, alg == 3, False)


@njit(**PARALLEL)
def _new_facts(pages, rows, alg, want_same, out_same, out_size, block):
    """Same-filled flag (``want_same``) and compressed size under ``alg`` of pages[rows]:
    blocks of ``block`` rows (the caller sets ``parallel_chunksize(1)``, so they are handed out
    one at a time to whichever thread is free)."""
    n = rows.shape[0]
    w = pages.shape[1]
    nblocks = (n + block - 1) // block
    for c in prange(nblocks):
        a = c * block
        b = min(n, a + block)
        table = np.empty(1 << _LZ4_HASH_BITS_U16, np.uint16)
        dct = np.empty(1 << _D_BITS, np.uint16)
        dst = np.empty(w + w // 16 + 64 + 8 if alg >= 2 else 0, np.uint8)
        _new_facts_block(pages, rows[a:b], alg, want_same, out_same[a:b], out_size[a:b], table, dct, dst)


def new_content_facts(
    pages: np.ndarray, rows: np.ndarray, algorithm: str | None, same: bool, threads: int | None = 1
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(same-filled bool[k] or None, compressed size int32[k] or None) of ``pages[rows]``, in one
    pass over each page; ``algorithm`` must be a Numba one (lz4, lzo, lzo-rle) or None."""
    rows = np.asarray(rows, np.int64)
    k = rows.shape[0]
    alg = 0 if algorithm is None else _NUMBA_CODES[algorithm]
    if alg >= 2 and pages.shape[1] >= LZO_MAX_INPUT:
        raise ValueError(f"pages of {pages.shape[1]} bytes are longer than one LZO1X-1 block")
    if alg == 1 and pages.shape[1] >= 65536:
        raise ValueError(f"pages of {pages.shape[1]} bytes are too long for LZ4's 16-bit table")
    out_same = np.zeros(k, np.bool_)
    out_size = np.zeros(k, np.int32)
    if k:
        w = pages.shape[1]
        table = np.empty(1 << _LZ4_HASH_BITS_U16, np.uint16)
        dct = np.empty(1 << _D_BITS, np.uint16)
        if resolve_threads(threads) == 1 or k <= _BLOCK:
            dst = np.empty(w + w // 16 + 64 + 8 if alg >= 2 else 0, np.uint8)
            _new_facts_block(pages, rows, alg, same, out_same, out_size, table, dct, dst)
        else:
            with parallel_chunksize(1):
                _new_facts(pages, rows, alg, same, out_same, out_size, _BLOCK)
    return (out_same if same else None), (out_size if alg else None)


#: Where :func:`page_sizes` spends its time (:attr:`SizeStats.stages`).
STAGES = ("read", "hash", "dedupe", "compress", "release", "gather", "frame")


def _is_readonly_file_view(pages: np.ndarray) -> bool:
    """True if ``pages`` is a view of a read-only ``mmap`` (a dump reader's file mapping).

    Only then may :func:`_release_mapped` drop its page-table entries: a later read of a shared
    file mapping faults the same bytes back in from the page cache, while ``MADV_DONTNEED`` on
    anonymous or copy-on-write memory would zero it."""
    import mmap

    b = pages
    while isinstance(b, np.ndarray):
        b = b.base
    readonly = None
    if isinstance(b, memoryview):
        readonly, b = b.readonly, b.obj
    if not isinstance(b, mmap.mmap):
        return False
    if readonly is None:
        try:
            readonly = memoryview(b).readonly
        except (ValueError, TypeError):  # closed
            return False
    return bool(readonly)


_MADV_DONTNEED = 4  # Linux and the BSDs
_madvise = None


def _release_mapped(pages: np.ndarray) -> None:
    """``madvise(MADV_DONTNEED)`` the whole pages of ``pages`` (a read-only file view, see
    :func:`_is_readonly_file_view`) from the calling thread, with the GIL released (ctypes).

    Unmapping is most of what it costs to read a cached dump through ``mmap`` on this kind of
    machine (about as much as hashing the bytes); done per slice by the worker threads it runs
    on every core, where the reader's single ``munmap`` at close would run on one. A hint:
    failures are ignored."""
    global _madvise
    if _madvise is None:
        import ctypes
        import sys

        if not sys.platform.startswith("linux"):
            _madvise = False
        else:
            try:
                f = ctypes.CDLL(None, use_errno=True).madvise
                f.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
                f.restype = ctypes.c_int
                _madvise = f
            except (OSError, AttributeError):
                _madvise = False
    if not _madvise or pages.size == 0:
        return
    ps = os.sysconf("SC_PAGE_SIZE")
    a = pages.ctypes.data
    b = a + pages.nbytes
    lo = -(-a // ps) * ps  # whole pages inside the view only
    hi = b - b % ps
    if hi > lo:
        _madvise(lo, hi - lo, _MADV_DONTNEED)


@dataclass
class SizeStats:
    """What a streaming size computation did, and where its time went (for the benchmark and
    the report): seconds waiting for the reader's next chunk, hashing, finding new contents,
    compressing them (with the same-filled test), and building the per-page columns."""

    pages: int = 0
    pages_sampled: int = 0
    distinct_compressed: dict = field(default_factory=dict)  # algorithm -> contents compressed
    nonzero_compressed: dict = field(default_factory=dict)  # algorithm -> non-zero contents compressed
    compress_seconds: dict = field(default_factory=dict)  # algorithm -> time spent compressing
    #: stage -> [wall seconds, CPU seconds]; stages: read (the main thread waiting for the
    #: reader's next chunk), hash, dedupe, compress (all algorithms, with the same-filled test),
    #: gather (per-page columns from per-content values). hash, dedupe and compress run in the
    #: worker threads: their wall seconds are summed over the threads' slices (time a thread was
    #: busy with the stage, including time the OS had it descheduled) and their CPU seconds are
    #: the threads' own (``time.thread_time``); read and gather are the main thread's wall and
    #: the process's CPU seconds.
    stages: dict = field(default_factory=lambda: {s: [0.0, 0.0] for s in STAGES})
    wall_seconds: float = 0.0

    def clock(self) -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def add(self, stage: str, since: tuple[float, float]) -> tuple[float, float]:
        """Charge the time since ``since`` (a :meth:`clock`) to ``stage``; returns the clock now."""
        now = self.clock()
        acc = self.stages[stage]
        acc[0] += now[0] - since[0]
        acc[1] += now[1] - since[1]
        return now


_pools: dict = {}
_pools_lock = threading.Lock()
if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads: new pools there
    os.register_at_fork(after_in_child=_pools.clear)


def _worker_pool(threads: int) -> ThreadPoolExecutor:
    """The worker threads of :class:`ChunkSizer` (one pool per thread count, made on first use and
    kept: starting two threads cost about a millisecond per run on the shipped real dump)."""
    with _pools_lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="pagecore-compress")
        return pool


class _Lap:
    """Busy wall / thread CPU seconds per stage of one worker thread (``acc``), charged by calls."""

    def __init__(self):
        self.acc: dict = {}
        self.restart()

    def restart(self) -> None:
        self.t = (time.perf_counter(), time.thread_time())

    def __call__(self, stage: str) -> None:
        now = (time.perf_counter(), time.thread_time())
        w, c = self.acc.get(stage, (0.0, 0.0))
        self.acc[stage] = (w + now[0] - self.t[0], c + now[1] - self.t[1])
        self.t = now


@dataclass(eq=False)
class _ChunkJob:
    """One chunk's shared work state for :meth:`ChunkSizer._worker` (guarded by ``cond``)."""

    pages: np.ndarray
    h: np.ndarray
    z: np.ndarray
    ids: np.ndarray
    hashed: bool
    release: bool
    bounds: list
    next: int = 0  # the next slice to hash
    hashing: int = 0  # slices being hashed now
    blocks: list = field(default_factory=list)  # compress blocks waiting (taken from the end)
    left: dict = field(default_factory=dict)  # slice -> compress blocks not yet done
    failed: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)


class ChunkSizer:
    """Compressed sizes of the pages of a stream, once per distinct content.

    :meth:`hash_and_size` hashes a chunk and returns every page's facts; ``sizer(pages, hashes,
    zero)`` does the same for a chunk already hashed (the hook for ``pagecore hash --compress
    ALG``, :func:`page_table_columns`). Either returns ``{algorithm: int32[k], "same_filled":
    bool[k]}``.

    How the work is split: a chunk is cut into slices handed to ``threads`` worker threads as
    they come free (no barrier between stages, so a thread the OS deschedules on a loaded machine
    does not hold the others up). Each slice is hashed, its hashes are looked up in the stream's
    :class:`ContentTable` under a lock, and only the contents new to the stream are read again:
    the Numba compressors and the same-filled test run in one pass over each
    (:func:`new_content_facts`, GIL released); zstd and lz4-pypi call their libraries per page.
    A content met again in a later slice takes the size computed for its first occurrence; the
    per-page columns are gathered once all slices of the chunk are done.
    """

    #: Pages per work slice: at least this many (per-slice overhead), at most ``_SLICE_MAX``.
    _SLICE_MIN = 256
    _SLICE_MAX = 2048
    #: New contents bunch up (on the shipped real dump three quarters of them lie in its last
    #: eighth), so a slice's new contents are split into one block per thread, which any thread
    #: takes when it comes free; blocks have at least this many contents
    _BLOCK_PAGES = 32

    def __init__(self, algorithms: Sequence[str], threads: int | None = None, key=None, release_mapped=False):
        self.algorithms = [check_algorithm(a) for a in algorithms]
        #: after a slice is done, drop its page-table entries if the pages are a read-only file
        #: mapping (:func:`_release_mapped`): the worker threads do it in parallel, and the
        #: reader's final ``munmap`` finds nothing left to tear down
        self.release_mapped = release_mapped
        self.threads = resolve_threads(threads)
        self.pool = _worker_pool(self.threads) if self.threads > 1 else None
        self.key = key
        self.table = ContentTable()
        self._lock = threading.Lock()
        # per content id: the same-filled flag and each algorithm's size (grown by doubling)
        self.same = np.zeros(1 << 12, np.bool_)
        self.size = {a: np.zeros(1 << 12, np.int32) for a in self.algorithms}
        self.stats = SizeStats(
            distinct_compressed={a: 0 for a in self.algorithms},
            nonzero_compressed={a: 0 for a in self.algorithms},
            compress_seconds={a: 0.0 for a in self.algorithms},
        )

    def close(self) -> None:
        self.pool = None  # the pool is shared (:func:`_worker_pool`); its idle threads stay for the next sizer

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _grow(self, n: int) -> None:
        if n > len(self.same):
            cap = 1 << (n - 1).bit_length()
            self.same = np.concatenate([self.same, np.zeros(cap - len(self.same), np.bool_)])
            self.size = {a: np.concatenate([v, np.zeros(cap - len(v), np.int32)]) for a, v in self.size.items()}

    def _hash_slice(self, job: _ChunkJob, i: int, lap) -> list:
        """Hash (unless already hashed) and look up slice ``i``; returns its compress blocks
        ``(slice, rows, first content id)`` for the contents new to the stream."""
        from pagecore.pages.hashing import hash_pages

        lo, hi = job.bounds[i]
        if not job.hashed:
            hash_pages(job.pages[lo:hi], key=self.key, threads=1, out=(job.h[lo:hi], job.z[lo:hi]))
            lap("hash")
        with self._lock:  # ids of new contents are handed out in order, under the lock
            n0 = len(self.table)
            got, rows = self.table.claim(job.h[lo:hi])
        job.ids[lo:hi] = got
        m = len(rows)
        if m:
            rows += lo
            lap.acc["new"] = lap.acc.get("new", 0) + m
            lap.acc["nonzero"] = lap.acc.get("nonzero", 0) + int((~job.z[rows]).sum())
        lap("dedupe")
        # one block per thread (of at least _BLOCK_PAGES): enough to share out a slice whose
        # contents are mostly new, few enough that per-call costs stay small next to the work
        nb = max(1, min(self.threads, m // self._BLOCK_PAGES))
        cuts = [b * m // nb for b in range(nb + 1)]
        return [(i, rows[cuts[k] : cuts[k + 1]], n0 + cuts[k]) for k in range(nb)] if m else []

    def _compress_block(self, job: _ChunkJob, rows: np.ndarray, id0: int, lap) -> None:
        """Same-filled flags and sizes of the new contents at ``rows`` (ids ``id0`` …)."""
        m = len(rows)
        same_done = False
        for a in self.algorithms:
            t0 = time.perf_counter()
            if a in _NUMBA_CODES:
                same, size = new_content_facts(job.pages, rows, a, not same_done, 1)
                if same is not None:
                    self.same[id0 : id0 + m] = same
                    same_done = True
            else:
                size = compressed_sizes(job.pages, a, 1, rows=rows)
            self.size[a][id0 : id0 + m] = size
            lap.acc[a] = lap.acc.get(a, 0.0) + time.perf_counter() - t0
        if not same_done:
            self.same[id0 : id0 + m] = new_content_facts(job.pages, rows, None, True, 1)[0]
        lap("compress")

    def _worker(self, job: _ChunkJob) -> dict:
        """Take work until the chunk is done: compress blocks first, else the next slice to
        hash; with neither, wait while another thread is still hashing (its new contents may
        be shared out). Returns this thread's busy wall / CPU seconds per stage and counts."""
        lap = _Lap()
        cond = job.cond
        try:
            while True:
                with cond:
                    while True:
                        if job.failed:
                            return lap.acc
                        if job.blocks:
                            work = job.blocks.pop()
                            break
                        if job.next < len(job.bounds):
                            work = job.next
                            job.next += 1
                            job.hashing += 1
                            break
                        if job.hashing == 0:
                            return lap.acc
                        cond.wait()
                lap.restart()
                if isinstance(work, int):  # a slice to hash
                    blocks = self._hash_slice(job, work, lap)
                    with cond:
                        job.hashing -= 1
                        job.left[work] = len(blocks)
                        job.blocks.extend(reversed(blocks))  # popped from the end: in order
                        cond.notify_all()
                    done = work if not blocks else None
                else:
                    i, rows, id0 = work
                    self._compress_block(job, rows, id0, lap)
                    with cond:
                        job.left[i] -= 1
                        done = i if job.left[i] == 0 else None
                if done is not None and job.release:  # the slice's pages are no longer read
                    lo, hi = job.bounds[done]
                    _release_mapped(job.pages[lo:hi])
                    lap("release")
        except BaseException:
            with cond:
                job.failed = True
                cond.notify_all()
            raise

    def _run(self, pages, h, z, hashed) -> dict[str, np.ndarray]:
        st = self.stats
        n = pages.shape[0]
        if pages.dtype != np.uint8 or not pages.flags.c_contiguous:
            pages = np.ascontiguousarray(pages).view(np.uint8).reshape(n, -1)
        ids = np.empty(n, np.int64)
        release = self.release_mapped and _is_readonly_file_view(pages)
        # room for every content this chunk can add, before any worker writes (no reallocation
        # while slices run); the table itself grows under the lock
        self._grow(len(self.table) + n)
        step = min(self._SLICE_MAX, max(self._SLICE_MIN, -(-n // (4 * self.threads))))
        bounds = [(lo, min(n, lo + step)) for lo in range(0, n, step)]
        job = _ChunkJob(pages, h, z, ids, hashed, release, bounds)
        if self.pool is None:
            parts = [self._worker(job)]
        else:
            futs = [self.pool.submit(self._worker, job) for _ in range(self.threads)]
            parts = [f.result() for f in futs]
        for acc in parts:
            for stage in ("hash", "dedupe", "compress", "release"):
                if stage in acc:
                    st.stages[stage][0] += acc[stage][0]
                    st.stages[stage][1] += acc[stage][1]
            for a in self.algorithms:
                if a in acc:
                    st.compress_seconds[a] += acc[a]
                st.distinct_compressed[a] += acc.get("new", 0)
                st.nonzero_compressed[a] += acc.get("nonzero", 0)
        c = st.clock()
        out = {a: self.size[a].take(ids) for a in self.algorithms}
        out["same_filled"] = self.same.take(ids)
        st.add("gather", c)
        return out

    def hash_and_size(self, pages: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(hashes uint64[k], zero bool[k], ``{algorithm: int32[k], "same_filled": bool[k]}``)
        of one chunk ``uint8[k, page_size]``, hashing with this sizer's key."""
        n = pages.shape[0]
        h = np.empty(n, np.uint64)
        z = np.empty(n, np.bool_)
        got = self._run(pages, h, z, hashed=False) if n else {a: np.zeros(0, np.int32) for a in self.algorithms}
        if not n:
            got["same_filled"] = np.zeros(0, np.bool_)
        return h, z, got

    def __call__(self, pages: np.ndarray, hashes: np.ndarray, zero: np.ndarray) -> dict[str, np.ndarray]:
        """``{algorithm: int32[k]}`` sizes and ``"same_filled": bool[k]`` for one chunk."""
        h = np.ascontiguousarray(hashes, np.uint64)
        z = np.ascontiguousarray(zero, np.bool_)
        if not len(h):
            return {**{a: np.zeros(0, np.int32) for a in self.algorithms}, "same_filled": np.zeros(0, np.bool_)}
        return self._run(pages, h, z, hashed=True)


def page_table_columns(
    sizer: ChunkSizer, pages: np.ndarray, hashes: np.ndarray, zero: np.ndarray
) -> dict[str, np.ndarray]:
    """Extra page-table columns for ``pagecore hash --compress ALG`` (one chunk).

    Returns ``{"csize_<alg>": uint16[k] per algorithm, "same_filled": bool[k]}``. Sizes above
    65535 cannot occur for 4 KiB pages (LZ4's worst case is 4096 + 4096/255 + 16).

    Wiring (for the lead): in ``ingest``, create ``sizer = ChunkSizer(args.compress)`` once,
    call this per chunk after hashing, append the columns to the record batch (schema fields
    from :func:`page_table_fields`) and record ``compress_algorithms`` in the metadata.
    """
    got = sizer(pages, hashes, zero)
    cols = {f"csize_{a}": got[a].astype(np.uint16) for a in sizer.algorithms}
    cols["same_filled"] = got["same_filled"]
    return cols


def page_table_fields(algorithms: Iterable[str]):
    """Arrow fields of the columns :func:`page_table_columns` adds."""
    import pyarrow as pa

    fields = [pa.field(f"csize_{check_algorithm(a)}", pa.uint16(), nullable=False) for a in algorithms]
    fields.append(pa.field("same_filled", pa.bool_(), nullable=False))
    return fields


def size_bound(algorithm: str, page_size: int = 4096) -> int:
    """The largest compressed size ``algorithm`` can give a page of ``page_size`` bytes.

    Each compressor's documented output bound: LZ4 ``LZ4_COMPRESSBOUND`` (n + n/255 + 16,
    lib/lz4), LZO1X-1 ``lzo1x_worst_compress`` plus lzo-rle's 2-byte header (:func:`lzo_worst`),
    zstd ``ZSTD_COMPRESSBOUND`` (n + n/256 + (128 KiB − n)/2048 below 128 KiB, frame header
    included). A stored size above it cannot have come from the compressor."""
    check_algorithm(algorithm)
    n = page_size
    if algorithm.startswith("lz4"):
        return n + n // 255 + 16
    if algorithm.startswith("lzo"):
        return lzo_worst(n)
    return n + (n >> 8) + (((128 << 10) - n) >> 11 if n < (128 << 10) else 0)


def check_size_columns(path, table, algorithm: str) -> None:
    """Refuse a page table whose ``csize_<algorithm>`` / ``same_filled`` columns cannot be true.

    ``table`` (pyarrow) holds ``hash``, ``zero``, ``csize_<algorithm>`` and, if the table has it,
    ``same_filled``; ``pagecore hash --compress`` writes them (:func:`page_table_columns`). Every
    page, zero and same-filled ones included, is stored with the size its compressor gave it, so
    a size must be an integer in [1, :func:`size_bound`]; no value may be null; a zero page is
    same-filled; one content (one hash) has one size and one same-filled flag. Each of these
    once gave ``pagecore compress`` a negative or impossible report with exit 0, or a traceback.

    Raises
    ------
    pagecore.errors.InputError
        Naming ``path`` and the first problem found.
    """
    import pyarrow as pa

    from pagecore.errors import InputError

    col = f"csize_{algorithm}"
    hint = f"re-run `pagecore hash --compress {algorithm}`"
    got = table.schema.field(col).type
    if not pa.types.is_integer(got):
        raise InputError(path, f"column {col!r} has type {got}", expected="integer byte counts (uint16)", hint=hint)
    names = [col] + (["same_filled"] if "same_filled" in table.column_names else [])
    for name in names:
        nulls = table.column(name).null_count
        if nulls:
            raise InputError(path, f"column {name!r} has {nulls:,} null values", hint=hint)
    size = table.column(col).to_numpy().astype(np.int64, copy=False)
    hi = size_bound(algorithm)
    bad = (size < 1) | (size > hi)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            path, f"column {col!r} holds {int(bad.sum()):,} impossible sizes (row {i:,}: {int(size[i]):,} bytes)",
            expected=f"a compressed size in 1..{hi:,} bytes ({algorithm}'s bound for a 4096-byte page)", hint=hint,
        )  # fmt: skip
    hashes = table.column("hash").to_numpy()
    ids, first = ContentTable(2 * len(hashes)).claim(hashes)
    lead = first[ids]  # each row's first row of the same content
    if (size != size[lead]).any():
        i = int(np.argmax(size != size[lead]))
        raise InputError(
            path, f"column {col!r} gives one content two sizes (rows {int(lead[i]):,} and {i:,}, "
            f"{int(size[lead[i]]):,} and {int(size[i]):,} bytes)", hint=hint,
        )  # fmt: skip
    if "same_filled" in table.column_names:
        got = table.schema.field("same_filled").type
        if not pa.types.is_boolean(got):
            raise InputError(path, f"column 'same_filled' has type {got}", expected="bool", hint=hint)
        same = table.column("same_filled").to_numpy(zero_copy_only=False).astype(np.bool_, copy=False)
        zero = table.column("zero").to_numpy(zero_copy_only=False).astype(np.bool_, copy=False)
        if (zero & ~same).any():
            i = int(np.argmax(zero & ~same))
            raise InputError(path, f"row {i:,} is a zero page not marked same_filled", hint=hint)
        if (same != same[lead]).any():
            i = int(np.argmax(same != same[lead]))
            raise InputError(
                path, f"column 'same_filled' gives one content two values (rows {int(lead[i]):,} and {i:,})",
                hint=hint,
            )  # fmt: skip


def check_sized_page_table(path, algorithm: str):
    """Refuse a page table ``pagecore compress`` cannot trust, with one line naming the problem;
    return what it read.

    The checks of :func:`pagecore.pages.tables.read_page_tables` on the table alone (columns,
    types, nulls, row count against the recorded ``pages``, ``page_size`` 4096, the zero flags,
    each frame once), then, if it carries ``csize_<algorithm>``, :func:`check_size_columns`.
    Returns the checked table (``vm``, ``gpfn``, ``hash``, ``zero`` and the size columns) when it
    carries the sizes, else None (its pages are read again from its dump): each column is read
    once."""
    import pyarrow.parquet as pq

    from pagecore.pages.tables import read_page_tables

    table = read_page_tables([path])
    names = pq.ParquetFile(path).schema_arrow.names
    col = f"csize_{algorithm}"
    if col not in names:
        return None
    sizes = pq.read_table(path, columns=[col] + (["same_filled"] if "same_filled" in names else []))
    for name in sizes.column_names:
        table = table.append_column(sizes.schema.field(name), sizes.column(name))
    check_size_columns(path, table, algorithm)
    return table


# ---------------------------------------------------------------------------------- streams
class PageSizes:
    """Per-page facts of one or more page sources, ready for :mod:`pagecore.sharing.compress`.

    ``frame`` (a pandas DataFrame) has the columns ``vm`` (categorical), ``gpfn`` (uint64),
    ``hash`` (uint64), ``zero`` (bool), ``same_filled`` (bool) and ``csize_<alg>`` (int32) per
    algorithm. Under sampling only sampled pages are rows and ``sample_fraction`` < 1 (pages
    seen in total: ``stats.pages``).

    The same facts as plain arrays: ``columns`` (the same names, with ``vm`` as int codes into
    ``vm_names``). :func:`page_sizes` makes the arrays and builds ``frame`` only when it is
    first asked for (the report of ``pagecore compress`` reads the arrays: building the frame
    and reading it back cost more than the models themselves on the shipped real dump); a
    ``PageSizes`` made from a frame derives the arrays from it the same way.
    """

    def __init__(
        self,
        frame=None,
        algorithms: Sequence[str] = (),
        stats: SizeStats | None = None,
        sample_fraction: float = 1.0,
        vm_pages: dict | None = None,
        *,
        columns: dict | None = None,
        vm_names: Sequence[str] | None = None,
    ):
        if frame is None and columns is None:
            raise ValueError("PageSizes needs a frame or columns")
        self._frame = frame
        self._columns = dict(columns) if columns is not None else None
        self._vm_names = list(vm_names) if vm_names is not None else None
        self.algorithms = list(algorithms)
        self.stats = stats if stats is not None else SizeStats()
        self.sample_fraction = sample_fraction
        self.vm_pages = dict(vm_pages or {})  # vm -> pages in the source (all, not just sampled)

    def __len__(self) -> int:
        return len(self._frame) if self._columns is None else len(self._columns["hash"])

    @property
    def frame(self):
        """The per-page facts as a pandas DataFrame (``vm`` categorical, in ``vm_names`` order)."""
        if self._frame is None:
            import pandas as pd

            data = dict(self._columns)
            data["vm"] = (
                pd.Categorical.from_codes(data["vm"], categories=self._vm_names)
                if self._vm_names
                else pd.Categorical([])
            )
            self._frame = pd.DataFrame(data)
        return self._frame

    @frame.setter
    def frame(self, value) -> None:
        self._frame, self._columns, self._vm_names = value, None, None

    def _from_frame(self) -> None:
        import pandas as pd

        f = self._frame
        vm = f["vm"]
        if isinstance(vm.dtype, pd.CategoricalDtype):
            codes = vm.cat.codes.to_numpy(np.int64)
            names = [str(c) for c in vm.cat.categories]
        else:
            codes, uniq = pd.factorize(vm.astype(str), sort=True)
            codes, names = codes.astype(np.int64), [str(u) for u in uniq]
        cols = {"vm": codes}
        for c in f.columns:
            if c != "vm":
                cols[c] = f[c].to_numpy()
        self._columns, self._vm_names = cols, names

    @property
    def columns(self) -> dict:
        """``{name: numpy array}`` of the frame's columns; ``vm`` as int codes into :attr:`vm_names`."""
        if self._columns is None:
            self._from_frame()
        return self._columns

    @property
    def vm_names(self) -> list[str]:
        """The VM names the ``vm`` codes of :attr:`columns` index (category order of ``frame``)."""
        if self._columns is None:
            self._from_frame()
        return self._vm_names


def sample_mask(n: int, start: int, fraction: float, seed: int) -> np.ndarray:
    """Bernoulli(fraction) choice of pages start..start+n-1, independent of chunking."""
    if fraction >= 1.0:
        return np.ones(n, np.bool_)
    # a counter-based hash of (seed, page index) so the sample does not depend on chunk size:
    # SplitMix64 of the (index + 1)-th state (without the + 1, page 0 hashed to 0 under seed 0
    # and was in every default sample, whatever the fraction)
    idx = np.arange(start, start + n, dtype=np.uint64) + np.uint64(1)
    x = idx * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53) < fraction


def _map_in_workers(reader) -> bool:
    """Let the worker threads map a memory-mapped reader's pages as they hash them.

    A :class:`pagecore.dumps.base.MmapReader` maps each chunk with ``MADV_POPULATE_READ`` on the
    thread that iterates it, before any page is hashed: on the shipped real dump that was a
    fifth of the CPU time of the whole run, all on one core. Without it, the first touch
    (the hash kernel, on every worker thread at once) faults the pages in, 64 KiB per fault
    (``fault_around_bytes``), which measured cheaper as well. The read-ahead hint for the next
    chunk stays. Only for a dump that is in the page cache (:func:`_file_cached`): one that is
    not was read 1.3-2 times slower by the two threads' faults than by the reader's populate.
    Returns whether the reader was switched."""
    from pagecore.dumps.base import MmapReader

    if not isinstance(reader, MmapReader):
        return False
    if not _file_cached(reader.path):
        # a dump that is not all in the page cache is read faster by the reader's populate (one
        # thread reading ahead in order) than by two threads' page faults at two places
        return False
    reader.populate_on_read(False)  # the read-ahead hint stays
    return True


_NR_CACHESTAT = 451  # cachestat(2), Linux 6.5+: the same number on every architecture
_cachestat = None


def _file_cached(path, probes: int = 8, probe_bytes: int = 1 << 16) -> bool:
    """True if the file looks wholly in the page cache: ``probes`` ranges of ``probe_bytes``
    spread over it are (``cachestat(2)``; counting a whole 44 MB dump's pages took 0.5-1 ms, the
    probes take about a tenth of that). False if a probed page is not cached, or if the kernel
    cannot tell (older than 6.5, or not Linux). Only speed depends on it."""
    global _cachestat
    import ctypes
    import sys

    if _cachestat is None:
        try:
            if not sys.platform.startswith("linux"):
                raise OSError
            f = ctypes.CDLL(None, use_errno=True).syscall
            f.restype = ctypes.c_long
            _cachestat = f
        except (OSError, AttributeError):
            _cachestat = False
    if not _cachestat:
        return False
    try:
        size = os.stat(path).st_size
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        ps = os.sysconf("SC_PAGE_SIZE")
        if size <= probes * probe_bytes:
            spans = [(0, size)]
        else:
            step = (size - probe_bytes) // (probes - 1)
            spans = [(k * step // ps * ps, probe_bytes) for k in range(probes)]
        rng = (ctypes.c_uint64 * 2)()  # struct cachestat_range: off, len
        st = (ctypes.c_uint64 * 5)()  # struct cachestat: nr_cache, nr_dirty, nr_writeback, nr_evicted, …
        for off, n in spans:
            rng[0], rng[1] = off, n
            if _cachestat(_NR_CACHESTAT, fd, ctypes.byref(rng), ctypes.byref(st), 0) != 0:
                return False
            if int(st[0]) < -(-min(n, size - off) // ps):
                return False
    finally:
        os.close(fd)
    return True


def page_sizes(
    sources: Sequence[tuple[str, Iterable]],
    algorithms: Sequence[str],
    *,
    threads: int | None = None,
    sample: float | None = None,
    seed: int = 0,
) -> PageSizes:
    """Stream page chunks and compute every per-page fact the compression models need.

    Parameters
    ----------
    sources : sequence of (vm name, iterable of PageChunk-like objects with ``gpfn``, ``pages``)
        E.g. ``[("vm1", open_dump(path))]``. Chunks are processed and dropped.
    algorithms : sequence of str
    threads : int or None
        Threads for hashing and compressing; None = all.
    sample : float, optional
        Fraction in (0, 1] of pages to examine (estimate mode); pages are chosen by a seeded
        hash of their position, so the choice does not depend on the chunk size.
    seed : int

    Returns
    -------
    PageSizes
    """
    frac = 1.0 if sample is None else float(sample)
    if not (0.0 < frac <= 1.0):
        raise ConfigError(f"--sample must be a fraction in (0, 1], got {sample!r}")
    t0 = time.perf_counter()
    parts = []
    vm_pages: dict[str, int] = {}
    vm_codes: dict[str, int] = {}
    with ChunkSizer(algorithms, threads, release_mapped=frac >= 1.0) as sizer:
        st = sizer.stats
        seen = 0
        for vm, chunks in sources:
            vm_pages.setdefault(vm, 0)
            if frac >= 1.0:
                _map_in_workers(chunks)
            it = iter(chunks)
            while True:
                c = st.clock()
                chunk = next(it, None)
                c = st.add("read", c)
                if chunk is None:
                    break
                pages = chunk.pages
                k = pages.shape[0]
                if k == 0:
                    continue
                gpfn = np.array(chunk.gpfn, np.uint64)  # a copy: the columns outlive the chunk
                if frac < 1.0:
                    m = sample_mask(k, seen, frac, seed)
                    pages = np.ascontiguousarray(pages[m])
                    gpfn = gpfn[m]
                seen += k
                vm_pages[vm] += k
                st.pages += k
                if pages.shape[0] == 0:
                    continue
                h, z, got = sizer.hash_and_size(pages)
                cols = {"vm": np.full(len(gpfn), vm_codes.setdefault(vm, len(vm_codes)), np.int32)}
                cols.update(gpfn=gpfn, hash=h, zero=z, same_filled=got["same_filled"])
                for a in sizer.algorithms:
                    cols[f"csize_{a}"] = got[a]
                parts.append(cols)
                st.pages_sampled += len(gpfn)
        stats = sizer.stats
    c = stats.clock()
    names = ["vm", "gpfn", "hash", "zero", "same_filled"] + [f"csize_{a}" for a in algorithms]
    dtypes = [np.int32, np.uint64, np.uint64, np.bool_, np.bool_] + [np.int32] * len(algorithms)
    data = {
        c: (parts[0][c] if len(parts) == 1 else np.concatenate([p[c] for p in parts])) if parts else np.zeros(0, t)
        for c, t in zip(names, dtypes, strict=True)
    }
    cats = sorted(vm_codes, key=vm_codes.get)
    stats.add("frame", c)
    stats.wall_seconds = time.perf_counter() - t0
    return PageSizes(
        algorithms=list(algorithms),
        stats=stats,
        sample_fraction=frac,
        vm_pages=vm_pages,
        columns=data,
        vm_names=cats,
    )


def default_threads() -> int:
    """All cores this process may use."""
    return usable_cpus()


__all__ = [
    "ALGORITHMS",
    "ChunkSizer",
    "ContentTable",
    "PageSizes",
    "check_size_columns",
    "check_sized_page_table",
    "compressed_sizes",
    "lz4_kernel_compress",
    "lz4_kernel_size",
    "lzo1x_1_compress",
    "new_content_facts",
    "page_sizes",
    "page_table_columns",
    "page_table_fields",
    "same_filled",
    "sample_mask",
    "size_bound",
]
