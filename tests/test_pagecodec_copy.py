"""The raw-page copy and zero-fill kernels of the kdump reader (``dumps._pagecodec.copy_pages``,
``zero_pages``) against numpy slicing and assignment (their obviously correct twins), on random
offsets, misaligned and overlapping sources, a shared source page, the last page of the buffer,
and an empty batch."""

from __future__ import annotations

import numpy as np
from dumps_helpers import PS

from pagecore.dumps import _pagecodec


def twin(buf, offs, idx, out) -> None:
    for i in idx.tolist():
        out[i] = buf[int(offs[i]) : int(offs[i]) + PS]


def check(buf, offs, idx, k) -> None:
    got = np.full((k, PS), 0xA5, np.uint8)
    want = got.copy()
    _pagecodec.copy_pages(buf, offs, idx, got)
    twin(buf, offs, idx, want)
    assert (got == want).all()


def test_copy_pages_matches_slicing_on_random_offsets():
    rng = np.random.default_rng(21)
    buf = rng.integers(0, 256, 40 * PS + 13, dtype=np.uint8)
    for _ in range(20):
        k = int(rng.integers(1, 50))
        offs = rng.integers(0, len(buf) - PS + 1, k).astype(np.int64)  # any alignment, overlapping
        idx = rng.permutation(k)[: int(rng.integers(0, k + 1))]  # a subset, any order: others untouched
        check(buf, offs, idx, k)


def test_copy_pages_named_cases():
    rng = np.random.default_rng(22)
    buf = rng.integers(0, 256, 3 * PS + 5, dtype=np.uint8)
    n = len(buf)
    check(buf, np.zeros(4, np.int64), np.arange(4), 4)  # every page from one source page
    check(buf, np.array([n - PS, 0, 1, n - PS - 1], np.int64), np.arange(4), 4)  # the buffer's ends
    check(buf, np.array([7], np.int64), np.arange(0), 1)  # an empty batch writes nothing
    check(buf[:PS], np.zeros(1, np.int64), np.arange(1), 1)  # a buffer of exactly one page


def zero_twin(idx, out) -> None:
    for i in idx.tolist():
        out[i] = 0


def test_zero_pages_matches_assignment():
    rng = np.random.default_rng(23)
    for k, pick in [(1, [0]), (5, []), (7, [6]), (9, [0, 8, 3]), (4, [0, 1, 2, 3])]:
        got = rng.integers(1, 256, (k, PS), dtype=np.uint8)  # no zero byte: every cleared byte shows
        want = got.copy()
        idx = np.array(pick, np.int64)
        _pagecodec.zero_pages(idx, got)
        zero_twin(idx, want)
        assert (got == want).all()
    for _ in range(10):
        k = int(rng.integers(1, 40))
        got = rng.integers(0, 256, (k, PS), dtype=np.uint8)
        want = got.copy()
        idx = np.sort(rng.permutation(k)[: int(rng.integers(0, k + 1))])
        _pagecodec.zero_pages(idx, got)
        zero_twin(idx, want)
        assert (got == want).all()
