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
