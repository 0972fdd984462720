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

from pagecore._jit import SERIAL
from pagecore._pcg64 import next32, read_state, write_state

_U = np.uint64


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
        v = next32(st) & mask
        while v > mx:
            v = next32(st) & mask
        j = np.int64(v)
        t = a[i]
        a[i] = a[j]
        a[j] = t


def permutation_into(rng: np.random.Generator, src: np.ndarray, out: np.ndarray) -> None:
    """``out[:] = rng.permutation(src)`` for a 1-D ``src``, with the same result and the same
    generator state afterwards."""
    got = read_state(rng)
    if got is None or src.ndim != 1 or len(src) >= 2**32:
        out[:] = rng.permutation(src)
        return
    out[:] = src
    if len(src) < 2:
        return  # NumPy draws nothing either
    s, st = got
    _shuffle(out, st)
    write_state(rng, s, st)
