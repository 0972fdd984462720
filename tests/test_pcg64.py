"""The Numba shuffle (pagecore.sharing.pcg64) against NumPy's Generator.permutation, which is its
slow twin: same permutation, same generator state afterwards, on random and edge-case sizes."""

from __future__ import annotations

import numpy as np
import pytest

from pagecore.sharing.pcg64 import permutation_into

SIZES = [0, 1, 2, 3, 4, 5, 31, 32, 33, 255, 256, 257, 1000, 65536, 65537]


@pytest.mark.parametrize("seed", range(4))
def test_same_permutations_and_state_as_numpy(seed):
    want_rng = np.random.default_rng([seed, 0xE5C])
    got_rng = np.random.default_rng([seed, 0xE5C])
    sizes = SIZES + np.random.default_rng(seed).integers(0, 3000, 12).tolist()
    for n in sizes:  # one generator across all sizes: has_uint32 carries over between calls
        for dtype in (np.int32, np.int64):
            src = (np.arange(n) * 7 + 3).astype(dtype)
            out = np.empty_like(src)
            permutation_into(got_rng, src, out)
            assert (out == want_rng.permutation(src)).all(), (n, dtype)
            assert got_rng.bit_generator.state == want_rng.bit_generator.state, (n, dtype)
    assert got_rng.random() == want_rng.random()


def test_half_used_output_and_other_generators():
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    for g in (a, b):  # a kept high half of the last 64-bit output is used first
        s = g.bit_generator.state
        s["has_uint32"], s["uinteger"] = 1, 0xDEADBEEF
        g.bit_generator.state = s
    src = np.arange(100, dtype=np.int32)
    out = np.empty_like(src)
    permutation_into(a, src, out)
    assert (out == b.permutation(src)).all() and a.bit_generator.state == b.bit_generator.state
    c, d = np.random.Generator(np.random.Philox(3)), np.random.Generator(np.random.Philox(3))
    permutation_into(c, src, out)  # not PCG64: NumPy does it
    assert (out == d.permutation(src)).all()
