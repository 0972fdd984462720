"""The kdump reader's row classifier (``dumps._pagecodec.classify``: every descriptor check and the
decoder of every row, in one pass) against its obviously correct twin, the numpy masks the reader used
before (one mask per check, ``flatnonzero`` per class, ``searchsorted`` for the ranges), on random
descriptors that hit every check, with and without a shared zero page, every set of kernels, several
range sizes, and the named edge cases (no rows, one row, all bad, a last range that is not full)."""

from __future__ import annotations

import numpy as np
import pytest

from pagecore.dumps import _pagecodec as C
from pagecore.dumps import kdump

BS = 4096


def twin(offs, sizes, flags, fileoffs, whole, uncovered, allowed, kflags, zero_page, src_size, bs, step):
    """The reader's masks before ``classify`` (kdump.KdumpReader._submit, 2026-11-30)."""
    k = len(offs)
    status = np.full(k, kdump.NOT_DONE, np.int32)
    unknown = ((flags & ~allowed) != 0) | ((flags & (flags - 1)) != 0)
    status[unknown] = kdump.BAD_FLAG
    todo = status == kdump.NOT_DONE
    outside = todo & ((sizes <= 0) | (sizes > bs) | (offs <= 0) | (offs > src_size - sizes))
    contiguous = todo & ~outside & whole
    outside |= todo & ~outside & ~whole & uncovered
    status[outside] = kdump.BAD_RANGE
    todo = status == kdump.NOT_DONE
    wrong_raw = todo & (flags == 0) & (sizes != bs)
    status[wrong_raw] = kdump.BAD_RAW_SIZE
    todo &= ~wrong_raw
    zero = np.flatnonzero(todo & (flags == 0) & (offs == zero_page)) if zero_page >= 0 else np.empty(0, np.int64)
    todo[zero] = False
    status[zero] = 0
    kernel_flags = flags == 0
    for f in (kdump.FLAG_ZLIB, kdump.FLAG_SNAPPY, kdump.FLAG_LZO, kdump.FLAG_ZSTD):
        if kflags & f:
            kernel_flags |= flags == f
    rows = [np.empty(0, np.int64)] * C.N_CLASSES
    rows[C.C_ZERO] = zero
    rows[C.C_RAW] = np.flatnonzero(todo & (flags == 0) & contiguous)
    for c, f in ((C.C_ZLIB, kdump.FLAG_ZLIB), (C.C_SNAPPY, kdump.FLAG_SNAPPY), (C.C_LZO, kdump.FLAG_LZO)):
        rows[c] = np.flatnonzero(todo & (flags == f) & contiguous & bool(kflags & f))
    rows[C.C_ZSTD] = np.flatnonzero(todo & (flags == kdump.FLAG_ZSTD) & contiguous & bool(kflags & kdump.FLAG_ZSTD))
    rows[C.C_SPLIT] = np.flatnonzero(todo & ~contiguous & kernel_flags)
    rows[C.C_PY] = np.flatnonzero(todo & ~kernel_flags)
    status[rows[C.C_RAW]] = 0
    bounds = np.arange(0, k + step, step).clip(max=k)
    cuts = np.array([np.searchsorted(r, bounds) for r in rows])
    busy = np.zeros(len(bounds) - 1, bool)
    for r in rows:
        busy[r // step] = True
    span = None
    if whole.any():
        fo = fileoffs[whole]
        span = (int(fo.min()), int((fo + sizes[whole]).max()))
    return status, rows, cuts, busy, span


def check(args) -> None:
    got = C.classify(*args)
    want = twin(*args)
    assert (got[0] == want[0]).all()
    for c in range(C.N_CLASSES):
        assert got[1][c].tolist() == want[1][c].tolist(), c
    assert got[2].shape == want[2].shape and (got[2] == want[2]).all()
    assert (got[3] == want[3]).all()
    assert got[4] == want[4]


def random_descs(rng, k, src_size=1 << 20, zero_page=8192):
    flags = rng.choice([0, 0, 0, 1, 2, 4, 0x20, 3, 8, 0x40, 0x21], k).astype(np.int64)
    sizes = np.where(flags == 0, BS, rng.integers(1, BS, k)).astype(np.int64)
    odd = rng.random(k) < 0.1
    sizes[odd] = rng.choice([-5, 0, 1, BS - 1, BS, BS + 1, 2 * BS], odd.sum())
    offs = rng.integers(-10, src_size + 10, k).astype(np.int64)
    offs[rng.random(k) < 0.25] = zero_page
    offs[rng.random(k) < 0.02] = 0
    whole = rng.random(k) < 0.8
    fileoffs = offs + rng.integers(0, 1000, k)
    uncovered = ~whole & (rng.random(k) < 0.5)
    return offs, sizes, flags, fileoffs, whole, uncovered


@pytest.mark.parametrize("step", [1, 3, 128, 10_000])
@pytest.mark.parametrize("kflags", [0x4, 0x5, 0x27])
@pytest.mark.parametrize("zero_page", [-1, 8192])
def test_classify_matches_the_numpy_masks(step, kflags, zero_page):
    rng = np.random.default_rng(step * 1000 + kflags + zero_page)
    for k in (0, 1, 2, 127, 128, 129, 1000):
        for allowed in (0x27, 0x4, 0x1):
            args = (*random_descs(rng, k, zero_page=8192), allowed, kflags, zero_page, 1 << 20, BS, step)
            check(args)


def test_classify_named_cases():
    rng = np.random.default_rng(5)
    offs, sizes, flags, fileoffs, whole, uncovered = random_descs(rng, 300)
    # every row bad: no class, no busy range
    bad = (offs, sizes, np.full(300, 0x8, np.int64), fileoffs, whole, uncovered, 0x27, 0x27, 8192, 1 << 20, BS, 128)
    check(bad)
    got = C.classify(*bad)
    assert not got[3].any() and all(len(r) == 0 for r in got[1]) and (got[0] == kdump.BAD_FLAG).all()
    # all whole and good: a QEMU-like chunk (zero page, raw and snappy pages back to back)
    k = 1000
    flags = rng.choice([0, 4], k).astype(np.int64)
    sizes = np.where(flags == 0, BS, 1500).astype(np.int64)
    offs = (8192 + BS + np.cumsum(sizes) - sizes).astype(np.int64)
    offs[rng.random(k) < 0.3] = 8192
    sizes[offs == 8192] = BS
    flags[offs == 8192] = 0
    one = np.ones(k, bool)
    check((offs, sizes, flags, offs, one, ~one, 0x4, 0x27, 8192, int(offs.max()) + BS, BS, 128))
    # no whole row: no span
    check((offs, sizes, flags, offs, ~one, ~one, 0x4, 0x27, 8192, int(offs.max()) + BS, BS, 128))


def test_status_codes_agree_with_the_reader():
    assert (C._NOT_DONE, C._BAD_FLAG, C._BAD_RANGE, C._BAD_RAW_SIZE) == (
        kdump.NOT_DONE,
        kdump.BAD_FLAG,
        kdump.BAD_RANGE,
        kdump.BAD_RAW_SIZE,
    )
    assert (C._FLAG_ZLIB, C._FLAG_LZO, C._FLAG_SNAPPY, C._FLAG_ZSTD) == (
        kdump.FLAG_ZLIB,
        kdump.FLAG_LZO,
        kdump.FLAG_SNAPPY,
        kdump.FLAG_ZSTD,
    )


def test_unpack_descs_matches_the_structured_dtype():
    """``unpack_descs`` (one pass over the raw table) against numpy's structured ``page_desc`` fields,
    on random records (any flags, sizes with the top bit set, negative offsets), a table at an odd
    address (copied first), and an empty one; a length that is not whole records is refused."""
    rng = np.random.default_rng(9)
    for k in (0, 1, 7, 1000):
        descs = np.zeros(k, kdump.PAGE_DESC)
        descs["offset"] = rng.integers(-(2**63), 2**63 - 1, k, dtype=np.int64)
        descs["size"] = rng.integers(0, 2**32, k, dtype=np.uint64).astype(np.uint32)
        descs["flags"] = rng.integers(0, 2**32, k, dtype=np.uint64).astype(np.uint32)
        descs["page_flags"] = rng.integers(0, 2**63, k, dtype=np.uint64)
        raw = np.frombuffer(descs.tobytes(), np.uint8)
        odd = np.empty(len(raw) + 1, np.uint8)[1:]
        odd[:] = raw
        for r in (raw, odd):
            offs, sizes, flags = C.unpack_descs(r)
            assert offs.tolist() == descs["offset"].astype(np.int64).tolist()
            assert sizes.tolist() == descs["size"].astype(np.int64).tolist()
            assert flags.tolist() == descs["flags"].astype(np.int64).tolist()
    with pytest.raises(ValueError, match="24"):
        C.unpack_descs(np.zeros(25, np.uint8))
