"""GIL-free page decoding for kdump files: zlib via the system libz, snappy, lzo, zstd, raw pages.

Calling ``zlib.decompress`` once per 4 KiB page costs more in Python overhead and GIL
hand-offs than the inflate itself, so a thread pool of such calls runs *slower* on two
threads than on one (measured by ``python -m pagecore.bench.ingest``). These Numba kernels
decode a whole batch of pages in one ``nogil`` call: zlib pages through ``uncompress`` from
the C library that CPython's own ``zlib`` module links (found with ctypes), snappy pages by
:func:`unsnappy_pages` (a snappy decoder written here: cramjam's is one Python call per page
under the GIL, so two threads decoded no faster than one), lzo pages through
``lzo1x_decompress_safe`` of the system liblzo2 (lzokay holds the GIL) and zstd pages through
``ZSTD_decompressDCtx`` of the zstd python-zstandard carries (one Python call per page cost
about a microsecond beside the codec: issue 18), raw pages by copy, the shared zero page's rows
by a fill. Batches then run in parallel on plain Python threads. The lzo and zstd kernels accept
only plain one-page streams and leave the rest (:data:`LEFT_TO_PYTHON`) to the reader's Python
codecs, whose verdicts and messages stand.

The kernels are serial (no ``prange``): several of them run at once on pool threads while the
caller's parallel hash kernel runs, and Numba's threading layers do not all allow parallel
regions launched concurrently from different threads. The zlib kernel is compiled without
``cache=True`` because it calls its ctypes function as a global (compiled in as a
process-specific address); the lzo and zstd kernels take theirs as arguments and are cached.

Status codes written per page: 0 ok; zlib's own negative codes (``Z_DATA_ERROR`` -3,
``Z_BUF_ERROR`` -5, ``Z_MEM_ERROR`` -4); -100 the page inflated (or a snappy stream declares
or decodes) to the wrong length; :data:`SNAPPY_CORRUPT` a snappy stream that is not valid;
:data:`LEFT_TO_PYTHON` an lzo or zstd page left to the Python codec.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

import numpy as np
from numba import njit

from pagecore._intrinsics import address, ccall2, ccall3, ccall4, ccall5

_LIB = None
for _name in (ctypes.util.find_library("z"), "libz.so.1"):
    if not _name:
        continue
    try:
        _LIB = ctypes.CDLL(_name)
        break
    except OSError:
        continue

HAVE_ZLIB = _LIB is not None and hasattr(_LIB, "uncompress")

if HAVE_ZLIB:
    _uncompress = _LIB.uncompress
    # int uncompress(Bytef *dest, uLongf *destLen, const Bytef *source, uLong sourceLen);
    # pointers are passed as integers (addresses) so Numba can type them
    _uncompress.restype = ctypes.c_int
    _uncompress.argtypes = [ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_ulong]

    _UNCOMPRESS = address(_uncompress)

    @njit(nogil=True, boundscheck=False, cache=True)
    def _inflate(uncompress, buf, offs, sizes, idx, out, status):
        page = out.shape[1]
        dl = np.empty(1, np.uint64)
        base = buf.ctypes.data
        for j in range(idx.shape[0]):
            i = idx[j]
            dl[0] = page
            rc = np.int32(ccall4(uncompress, out[i].ctypes.data, dl.ctypes.data, base + offs[i], sizes[i]))
            if rc == 0 and dl[0] != page:
                rc = -100
            status[i] = rc

    def inflate_pages(buf, offs, sizes, idx, out, status) -> None:
        """Inflate zlib pages ``idx`` (blob at ``buf[offs[i]:offs[i]+sizes[i]]``) into ``out[i]``."""
        if len(idx):
            _inflate(_UNCOMPRESS, buf, offs, sizes, idx, out, status)


def _cdll(*names):
    """The first of ``names`` (file names, or None) that loads, or None."""
    for name in names:
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


#: Status of a page the libzstd / liblzo2 kernels leave to the Python codec (zstandard, lzokay):
#: anything but a plain one-page stream (errors, frames with a dictionary, a window over
#: :data:`ZSTD_MAX_WINDOW`, skippable frames, trailing bytes, another length). The reader decodes
#: such pages again with the Python codec, whose verdict and message stand, so these kernels only
#: ever accept pages that codec accepts too (tests/test_codec_kernels.py).
LEFT_TO_PYTHON = -102
#: zstd frames for one page need no more window than this (the reader's Python codec refuses more).
ZSTD_MAX_WINDOW = 1 << 20
_ZSTD_UNKNOWN = np.uint64(0xFFFFFFFFFFFFFFFF)  # ZSTD_CONTENTSIZE_UNKNOWN


def _zstd_lib():
    """The zstd library the reader's Python codec runs: python-zstandard links its own copy of zstd,
    and its cffi module exports it. Not the system libzstd: corruption checks differ between zstd
    versions (1.5.4 decodes a damaged frame that 1.5.7 refuses), and the kernel must never accept
    a page the Python codec refuses. None (the Python codec decodes every page) if that module is
    missing or its zstd is not the one ``zstandard`` reports."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("zstandard._cffi")
        import zstandard  # the version it runs
    except ImportError:
        return None
    lib = _cdll(spec.origin) if spec is not None else None
    if lib is None or not hasattr(lib, "ZSTD_versionNumber"):
        return None
    major, minor, release = zstandard.ZSTD_VERSION
    return lib if lib.ZSTD_versionNumber() == major * 10000 + minor * 100 + release else None


_ZSTD = _zstd_lib()
HAVE_ZSTD = (
    _ZSTD is not None
    and all(
        hasattr(_ZSTD, f)
        for f in ("ZSTD_createDCtx", "ZSTD_freeDCtx", "ZSTD_getFrameHeader", "ZSTD_findFrameCompressedSize")
    )
    and hasattr(_ZSTD, "ZSTD_decompressDCtx")
)

if HAVE_ZSTD:
    _sz = ctypes.c_size_t
    _zstd_create = _ZSTD.ZSTD_createDCtx
    _zstd_create.restype, _zstd_create.argtypes = _sz, []
    _zstd_free = _ZSTD.ZSTD_freeDCtx
    _zstd_free.restype, _zstd_free.argtypes = _sz, [_sz]
    # size_t ZSTD_getFrameHeader(ZSTD_frameHeader *h, const void *src, size_t n): 0 when the header is
    # whole; h: u64 frameContentSize, u64 windowSize, u32 blockSizeMax, u32 frameType, u32 headerSize,
    # u32 dictID, ... (zstd.h, stable since 1.3)
    _zstd_header = _ZSTD.ZSTD_getFrameHeader
    _zstd_header.restype, _zstd_header.argtypes = _sz, [_sz, _sz, _sz]
    _zstd_frame_size = _ZSTD.ZSTD_findFrameCompressedSize
    _zstd_frame_size.restype, _zstd_frame_size.argtypes = _sz, [_sz, _sz]
    _zstd_decompress = _ZSTD.ZSTD_decompressDCtx
    _zstd_decompress.restype, _zstd_decompress.argtypes = _sz, [_sz, _sz, _sz, _sz, _sz]

    _ZSTD_FNS = np.array([address(f) for f in (_zstd_header, _zstd_frame_size, _zstd_decompress)], np.uint64)

    # the library functions are passed as addresses (see pagecore._intrinsics): the kernel is cached (compiling
    # it cost `pagecore hash` ~0.4-0.8 s at every start) and cheap to call
    @njit(nogil=True, boundscheck=False, cache=True)
    def _unzstd(ctx, fns, buf, offs, sizes, idx, out, status):
        _zstd_header, _zstd_frame_size, _zstd_decompress = fns[0], fns[1], fns[2]
        page = np.uint64(out.shape[1])
        hdr = np.zeros(8, np.uint64)
        hp = hdr.ctypes.data
        base = buf.ctypes.data
        for j in range(idx.shape[0]):
            i = idx[j]
            src = base + offs[i]
            n = np.uint64(sizes[i])
            status[i] = LEFT_TO_PYTHON
            if ctx == 0 or ccall3(_zstd_header, hp, src, n) != 0:
                continue
            content, window = hdr[0], hdr[1]
            frame_type, dict_id = hdr[2] >> np.uint64(32), hdr[3] >> np.uint64(32)
            if frame_type != 0 or dict_id != 0 or window > ZSTD_MAX_WINDOW:
                continue
            if content != page and content != _ZSTD_UNKNOWN:
                continue
            if ccall2(_zstd_frame_size, src, n) != n:  # exactly one frame, nothing after it
                continue
            if ccall5(_zstd_decompress, ctx, out[i].ctypes.data, page, src, n) == page:
                status[i] = 0

    class _ZstdContext:
        """A zstd decompression context (``ZSTD_DCtx *``), freed with its owner. Creating and
        freeing one per kernel call cost about 70 µs here (measured: 8-page calls went from 35 to
        26 µs a page with one context per thread; the rest of the 35 was the dispatcher typing
        ctypes-function arguments, see :mod:`pagecore._intrinsics`), so each thread keeps one (a
        context decodes any number of independent frames, each call starting a new one)."""

        def __init__(self) -> None:
            self.ptr = _zstd_create()

        def __del__(self, _free=_zstd_free) -> None:  # bound now: module globals may be gone at exit
            if self.ptr:
                _free(self.ptr)
                self.ptr = 0

    _zstd_tls = threading.local()

    def _zstd_ctx() -> int:
        """This thread's zstd decompression context (0 if zstd could not allocate one)."""
        c = getattr(_zstd_tls, "ctx", None)
        if c is None or not c.ptr:
            c = _zstd_tls.ctx = _ZstdContext()
        return c.ptr

    def unzstd_pages(buf, offs, sizes, idx, out, status) -> None:
        """Decode zstd pages ``idx`` (one frame at ``buf[offs[i]:offs[i]+sizes[i]]``) into ``out[i]``
        with python-zstandard's zstd (:func:`_zstd_lib`); ``status[i]`` 0, or :data:`LEFT_TO_PYTHON`
        (``out[i]`` garbage)."""
        if len(idx):
            _unzstd(
                _zstd_ctx(),
                _ZSTD_FNS,
                buf,
                offs,
                sizes,
                idx,
                out,
                status,
            )


_LZO = _cdll(ctypes.util.find_library("lzo2"), "liblzo2.so.2")
HAVE_LZO = _LZO is not None and hasattr(_LZO, "lzo1x_decompress_safe")

if HAVE_LZO:
    # int lzo1x_decompress_safe(const lzo_bytep src, lzo_uint src_len, lzo_bytep dst, lzo_uintp dst_len,
    # lzo_voidp wrkmem): 0 (LZO_E_OK) only for a stream that ends with its end marker exactly at
    # src_len, with every match inside the output; *dst_len is then the output's length
    _lzo_decompress = _LZO.lzo1x_decompress_safe
    _lzo_decompress.restype = ctypes.c_int
    _lzo_decompress.argtypes = [ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t]

    _LZO_DECOMPRESS = address(_lzo_decompress)

    @njit(nogil=True, boundscheck=False, cache=True)  # the library function an address: see pagecore._intrinsics
    def _unlzo(lzo_decompress, buf, offs, sizes, idx, out, status):
        page = out.shape[1]
        dl = np.empty(1, np.uint64)
        base = buf.ctypes.data
        probe = np.empty(page + 8, np.uint8)
        sink = np.empty(page, np.uint8)
        for j in range(idx.shape[0]):
            i = idx[j]
            o, n = offs[i], sizes[i]
            status[i] = LEFT_TO_PYTHON
            # liblzo2 ends a stream at any M4 instruction of distance 0x4000, whatever its length;
            # lzokay only at the canonical 11 00 00 (length 3). Accept only streams ending in it:
            if n < 4 or n > page or buf[o + n - 3] != 0x11 or buf[o + n - 2] != 0 or buf[o + n - 1] != 0:
                continue
            dl[0] = page
            rc = np.int32(ccall5(lzo_decompress, base + o, n, out[i].ctypes.data, dl.ctypes.data, 0))
            if rc != 0 or dl[0] != page:
                continue
            # ... and as an instruction of its own: after 10 or a 00 the 11 may be the last length
            # byte of an extended-length end (10 00.. 11 00 00, which lzokay refuses). Decode the
            # stream again with a 00 inserted before the 11: an extended length just grows and still
            # ends the stream, while after a whole instruction (the page already full) a 00 starts
            # one that writes past the page
            if buf[o + n - 4] == 0 or buf[o + n - 4] == 0x10:
                for k in range(n - 3):
                    probe[k] = buf[o + k]
                probe[n - 3] = 0
                probe[n - 2] = 0x11
                probe[n - 1] = 0
                probe[n] = 0
                dl[0] = page
                rc = np.int32(ccall5(lzo_decompress, probe.ctypes.data, n + 1, sink.ctypes.data, dl.ctypes.data, 0))
                if rc == 0:
                    continue
            status[i] = 0

    def unlzo_pages(buf, offs, sizes, idx, out, status) -> None:
        """Decode LZO1X pages ``idx`` (``buf[offs[i]:offs[i]+sizes[i]]``) into ``out[i]`` with the
        system liblzo2; ``status[i]`` 0, or :data:`LEFT_TO_PYTHON` (``out[i]`` garbage)."""
        if len(idx):
            _unlzo(_LZO_DECOMPRESS, buf, offs, sizes, idx, out, status)


@njit(nogil=True, boundscheck=False, cache=True)
def _copy(buf, offs, idx, out):
    # a loop over unsigned indices: Numba's slice assignment (``out[i] = buf[o : o + page]``)
    # compiled to a byte-by-byte copy with a clamp per byte (1.5 GB/s, a quarter of a
    # snappy-flat read's CPU, issue 18); this one vectorizes (6-7 GB/s, memory-bound)
    page = np.uint64(out.shape[1])
    for j in range(idx.shape[0]):
        i = idx[j]
        o = np.uint64(offs[i])
        row = out[i]
        for k in range(page):
            row[k] = buf[o + k]


#: Status of a snappy page whose stream is invalid (cut short, a copy before the start of the
#: page or with offset 0, an element running past the page, a bad length varint).
SNAPPY_CORRUPT = -101
SNAPPY_BAD_LENGTH = -100


@njit(nogil=True, boundscheck=False, cache=True, inline="always")
def _copy_short(dst, o, src, p, n):
    """``dst[o : o + n] = src[p : p + n]`` for a few bytes, forward (unsigned indices: Numba adds
    no negative-index branch, so the loops stay tight and vectorize)."""
    o, p = np.uint64(o), np.uint64(p)
    for k in range(np.uint64(n)):
        dst[o + k] = src[p + k]


@njit(nogil=True, boundscheck=False, cache=True, inline="always")
def _copy16(dst, o, src, p):
    """``dst[o + k] = src[p + k]`` for k = 0..15, forward, byte by byte: a fixed count compiles
    to straight-line code. Snappy elements shorter than 16 bytes copy 16 and let the next
    element overwrite the rest (the caller checks both ranges have room)."""
    o, p = np.uint64(o), np.uint64(p)
    for k in range(16):
        dst[o + k] = src[p + k]


@njit(nogil=True, boundscheck=False, cache=True)
def _copy_long(dst, o, src, p, n):
    """As :func:`_copy_short` for longer runs (not inlined: a vectorized loop with alias checks)."""
    o, p = np.uint64(o), np.uint64(p)
    for k in range(np.uint64(n)):
        dst[o + k] = src[p + k]


@njit(nogil=True, boundscheck=False, cache=True)
def _unsnappy(buf, start, n, dst):
    """Decode the raw snappy stream ``buf[start : start + n]`` into ``dst`` (one page); return
    0, :data:`SNAPPY_BAD_LENGTH` or :data:`SNAPPY_CORRUPT`. Strict as the reference decoder
    (cramjam's ``snap``): the declared length must be the page size, every element must lie
    inside the input and the page, a copy's offset must be 1..bytes written so far, and the
    stream must end exactly where the page does. Every index is checked before use."""
    page = dst.shape[0]
    end = start + n
    p = start
    length = 0
    shift = 0
    while True:  # the uncompressed length, a little-endian base-128 varint of at most 5 bytes
        if p >= end or shift > 28:
            return SNAPPY_CORRUPT
        b = np.int64(buf[p])
        p += 1
        length |= (b & 0x7F) << shift
        if b < 128:
            break
        shift += 7
    if length != page:
        return SNAPPY_BAD_LENGTH
    o = 0
    while p < end:
        tag = np.int64(buf[p])
        p += 1
        kind = tag & 3
        if kind == 0:  # literal: length - 1 in the tag, or in the 1-4 bytes after it
            ln = (tag >> 2) + 1
            if ln > 60:
                nb = ln - 60
                if nb > end - p:
                    return SNAPPY_CORRUPT
                v = np.int64(0)
                for k in range(nb):
                    v |= np.int64(buf[p + k]) << (8 * k)
                p += nb
                ln = v + 1
            if ln > end - p or ln > page - o:
                return SNAPPY_CORRUPT
            if ln <= 16 and o + 16 <= page and p + 16 <= buf.shape[0]:
                _copy16(dst, o, buf, p)
            elif ln <= 16:
                _copy_short(dst, o, buf, p, ln)
            else:
                _copy_long(dst, o, buf, p, ln)
            o += ln
            p += ln
            continue
        if kind == 1:  # copy, 3-bit length - 4 and 11-bit offset
            if p >= end:
                return SNAPPY_CORRUPT
            ln = 4 + ((tag >> 2) & 7)
            off = ((tag >> 5) << 8) | np.int64(buf[p])
            p += 1
        elif kind == 2:  # copy, 6-bit length - 1 and 16-bit offset
            if 2 > end - p:
                return SNAPPY_CORRUPT
            ln = (tag >> 2) + 1
            off = np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)
            p += 2
        else:  # copy, 6-bit length - 1 and 32-bit offset
            if 4 > end - p:
                return SNAPPY_CORRUPT
            ln = (tag >> 2) + 1
            off = (
                np.int64(buf[p])
                | (np.int64(buf[p + 1]) << 8)
                | (np.int64(buf[p + 2]) << 16)
                | (np.int64(buf[p + 3]) << 24)
            )
            p += 4
        if off == 0 or off > o or ln > page - o:
            return SNAPPY_CORRUPT
        if ln <= 16 and o + 16 <= page:  # the common case; forward byte by byte, so any offset
            _copy16(dst, o, dst, o - off)
            o += ln
            continue
        if off >= ln and ln <= 16:
            _copy_short(dst, o, dst, o - off, ln)
            o += ln
            continue
        if off == 1:  # a run of one byte
            v = dst[o - 1]
            for k in range(np.uint64(o), np.uint64(o + ln)):
                dst[k] = v
            o += ln
            continue
        # where off < ln the copy reads bytes it writes (a repeated pattern): copy in pieces no
        # longer than the distance back to the source, which doubles with every piece
        src = o - off
        while ln > 0:
            m = min(o - src, ln)
            _copy_long(dst, o, dst, src, m)
            o += m
            ln -= m
    if o != page:
        return SNAPPY_BAD_LENGTH
    return 0


@njit(nogil=True, boundscheck=False, cache=True)
def _unsnappy_batch(buf, offs, sizes, idx, out, status):
    for j in range(idx.shape[0]):
        i = idx[j]
        status[i] = _unsnappy(buf, offs[i], sizes[i], out[i])


def unsnappy_pages(buf, offs, sizes, idx, out, status) -> None:
    """Decode snappy pages ``idx`` (raw snappy stream at ``buf[offs[i]:offs[i]+sizes[i]]``, which
    the caller has checked lies inside ``buf``) into ``out[i]``; ``status[i]`` is 0 or the
    failure (module docstring). A failed page's ``out[i]`` holds garbage."""
    if len(idx):
        _unsnappy_batch(buf, offs, sizes, idx, out, status)


def copy_pages(buf, offs, idx, out) -> None:
    """Copy raw pages ``idx`` (at ``buf[offs[i]:offs[i]+4096]``) into ``out[i]``."""
    if len(idx):
        _copy(buf, offs, idx, out)


@njit(nogil=True, boundscheck=False, cache=True)
def _zero(idx, out):
    page = np.uint64(out.shape[1])
    for j in range(idx.shape[0]):
        row = out[idx[j]]
        for k in range(page):  # compiled to a memset
            row[k] = 0


def zero_pages(idx, out) -> None:
    """Fill rows ``idx`` of ``out`` with zero bytes (pages that point at a dump's shared zero page:
    nothing to read)."""
    if len(idx):
        _zero(idx, out)


@njit(nogil=True, boundscheck=False, cache=True)
def _unpack_descs(words, offs, sizes, flags):
    for i in range(offs.shape[0]):
        offs[i] = words[3 * i]
        w = words[3 * i + 1]  # size (low 32 bits) and flags (high 32 bits), little-endian
        sizes[i] = w & 0xFFFFFFFF
        flags[i] = (w >> 32) & 0xFFFFFFFF


def unpack_descs(raw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``offset``, ``size`` and ``flags`` (each ``int64[k]``) of ``k`` little-endian kdump ``page_desc``
    records (24 bytes: i64 offset, u32 size, u32 flags, u64 page_flags) in ``raw`` (``uint8[24 k]``,
    e.g. a view of the mapped file), read in one pass: a copy of the table and three strided
    ``astype`` passes cost a kdump read ~0.1 ms per 16384-page chunk (issue 18)."""
    raw = np.asarray(raw)
    if raw.ndim != 1 or raw.dtype != np.uint8 or raw.shape[0] % 24:
        raise ValueError(f"page descriptors must be uint8[24 k], got {raw.dtype}{raw.shape}")
    k = raw.shape[0] // 24
    offs, sizes, flags = np.empty(k, np.int64), np.empty(k, np.int64), np.empty(k, np.int64)
    if k:
        words = raw.view("<i8") if raw.ctypes.data % 8 == 0 else raw.copy().view("<i8")
        _unpack_descs(words, offs, sizes, flags)
    return offs, sizes, flags


#: Row classes of :func:`classify`: the decoder a chunk's row goes to (:data:`C_NONE`: a bad row).
C_ZERO, C_RAW, C_ZLIB, C_SNAPPY, C_LZO, C_ZSTD, C_SPLIT, C_PY, C_NONE = range(9)
N_CLASSES = C_NONE
# per-row status codes, as pagecore.dumps.kdump names them (kdump imports this module lazily;
# tests/test_kdump_classify.py checks the two agree)
_NOT_DONE, _BAD_FLAG, _BAD_RANGE, _BAD_RAW_SIZE = 1, 2, 3, 4
_FLAG_ZLIB, _FLAG_LZO, _FLAG_SNAPPY, _FLAG_ZSTD = 0x1, 0x2, 0x4, 0x20


@njit(nogil=True, boundscheck=False, cache=True)
def _classify(
    offs,
    sizes,
    flags,
    fileoffs,
    whole,
    uncovered,
    allowed,
    kflags,
    zero_page,
    src_size,
    bs,
    step,
    status,
    order,
    cstart,
    cuts,
    busy,
    span,
):
    k = offs.shape[0]
    cls = np.empty(k, np.int8)
    count = np.zeros(N_CLASSES, np.int64)
    have_span = False
    r, next_range = -1, 0  # the range of row i, and the first row of the next one (no division per row)
    for i in range(k):
        if i == next_range:
            r += 1
            next_range += step
        f, n, o = flags[i], sizes[i], offs[i]
        c = C_NONE
        st = _NOT_DONE
        if (f & ~allowed) != 0 or (f & (f - 1)) != 0:
            st = _BAD_FLAG
        elif n <= 0 or n > bs or o <= 0 or o > src_size - n or uncovered[i]:
            st = _BAD_RANGE
        elif f == 0 and n != bs:
            st = _BAD_RAW_SIZE
        elif f == 0 and zero_page >= 0 and o == zero_page:
            st = 0
            c = C_ZERO
        elif f != 0 and (kflags & f) == 0:
            c = C_PY
        elif not whole[i]:
            c = C_SPLIT
        elif f == 0:
            st = 0  # a copy cannot fail once its range is checked
            c = C_RAW
        elif f == _FLAG_ZLIB:
            c = C_ZLIB
        elif f == _FLAG_SNAPPY:
            c = C_SNAPPY
        elif f == _FLAG_LZO:
            c = C_LZO
        else:
            c = C_ZSTD
        status[i] = st
        cls[i] = c
        if c != C_NONE:
            count[c] += 1
            busy[r] = True
        if whole[i]:
            lo, hi = fileoffs[i], fileoffs[i] + n
            if not have_span:
                span[0], span[1] = lo, hi
                have_span = True
            else:
                span[0] = min(span[0], lo)
                span[1] = max(span[1], hi)
    cstart[0] = 0
    for c in range(N_CLASSES):
        cstart[c + 1] = cstart[c] + count[c]
        for r in range(cuts.shape[1]):
            cuts[c, r] = 0
    pos = cstart[:N_CLASSES].copy()
    for r in range(busy.shape[0]):  # a counting sort: each class's rows ascending
        for i in range(r * step, min(k, (r + 1) * step)):
            c = cls[i]
            if c != C_NONE:
                order[pos[c]] = i
                pos[c] += 1
                cuts[c, r + 1] += 1
    for c in range(N_CLASSES):
        for r in range(1, cuts.shape[1]):
            cuts[c, r] += cuts[c, r - 1]
    return have_span


def classify(
    offs,
    sizes,
    flags,
    fileoffs,
    whole,
    uncovered,
    allowed: int,
    kflags: int,
    zero_page: int,
    src_size: int,
    bs: int,
    step: int,
):
    """Check a chunk's page descriptors and sort its rows by the decoder they go to, in one pass (the
    ~40 numpy masks, index arrays and searches this replaces cost a kdump read ~0.6 ms of
    main-thread CPU more per 16384-page chunk: 13.9 -> 9.2 ms per 512 MiB of lzo pages; issue 18).

    Row ``i`` (``int64`` arrays ``offs``, ``sizes``, ``flags``, ``fileoffs``; ``bool`` ``whole``
    and ``uncovered``) is checked in this order, the first failure standing: a codec flag outside
    ``allowed`` or of more than one bit (status 2, ``BAD_FLAG``); data not ``1 .. bs`` bytes at an
    offset in ``1 .. src_size - size``, or ``uncovered`` (3, ``BAD_RANGE``); a raw page (flag 0)
    not ``bs`` bytes (4, ``BAD_RAW_SIZE``). A good row is :data:`C_ZERO` (raw at ``zero_page``,
    if that is >= 0; status 0), :data:`C_PY` (a codec flag not in ``kflags``, the flags with a
    kernel), :data:`C_SPLIT` (not ``whole`` in one record), :data:`C_RAW` (status 0) or its
    codec's class (:data:`C_ZLIB` ...), with status 1 (``NOT_DONE``) until decoded.

    Returns
    -------
    status : numpy.ndarray
        ``int32[k]``.
    rows : list of numpy.ndarray
        ``rows[c]`` (``int64``): the rows of class ``c``, ascending; views of one array.
    cuts : numpy.ndarray
        ``int64[N_CLASSES, ranges + 1]``: ``rows[c][cuts[c, r] : cuts[c, r + 1]]`` are class ``c``'s
        rows in range ``r`` (rows ``r * step`` to ``(r + 1) * step - 1``).
    busy : numpy.ndarray
        ``bool[ranges]``: the ranges holding a row of any class (not only bad rows).
    span : tuple of int, or None
        ``(min(fileoffs), max(fileoffs + sizes))`` over the ``whole`` rows, None if there are none.
    """
    k = offs.shape[0]
    nr = -(-k // step)
    status = np.empty(k, np.int32)
    order = np.empty(k, np.int64)
    cstart = np.empty(N_CLASSES + 1, np.int64)
    cuts = np.empty((N_CLASSES, nr + 1), np.int64)
    busy = np.zeros(nr, np.bool_)
    span = np.zeros(2, np.int64)
    have_span = _classify(
        offs,
        sizes,
        flags,
        fileoffs,
        whole,
        uncovered,
        np.int64(allowed),
        np.int64(kflags),
        np.int64(zero_page),
        np.int64(src_size),
        np.int64(bs),
        np.int64(step),
        status,
        order,
        cstart,
        cuts,
        busy,
        span,
    )
    bounds = cstart.tolist()
    rows = [order[bounds[c] : bounds[c + 1]] for c in range(N_CLASSES)]
    return status, rows, cuts, busy, (int(span[0]), int(span[1])) if have_span else None


@njit(nogil=True, boundscheck=False, cache=True)
def _layout(offs, sizes, flags, bs, state):
    expect, zero, data_start = state[0], state[1], state[2]
    for i in range(offs.shape[0]):
        o = offs[i]
        n = sizes[i]
        if o == 0 and n == 0:
            continue  # an empty descriptor: a page the producer never wrote (checked when read)
        if o == expect:
            expect += n
        elif o == zero and n == bs:  # the flags are the decoder's to check
            pass
        elif zero < 0 and data_start <= o < expect and n == bs:
            zero = o
        else:
            state[0], state[1] = expect, zero
            return i
    state[0], state[1] = expect, zero
    return -1


def check_layout(offs, sizes, flags, bs: int, state) -> int:
    """Check that page descriptors (in frame order) lay their data out back to back.

    makedumpfile and QEMU write page data in frame order right after the descriptor table,
    each blob where the previous one ended, except that every all-zero page may point at one
    shared raw page. ``state`` is ``int64[3]``: the offset the next new blob must start at,
    the shared page's offset (-1 while unknown) and the start of the data area; it is updated
    so slices of the table can be checked in turn. Descriptors that are all zero (offset 0,
    size 0) are left to the page decoder.

    Returns
    -------
    int
        Index of the first descriptor that breaks the layout, or -1.
    """
    if len(offs) == 0:
        return -1
    return int(_layout(offs, sizes, flags, bs, state))


@njit(nogil=True, boundscheck=False, cache=True)
def _be64(buf, o):
    """The big-endian signed 64-bit integer at ``buf[o : o + 8]``."""
    v = np.int64(buf[o])
    if v >= 128:
        v -= 256
    for j in range(1, 8):
        v = (v << 8) | np.int64(buf[o + j])
    return v


@njit(nogil=True, boundscheck=False, cache=True)
def _scan_flat(buf, off, stop, size, max_offset, vs, ve, fs):
    k = 0
    cap = vs.shape[0]
    while True:
        if off + 16 > size:
            return k, off, SCAN_FILE_ENDS, 0, 0
        if off >= stop or k == cap:
            return k, off, SCAN_MORE, 0, 0
        voff = _be64(buf, off)
        n = _be64(buf, off + 8)
        if voff == -1 and n == -1:
            return k, off, SCAN_END_RECORD, voff, n
        if voff < 0 or n < 0:
            return k, off, SCAN_NEGATIVE, voff, n
        if voff > max_offset or n > max_offset - voff:
            return k, off, SCAN_TOO_FAR, voff, n
        if off + 16 + n > size:
            return k, off, SCAN_PAST_END, voff, n
        if n:
            vs[k] = voff
            ve[k] = voff + n
            fs[k] = off + 16
            k += 1
        off += 16 + n


@njit(nogil=True, boundscheck=False, cache=True, inline="always")
def _is_last_at_or_before(vstart, n, i, o):
    """Whether record ``i`` is the last one starting at or before kdump offset ``o``."""
    return 0 <= i < n and vstart[i] <= o and (i + 1 == n or vstart[i + 1] > o)


@njit(nogil=True, boundscheck=False, cache=True)
def _locate_flat(vstart, vend, fstart, offs, sizes, fileoffs, whole):
    n = vstart.shape[0]
    # hints: blobs mostly follow each other (j: the record found last going forward), and many
    # point back at one shared zero page (b: the record found last going back)
    j = b = 0
    for t in range(offs.shape[0]):
        o = offs[t]
        # i = the last record with vstart[i] <= o (-1 if none), as searchsorted(side="right") - 1
        if _is_last_at_or_before(vstart, n, j, o):
            i = j
        elif _is_last_at_or_before(vstart, n, j + 1, o):
            i = j + 1
        elif _is_last_at_or_before(vstart, n, b, o):
            i = b
        else:
            lo, hi = 0, n  # vstart[:lo] <= o < vstart[hi:]
            while lo < hi:
                mid = (lo + hi) // 2
                if vstart[mid] <= o:
                    lo = mid + 1
                else:
                    hi = mid
            i = lo - 1
        ic = i if i > 0 else 0
        fileoffs[t] = fstart[ic] + (o - vstart[ic])
        whole[t] = i >= 0 and o + sizes[t] <= vend[ic]
        if i >= j:
            j = i
        elif i >= 0:
            b = i


def locate_flat(vstart, vend, fstart, offs, sizes) -> tuple[np.ndarray, np.ndarray]:
    """For blobs at kdump offsets ``offs`` (``sizes`` bytes) in a flattened file whose records
    (sorted, disjoint) cover kdump bytes ``[vstart, vend)`` with data at file offset ``fstart``:
    each blob's file offset (through the last record starting at or before it) and whether it
    lies whole in that record. ``numpy.searchsorted`` restarted its search at every shared zero
    page (blobs point back at it), a tenth of a flattened read's main-thread time (issue 18)."""
    fileoffs = np.empty(offs.shape[0], np.int64)
    whole = np.empty(offs.shape[0], np.bool_)
    if vstart.shape[0] == 0:
        fileoffs[:] = offs
        whole[:] = False
    elif offs.shape[0]:
        _locate_flat(vstart, vend, fstart, offs, sizes, fileoffs, whole)
    return fileoffs, whole


#: What :func:`scan_flat` stopped at (``code``).
SCAN_MORE, SCAN_END_RECORD, SCAN_NEGATIVE, SCAN_TOO_FAR, SCAN_PAST_END, SCAN_FILE_ENDS = range(6)


def scan_flat(buf, off: int, stop: int, size: int, max_offset: int, vs, ve, fs) -> tuple[int, int, int, int, int]:
    """Walk the records of a flattened kdump file (big-endian ``int64 offset, int64 size`` then
    ``size`` bytes of data) from byte ``off``, storing each non-empty record's kdump range
    ``[vs, ve)`` and the file offset of its data ``fs``, until a record starts at or after
    ``stop``, the output arrays are full, or something that is not an ordinary record.

    Returns ``(records stored, offset reached, code, offset field, size field)``; ``code`` is
    :data:`SCAN_MORE` (``stop`` or full: call again from the offset reached),
    :data:`SCAN_END_RECORD` (-1/-1 at the offset reached), :data:`SCAN_NEGATIVE`,
    :data:`SCAN_TOO_FAR` (offset + size > ``max_offset``), :data:`SCAN_PAST_END` (the record's
    data runs past ``size``) or :data:`SCAN_FILE_ENDS` (no whole record header left). One
    Python loop step per record cost a flattened read a quarter of its time (issue 18).
    """
    k, at, code, voff, n = _scan_flat(buf, off, stop, size, max_offset, vs, ve, fs)
    return int(k), int(at), int(code), int(voff), int(n)
