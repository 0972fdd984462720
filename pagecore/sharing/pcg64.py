"""NumPy's ``Generator(PCG64).permutation`` of a 1-D array, bit for bit, as a Numba kernel.

The ESX scanner draws a fresh random order of each VM's pages per pass from a seeded
``np.random.default_rng`` (its slow twin in tests/ does the same), and NumPy's shuffle took
about 13 % of a scanner call that makes one pass (5 of 38 ms CPU on a 4 x 256 MiB host). :func:`permutation_into`
gives the same permutation and leaves the generator in the same state, three times faster: the
generator's state is read, advanced in the kernel and written back.

What it reproduces (numpy 2.x, ``_generator.pyx`` ``shuffle`` of a 1-D array and
``distributions.c`` ``random_interval``): Fisher-Yates from the last element down to 1, each
index drawn as ``next_uint32() & mask`` (``mask`` = the bound's bits smeared right) until it is
at most the bound; ``next_uint32`` returns the low half of a fresh 64-bit output and keeps the
high half for the next call (``has_uint32``/``uinteger``); PCG64 is the 128-bit LCG
(multiplier 0x2360ED051FC65DA44385DF649FCCF645, the stream's increment) with the XSL-RR output
of the new state. Other bit generators, arrays of 2^32 or more elements and ``NUMBA_DISABLE_JIT``
fall back to ``rng.permutation``. tests/test_pcg64.py compares with NumPy.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pagecore._jit import INLINE, JIT_DISABLED, SERIAL

_U = np.uint64
_M32 = _U(0xFFFFFFFF)
_S32 = _U(32)
_MUL_HI = _U(0x2360ED051FC65DA4)
_MUL_LO = _U(0x4385DF649FCCF645)


@njit(**INLINE)
def _mulhi(a, b):
    """The high 64 bits of the 128-bit product of two uint64."""
    a0, a1 = a & _M32, a >> _S32
    b0, b1 = b & _M32, b >> _S32
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> _S32) + (p01 & _M32) + (p10 & _M32)
    return p11 + (p01 >> _S32) + (p10 >> _S32) + (mid >> _S32)


@njit(**INLINE)
def _next64(st):
    """One PCG64 step (state = state x multiplier + increment, mod 2^128) and its XSL-RR output.
    ``st``: uint64[6] = state high, state low, increment high, increment low, has_uint32, uinteger."""
    sh, sl, ih, il = st[0], st[1], st[2], st[3]
    lo = sl * _MUL_LO
    hi = _mulhi(sl, _MUL_LO) + sl * _MUL_HI + sh * _MUL_LO
    lo2 = lo + il
    hi2 = hi + ih + (_U(1) if lo2 < lo else _U(0))
    st[0] = hi2
    st[1] = lo2
    v = hi2 ^ lo2
    r = hi2 >> _U(58)
    return (v >> r) | (v << ((_U(64) - r) & _U(63)))


@njit(**INLINE)
def _next32(st):
    if st[4] != 0:
        st[4] = _U(0)
        return st[5]
    nx = _next64(st)
    st[4] = _U(1)
    st[5] = nx >> _S32
    return nx & _M32


@njit(**SERIAL)
def _shuffle(a, st):
    """NumPy's Fisher-Yates shuffle of ``a`` in place (indices below 2^32)."""
    for i in range(a.shape[0] - 1, 0, -1):
        mx = _U(i)
        mask = mx
        mask |= mask >> _U(1)
        mask |= mask >> _U(2)
        mask |= mask >> _U(4)
        mask |= mask >> _U(8)
        mask |= mask >> _U(16)
        mask |= mask >> _U(32)
        v = _next32(st) & mask
        while v > mx:
            v = _next32(st) & mask
        j = np.int64(v)
        t = a[i]
        a[i] = a[j]
        a[j] = t


def permutation_into(rng: np.random.Generator, src: np.ndarray, out: np.ndarray) -> None:
    """``out[:] = rng.permutation(src)`` for a 1-D ``src``, with the same result and the same
    generator state afterwards."""
    bg = rng.bit_generator
    if JIT_DISABLED or type(bg) is not np.random.PCG64 or src.ndim != 1 or len(src) >= 2**32:
        out[:] = rng.permutation(src)
        return
    out[:] = src
    if len(src) < 2:
        return  # NumPy draws nothing either
    s = bg.state
    m = (1 << 64) - 1
    x, inc = s["state"]["state"], s["state"]["inc"]
    st = np.array([x >> 64, x & m, inc >> 64, inc & m, s["has_uint32"], s["uinteger"]], np.uint64)
    _shuffle(out, st)
    s["state"]["state"] = (int(st[0]) << 64) | int(st[1])
    s["has_uint32"] = int(st[4])
    s["uinteger"] = int(st[5])
    bg.state = s
