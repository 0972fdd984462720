"""The synthetic page filler and content hash (``fig04._fill_pages``, ``content_hash``) against slow
twins in Python integers."""

import numpy as np
import pytest

from pagecore.synth.fig04 import VARIANT_WORDS, WORDS, _fill_pages, content_hash

M64 = (1 << 64) - 1


def _splitmix(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def slow_fill(content, patch, pos) -> np.ndarray:
    """One page per content id: 0 is the zero page; else word w is splitmix(splitmix(c)·WORDS + w),
    and a non-zero patch q XORs word (pos + 61 i) mod WORDS with splitmix(q + i) | 1, i < VARIANT_WORDS."""
    out = np.zeros((len(content), WORDS), np.uint64)
    for p, (c, q, s) in enumerate(zip(content.tolist(), patch.tolist(), pos.tolist(), strict=True)):
        if c == 0:
            continue
        base = (_splitmix(c) * WORDS) & M64
        words = [_splitmix((base + w) & M64) for w in range(WORDS)]
        if q:
            for i in range(VARIANT_WORDS):
                words[(s + i * 61) % WORDS] ^= _splitmix((q + i) & M64) | 1
        out[p] = words
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fill_pages_matches_slow_twin(seed):
    rng = np.random.default_rng(seed)
    n = 40
    content = rng.integers(0, 2**64, n, dtype=np.uint64)
    content[::5] = 0  # zero pages, some with a patch (ignored)
    patch = rng.integers(0, 2**64, n, dtype=np.uint64)
    patch[::3] = 0
    pos = rng.integers(0, WORDS, n).astype(np.int64)
    # named edge cases: largest ids (wrap-around), a patch at the last word (wraps to the front)
    content[1], patch[1], pos[1] = M64, M64, WORDS - 1
    content[2], patch[2], pos[2] = 1, 1, 0
    out = np.full((n, WORDS), 7, np.uint64)  # every word is written, zero pages included
    _fill_pages(out, content, patch, pos)
    assert np.array_equal(out, slow_fill(content, patch, pos))


def test_fill_pages_empty():
    out = np.empty((0, WORDS), np.uint64)
    e = np.zeros(0, np.uint64)
    _fill_pages(out, e, e, np.zeros(0, np.int64))


def test_content_hash_matches_slow_twin():
    rng = np.random.default_rng(5)
    content = rng.integers(0, 2**64, 50, dtype=np.uint64)
    patch = rng.integers(0, 2**64, 50, dtype=np.uint64)
    content[:3], patch[:3] = [0, M64, 0x5EED], [0, M64, 0]
    patch[::4] = 0
    want = [_splitmix(_splitmix(c ^ 0x5EED) ^ q) for c, q in zip(content.tolist(), patch.tolist(), strict=True)]
    assert content_hash(content, patch).tolist() == want
    assert content_hash(content[:0], patch[:0]).shape == (0,)
