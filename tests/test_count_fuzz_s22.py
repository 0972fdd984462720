"""Seeded differential search of ``count_sharing`` against its slow twin (session 22): cases
drawn across the dimensions the named tests take one or two at a time — VM counts on both sides
of the uint8 / int8 / packed-payload thresholds (128, 256, 2048), every VM layout (blocks, blocks
out of order, interleaved, a VM that comes back, a few VMs of many, no VM index), salts none /
of VMs / of VMs with keys made equal under two salts / of pages / uint64 of 2**63 and more,
eligibility, zero flags that agree with the hashes or not, one content beyond the copy classes,
ties for the top list, every KSM setting, and the kernel's sizes shrunk so that small sets reach
the many-bucket, merge-sort and many-range paths. Threads 1 and 2 must agree to the bit."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import scaled
from test_count_kernel import _same, check

from pagecore.sharing import count_sharing, counts

M64 = (1 << 64) - 1
C3 = int(counts._C3)
NVMS = [1, 2, 3, 7, 64, 127, 128, 129, 255, 256, 257, 600, 1024, 2048, 2049]
KNOBS = [
    {},
    {"BUCKET_TARGET": 4, "L1_MAX_BITS": 2, "SCATTER_BLOCK": counts.WC_LINE},  # few level-1 buckets: payload unpacked
    {"BUCKET_TARGET": 4, "L1_MAX_BITS": 10, "SCATTER_BLOCK": 2 * counts.WC_LINE},  # many, packed
    {"BUCKET_TARGET": 2, "L2_MAX_BITS": 1, "SORT_MOVES": 1},  # insertion sorts give up for the merge sort
    {
        "SCATTER_MIN_PAGES": 8,
        "SCATTER_RANGE_TAILS": 0,
        "COUNT_CHUNKS": 3,
        "BUCKET_TARGET": 8,
        "SCATTER_BLOCK": 2 * counts.WC_LINE,
    },
]


def collide(h, s, r, times):
    """Make ``times`` pairs of pages with different salts hold hashes whose mixed keys
    ``(h ^ s·C3)·C1`` are equal: page j gets ``h[i] ^ s_i·C3 ^ s_j·C3``."""
    for _ in range(times):
        i, j = r.integers(0, len(h), 2)
        if s[i] != s[j]:
            h[j] = np.uint64(int(h[i]) ^ ((int(s[i]) * C3) & M64) ^ ((int(s[j]) * C3) & M64))


def draw(r):
    n = int(r.integers(0, scaled(3000, 200)))
    nvm = int(r.choice(NVMS))
    layout = r.integers(6)
    vm = r.integers(0, nvm, n)
    if layout == 0:  # blocks in VM order
        vm = np.sort(vm)
    elif layout == 1:  # blocks in another order
        vm = r.permutation(nvm)[np.sort(vm)]
    elif layout == 2 and n:  # blocks, then the first VM again
        vm = np.sort(vm)
        vm[-int(r.integers(1, max(2, n // 10))) :] = vm[0]
    elif layout == 3:  # a few VMs of many, in blocks
        vm = np.sort(r.choice(r.permutation(nvm)[:3], n)) if n else vm
    dtypes = [np.int64, np.int32, np.uint64, np.float64] + [np.uint8] * (nvm <= 256) + [np.uint16]
    vm = None if layout == 5 else vm.astype(dtypes[r.integers(len(dtypes))])
    kind = r.integers(5)
    if kind == 0:  # a few contents
        h = r.integers(0, int(r.integers(1, 20)), n).astype(np.uint64)
    elif kind == 1:  # many contents, all 64 bits
        h = r.integers(0, max(1, n // 2), n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    elif kind == 2:  # the zero page and many small ones
        h = r.integers(1, max(2, n), n).astype(np.uint64)
        h[r.random(n) < r.random()] = 0
    elif kind == 3:  # ties: contents of equal copies
        h = (
            np.repeat(r.integers(0, 2**63, n // 3 + 1, dtype=np.uint64), 3)[r.permutation(n)]
            if n
            else np.zeros(0, np.uint64)
        )
    else:  # one hash-prefix partition
        h = (r.integers(0, max(1, n // 4), n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) >> np.uint64(8)) | (
            np.uint64(0xAB) << np.uint64(56)
        )
    if n > 40 and r.random() < 0.3:  # one content beyond the copy classes
        h[r.random(n) < 0.3] = np.uint64(int(r.integers(0, 2**63)))
    z = [None, h == 0, r.random(n) < 0.3][r.integers(3)]
    kw = {
        "use_zero_pages": bool(r.random() < 0.4),
        "max_page_sharing": int(r.choice([2, 3, 5, 16, 17, 256, 2**40])),
        "top_n": int(r.integers(0, 21)),
    }
    vmi = np.zeros(n, np.int64) if vm is None else vm.astype(np.int64)
    salt = r.integers(6)
    if salt in (1, 2, 3):  # of VMs: a few domains; colliding keys; uint64 salts of 2**63 and more
        dom = r.integers(-3, 4, 4) if salt < 3 else r.integers(2**62, 2**63, 4, dtype=np.uint64) * np.uint64(2)
        kw["salt"] = dom[r.integers(0, 4, nvm)][vmi]
        if salt == 2 and n:
            collide(h, kw["salt"], r, 20)
    elif salt == 4:  # of pages, with colliding keys
        kw["salt"] = r.integers(-2, 3, n)
        if n:
            collide(h, kw["salt"], r, 10)
    el = r.integers(4)
    if el == 1:
        kw["eligible"] = r.random(n) > 0.1
    elif el == 2:
        kw["eligible"] = np.ones(n, bool)
    return h, z, vm, nvm, kw, KNOBS[r.integers(len(KNOBS))]


@pytest.mark.parametrize("seed", range(4))
def test_random_cases_match_twin(monkeypatch, seed):
    r = np.random.default_rng(2200 + seed)
    for _ in range(scaled(60, 8)):
        h, z, vm, nvm, kw, knobs = draw(r)
        with monkeypatch.context() as m:
            for k, v in knobs.items():
                m.setattr(counts, k, v)
            if "SCATTER_MIN_PAGES" in knobs:  # two ranges of pages, two threads
                m.setattr("pagecore._jit.max_threads", lambda: 2)
                one = count_sharing(h, z, vm, [f"vm{i}" for i in range(nvm)], threads=1, **kw)
                _same(one, count_sharing(h, z, vm, [f"vm{i}" for i in range(nvm)], threads=2, **kw))
            check(h, z, vm, nvm, **kw)
