"""The raw-page copy and zero-fill kernels of the kdump reader (``dumps._pagecodec.copy_pages``,
``zero_pages``) against numpy slicing and assignment (their obviously correct twins), on random
offsets, misaligned and overlapping sources, a shared source page, the last page of the buffer,
and an empty batch; and the flattened record lookup (``locate_flat``) against a binary search per blob."""

from __future__ import annotations

import numpy as np
import pytest
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


def _locate_twin(vstart, vend, fstart, offs, sizes):
    """The obviously-correct lookup ``locate_flat`` replaces: a binary search per blob."""
    i = np.searchsorted(vstart, offs, side="right") - 1
    ic = np.clip(i, 0, None)
    return fstart[ic] + (offs - vstart[ic]), (i >= 0) & (offs + sizes <= vend[ic])


@pytest.mark.parametrize("nrec", [1, 2, 3, 50, 2000])
def test_locate_flat_matches_a_binary_search_per_blob(nrec):
    """Records sorted and disjoint, with gaps and touching ones; blobs in order, jumping back (a
    shared zero page), before the first record, in gaps, across record ends, past the last."""
    rng = np.random.default_rng(nrec)
    lengths = rng.integers(1, 20000, nrec)
    gaps = np.where(rng.random(nrec) < 0.5, 0, rng.integers(1, 5000, nrec))
    vstart = (100 + np.cumsum(gaps + lengths) - lengths).astype(np.int64)
    vend = vstart + lengths
    fstart = (np.cumsum(lengths + 16) - lengths).astype(np.int64)
    top = int(vend[-1]) + 10000
    n = 5000
    offs = np.sort(rng.integers(-50, top, n)).astype(np.int64)
    back = rng.random(n) < 0.3
    offs[back] = rng.choice(np.concatenate([vstart, [-7, 0, 99, top]]), int(back.sum()))  # jumps back
    sizes = rng.integers(1, 4097, n).astype(np.int64)
    fo, wh = _pagecodec.locate_flat(vstart, vend, fstart, offs, sizes)
    want_fo, want_wh = _locate_twin(vstart, vend, fstart, offs, sizes)
    assert np.array_equal(wh, want_wh)
    assert np.array_equal(fo, want_fo)
    assert wh.any() and not wh.all()
    # every record boundary exactly
    edges = np.concatenate([vstart - 1, vstart, vend - 1, vend]).astype(np.int64)
    ones = np.ones(len(edges), np.int64)
    for order in (np.sort(edges), edges):
        fo, wh = _pagecodec.locate_flat(vstart, vend, fstart, order, ones)
        want_fo, want_wh = _locate_twin(vstart, vend, fstart, order, ones)
        assert np.array_equal(fo, want_fo) and np.array_equal(wh, want_wh)
    empty = np.empty(0, np.int64)
    fo, wh = _pagecodec.locate_flat(empty, empty, empty, offs[:5], sizes[:5])
    assert not wh.any()
    assert len(_pagecodec.locate_flat(vstart, vend, fstart, empty, empty)[0]) == 0
