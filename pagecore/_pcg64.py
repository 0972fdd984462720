"""NumPy's PCG64 generator step, as Numba functions over a state array (base module).

Kernels that must draw exactly what a seeded ``np.random.default_rng`` would draw (the ESX
scanner's shuffle in :mod:`pagecore.sharing.pcg64`, the replay's background scanners in
:mod:`pagecore.sim.sharing`) read the generator's state into a ``uint64[6]`` array with
:func:`read_state`, advance it in the kernel with :func:`next32` / :func:`next64`, and write it
back with :func:`write_state`, so the generator ends where NumPy's own draws leave it.

What it reproduces (numpy 2.x): PCG64 is the 128-bit LCG (multiplier
0x2360ED051FC65DA44385DF649FCCF645, the stream's increment) with the XSL-RR output of the new
state; ``next_uint32`` returns the low half of a fresh 64-bit output and keeps the high half for
the next call (``has_uint32`` / ``uinteger``). tests/test_pcg64.py and tests/test_sim_scan_rng.py
compare with NumPy. A base module so that the replay need not import the sharing stage.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pagecore._jit import JIT_DISABLED, SERIAL

U64 = np.uint64
M32 = U64(0xFFFFFFFF)
S32 = U64(32)
_MUL_HI = U64(0x2360ED051FC65DA4)
_MUL_LO = U64(0x4385DF649FCCF645)


@njit(**SERIAL)
def _mulhi(a, b):
    """The high 64 bits of the 128-bit product of two uint64."""
    a0, a1 = a & M32, a >> S32
    b0, b1 = b & M32, b >> S32
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> S32) + (p01 & M32) + (p10 & M32)
    return p11 + (p01 >> S32) + (p10 >> S32) + (mid >> S32)


@njit(**SERIAL)
def next64(st):
    """One PCG64 step (state = state x multiplier + increment, mod 2^128) and its XSL-RR output.
    ``st``: uint64[6] = state high, state low, increment high, increment low, has_uint32, uinteger."""
    sh, sl, ih, il = st[0], st[1], st[2], st[3]
    lo = sl * _MUL_LO
    hi = _mulhi(sl, _MUL_LO) + sl * _MUL_HI + sh * _MUL_LO
    lo2 = lo + il
    hi2 = hi + ih + (U64(1) if lo2 < lo else U64(0))
    st[0] = hi2
    st[1] = lo2
    v = hi2 ^ lo2
    r = hi2 >> U64(58)
    return (v >> r) | (v << ((U64(64) - r) & U64(63)))


@njit(**SERIAL)
def next32(st):
    """NumPy's ``next_uint32``: the low half of a fresh 64-bit output, the high half kept for
    the next call."""
    if st[4] != 0:
        st[4] = U64(0)
        return st[5]
    nx = next64(st)
    st[4] = U64(1)
    st[5] = nx >> S32
    return nx & M32


def read_state(rng: np.random.Generator):
    """``(state dict, uint64[6])`` of ``rng`` for the functions above, or None when they cannot
    reproduce its draws (another bit generator, or Numba disabled)."""
    bg = rng.bit_generator
    if JIT_DISABLED or type(bg) is not np.random.PCG64:
        return None
    s = bg.state
    mask = (1 << 64) - 1
    x, inc = s["state"]["state"], s["state"]["inc"]
    return s, np.array([x >> 64, x & mask, inc >> 64, inc & mask, s["has_uint32"], s["uinteger"]], np.uint64)


def write_state(rng: np.random.Generator, s: dict, st: np.ndarray) -> None:
    """Write the advanced ``st`` back into ``rng`` (``s`` from :func:`read_state`)."""
    s["state"]["state"] = (int(st[0]) << 64) | int(st[1])
    s["has_uint32"] = int(st[4])
    s["uinteger"] = int(st[5])
    rng.bit_generator.state = s
