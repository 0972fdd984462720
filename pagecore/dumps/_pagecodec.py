"""GIL-free page decoding for kdump files: zlib via the system libz, raw page copies.

Calling ``zlib.decompress`` once per 4 KiB page costs more in Python overhead and GIL
hand-offs than the inflate itself, so a thread pool of such calls runs *slower* on two
threads than on one (measured by ``python -m pagecore.bench.ingest``). These Numba kernels
decode a whole batch of pages in one ``nogil`` call: zlib pages through ``uncompress`` from
the C library that CPython's own ``zlib`` module links (found with ctypes), raw pages by
copy. Batches then run in parallel on plain Python threads.

The kernels are serial (no ``prange``): several of them run at once on pool threads while the
caller's parallel hash kernel runs, and Numba's threading layers do not all allow parallel
regions launched concurrently from different threads. They are compiled without
``cache=True`` because the ctypes function pointer is process-specific.

Status codes written per page: 0 ok; zlib's own negative codes (``Z_DATA_ERROR`` -3,
``Z_BUF_ERROR`` -5, ``Z_MEM_ERROR`` -4); -100 the page inflated to the wrong length.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np
from numba import njit

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

    @njit(nogil=True, boundscheck=False)
    def _inflate(buf, offs, sizes, idx, out, status):
        page = out.shape[1]
        dl = np.empty(1, np.uint64)
        base = buf.ctypes.data
        for j in range(idx.shape[0]):
            i = idx[j]
            dl[0] = page
            rc = _uncompress(out[i].ctypes.data, dl.ctypes.data, base + offs[i], sizes[i])
            if rc == 0 and dl[0] != page:
                rc = -100
            status[i] = rc

    def inflate_pages(buf, offs, sizes, idx, out, status) -> None:
        """Inflate zlib pages ``idx`` (blob at ``buf[offs[i]:offs[i]+sizes[i]]``) into ``out[i]``."""
        if len(idx):
            _inflate(buf, offs, sizes, idx, out, status)


@njit(nogil=True, boundscheck=False, cache=True)
def _copy(buf, offs, idx, out):
    page = out.shape[1]
    for j in range(idx.shape[0]):
        i = idx[j]
        o = offs[i]
        out[i, :] = buf[o : o + page]


def copy_pages(buf, offs, idx, out) -> None:
    """Copy raw pages ``idx`` (at ``buf[offs[i]:offs[i]+4096]``) into ``out[i]``."""
    if len(idx):
        _copy(buf, offs, idx, out)


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
