"""Counting equal hashes fast, in at most 16 bytes of memory per page.

:func:`count_hashes` returns the paper's basic counts (distinct contents, shared pages, shared
contents) of a ``uint64`` hash array without a comparison sort:

1. **Partition** by the top ``b1`` bits, chosen so buckets hold about ``L1_TARGET`` keys: a
   histogram pass, then a scatter into a buffer of the same size as the input (the input is
   not modified: 8 bytes of input + 8 bytes of buffer per page).
2. **Count** each bucket in a cache-resident open-addressing table (linear probing, sized to
   twice the bucket, indexed by mixed low bits): one pass inserts, one pass reads the counts
   and clears the table for the next bucket.

Equal keys share all bits, so they always meet in the same bucket; the counts are exact.
Memory beyond the two arrays is one table of twice the largest bucket.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pagecore._jit import SERIAL

#: first-level buckets aim at this many keys; measured best on the reference machine
#: (`python -m pagecore.bench.hashcount count`): large enough that the scatter has few write streams,
#: small enough that the counting table stays in cache
L1_TARGET = 65536


@njit(**SERIAL)
def _bits_for(m, target, lo, hi):
    """Radix bits so that ``m`` keys make buckets of about ``target`` keys."""
    b = lo
    while b < hi and (m >> b) > target:
        b += 1
    return b


@njit(**SERIAL)
def _count_hashes(keys, buf):
    n = keys.shape[0]
    out = np.zeros(3, np.int64)
    if n == 0:
        return out
    b1 = _bits_for(n, L1_TARGET, 0, 20)
    nb1 = 1 << b1
    # shift by 64 would be undefined: with one bucket every key goes to bucket 0
    s1 = np.uint64(63 if b1 == 0 else 64 - b1)
    sel = np.uint64(0 if b1 == 0 else nb1 - 1)
    cnt = np.zeros(nb1 + 1, np.int64)
    for i in range(n):
        cnt[((keys[i] >> s1) & sel) + np.uint64(1)] += 1
    for b in range(nb1):
        cnt[b + 1] += cnt[b]
    pos = cnt[:-1].copy()
    for i in range(n):
        b = (keys[i] >> s1) & sel
        buf[pos[b]] = keys[i]
        pos[b] += 1
    maxb = 0
    for b in range(nb1):
        maxb = max(maxb, cnt[b + 1] - cnt[b])
    tb = 2
    while tb < 2 * maxb:
        tb *= 2
    tkeys = np.zeros(tb, np.uint64)
    tcnt = np.zeros(tb, np.int64)
    for b in range(nb1):
        lo = cnt[b]
        hi = cnt[b + 1]
        m = hi - lo
        if m == 0:
            continue
        sz = 2
        while sz < 2 * m:
            sz *= 2
        mask = np.uint64(sz - 1)
        for i in range(lo, hi):
            k = buf[i]
            j = (k ^ (k >> np.uint64(29)) ^ (k >> np.uint64(47))) & mask
            while True:
                c = tcnt[j]
                if c == 0:
                    tkeys[j] = k
                    tcnt[j] = 1
                    break
                if tkeys[j] == k:
                    tcnt[j] = c + 1
                    break
                j = (j + np.uint64(1)) & mask
        for j in range(sz):
            c = tcnt[j]
            if c:
                out[0] += 1
                if c > 1:
                    out[1] += c
                    out[2] += 1
                tcnt[j] = 0
    return out


def count_hashes(hashes: np.ndarray, buffer: np.ndarray | None = None) -> tuple[int, int, int]:
    """Exact (distinct contents, shared pages, shared contents) of ``hashes``.

    Parameters
    ----------
    hashes : numpy.ndarray
        ``uint64[n]``; not modified.
    buffer : numpy.ndarray, optional
        ``uint64[n]`` scratch space to reuse (memory: 16 bytes per page with the input).

    Returns
    -------
    (int, int, int)
        Reclaimed pages are ``n − distinct``; shared − reclaimed is the number of shared contents.

    Notes
    -----
    Page hashes are uniformly distributed, so buckets and probe chains stay short. Inputs that
    are far from uniform in their top bits (e.g. small integers) still count exactly but put
    every key in few buckets, which is slower.
    """
    hashes = np.ascontiguousarray(hashes)
    if hashes.ndim != 1 or hashes.dtype != np.uint64:
        raise ValueError(f"hashes must be uint64[n], got {hashes.dtype}{hashes.shape}")
    if buffer is None:
        buffer = np.empty_like(hashes)
    elif buffer.shape != hashes.shape or buffer.dtype != np.uint64:
        raise ValueError(f"buffer must be uint64[{hashes.shape[0]}]")
    d, s, g = _count_hashes(hashes, buffer)
    return int(d), int(s), int(g)
