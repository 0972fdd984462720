"""The one counting kernel (pagecore.sharing.counts, issue 18) against its slow twin: every
total, per-VM counter, SHRDSVD and top content, on random inputs and named edge cases, with
one bucket and with many, payloads packed into the records and in their own array, VMs in
blocks and interleaved, and insertion sorts that must fall back to the merge sort."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import JIT_DISABLED, scaled
from slow_twins_count import count_sharing_twin

from pagecore.sharing import count_sharing, counts
from pagecore.sharing.counts import (
    T_DISTINCT,
    T_INELIGIBLE,
    T_INTER,
    T_INTER_SHARED,
    T_INTRA,
    T_KSM_SHARED,
    T_KSM_SHARING,
    T_KSM_UNSHARED,
    T_KSM_ZERO,
    T_PAGES,
    T_RECLAIMED,
    T_SHARED,
    T_SHARED_GROUPS,
    T_UNSHARED,
    T_ZERO,
    T_ZERO_SAVED,
    V_ALONE_RECLAIMED,
    V_ALONE_SHARED,
    V_INELIGIBLE,
    V_INTER_SHARED,
    V_PAGES,
    V_SHARED,
    V_ZERO,
    V_ZERO_SHARED,
)
from pagecore.sharing.fastcount import count_hashes

TOTALS = {
    "pages": T_PAGES,
    "zero": T_ZERO,
    "distinct": T_DISTINCT,
    "shared": T_SHARED,
    "shared_groups": T_SHARED_GROUPS,
    "reclaimed": T_RECLAIMED,
    "intra": T_INTRA,
    "inter": T_INTER,
    "zero_saved": T_ZERO_SAVED,
    "ineligible": T_INELIGIBLE,
    "unshared": T_UNSHARED,
    "ksm_shared": T_KSM_SHARED,
    "ksm_sharing": T_KSM_SHARING,
    "ksm_unshared": T_KSM_UNSHARED,
    "ksm_zero": T_KSM_ZERO,
    "inter_shared": T_INTER_SHARED,
}
PER_VM = {
    "pages": V_PAGES,
    "zero": V_ZERO,
    "shared": V_SHARED,
    "alone_shared": V_ALONE_SHARED,
    "alone_reclaimed": V_ALONE_RECLAIMED,
    "inter_shared": V_INTER_SHARED,
    "ineligible": V_INELIGIBLE,
    "zero_shared": V_ZERO_SHARED,
}


def check(h, z, vm, nvm, **kw):
    """count_sharing equals the twin on every output."""
    names = [f"vm{i}" for i in range(nvm)]
    got = count_sharing(h, z, vm, names, **kw)
    tw_kw = {k: v for k, v in kw.items() if k != "max_page_sharing"}
    totals, per_vm, svd, top = count_sharing_twin(h, z, vm, nvm, mps=kw.get("max_page_sharing", 256), **tw_kw)
    assert {k: got.t(i) for k, i in TOTALS.items()} == totals
    for v in range(nvm):
        assert {k: int(got.per_vm[v, i]) for k, i in PER_VM.items()} == per_vm[v], v
    assert got.shrdsvd == pytest.approx(svd, rel=1e-12, abs=1e-9)
    assert got.top == top
    d = got.to_dict()  # the identities the module docstring promises
    assert d["unshared_pages"] + d["shared_pages"] == d["total_pages"]
    assert d["distinct_pages"] + d["reclaimed_pages"] == d["total_pages"]
    assert d["intra_vm_saved_pages"] + d["inter_vm_saved_pages"] == d["reclaimed_pages"]
    return got


@pytest.fixture(params=["one-bucket-target", "tiny-buckets", "tiny-packed", "tiny-sorts", "tiny-blocks", "threads"])
def buckets(request, monkeypatch):
    """Default sizes; level-1 buckets of ~4 pages, at most 4 of them (payload in its own array:
    more than 1 VM needs more than 2 bits), in chains of scatter blocks of one write buffer
    (``WC_LINE``); the same with up to 1024 level-1 buckets (payload packed into the records) and
    blocks of two buffers; level-2 sorts of one bit whose insertion sorts give up at once for the merge sort
    (``SORT_MOVES`` 0) and scans in windows of one record; default buckets in chains of blocks
    of two write buffers; and every call on 3 threads (whatever it asks for), the pages scattered
    in ranges of 16 or more pages and the buckets counted in up to 5 ranges, with level-1
    buckets of ~8 pages scanned in windows of 5 records."""
    if request.param == "threads":
        monkeypatch.setattr(counts, "SCAN_WINDOW", 5)
        monkeypatch.setattr(counts, "resolve_threads", lambda threads: 3)
        monkeypatch.setattr(counts, "SCATTER_MIN_PAGES", 16)
        monkeypatch.setattr(counts, "SCATTER_RANGE_TAILS", 0)
        monkeypatch.setattr(counts, "COUNT_CHUNKS", 5)
        monkeypatch.setattr(counts, "BUCKET_TARGET", 8)
        monkeypatch.setattr(counts, "SCATTER_BLOCK", 2 * counts.WC_LINE)
    if request.param in ("tiny-buckets", "tiny-packed"):
        monkeypatch.setattr(counts, "BUCKET_TARGET", 4)
        monkeypatch.setattr(counts, "L1_MAX_BITS", 2 if request.param == "tiny-buckets" else 10)
        monkeypatch.setattr(counts, "SCATTER_BLOCK", counts.WC_LINE * (1 if request.param == "tiny-buckets" else 2))
    if request.param == "tiny-blocks":
        monkeypatch.setattr(counts, "SCATTER_BLOCK", 2 * counts.WC_LINE)
    if request.param == "tiny-sorts":
        monkeypatch.setattr(counts, "SCAN_WINDOW", 1)
        monkeypatch.setattr(counts, "BUCKET_TARGET", 2)
        monkeypatch.setattr(counts, "L2_MAX_BITS", 1)
        monkeypatch.setattr(counts, "SORT_MOVES", 0)
    return request.param


@pytest.mark.parametrize("trial", range(scaled(40, 6)))
def test_random_sets_match_twin(rng, buckets, trial):
    r = np.random.default_rng(trial)
    n = int(r.integers(0, scaled(3000, 300)))
    nvm = int(r.integers(1, 7))
    alphabet = int(r.integers(1, max(2, n)))
    h = r.integers(0, alphabet, size=n).astype(np.uint64)
    if trial % 2:  # spread over the 64-bit range, including values above 2**63
        h = h * np.uint64(0x9E3779B97F4A7C15)
    z = h == h[0] if n and trial % 3 == 0 else h == 0
    vm = r.integers(0, nvm, size=n).astype([np.int64, np.uint8, np.int32, np.uint16][trial % 4])
    if trial % 2:  # page tables concatenated VM by VM: each VM's pages one block
        vm = np.sort(vm)
    kw = dict(
        use_zero_pages=bool(trial % 5 == 0),
        max_page_sharing=int(r.integers(2, 6)),
        top_n=int(r.integers(0, 12)),
    )
    if trial % 3 == 1:
        kw["eligible"] = r.random(n) > 0.1
    if trial % 4 == 2:
        kw["salt"] = r.integers(-2, 3, size=n)
    check(h, z, vm, nvm, **kw)


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "one-page",
        "all-identical",
        "all-zero",
        "all-distinct",
        "small-ints",
        "top-bits-only",
        "fixed-prefix",
        "many-salts-one-hash",
        "all-ineligible",
        "mps-boundaries",
        "top-ties",
        "zero-first-collision",
        "vm-major-pairs",
    ],
)
def test_named_edge_cases(rng, buckets, case):
    n = scaled(2000, 200)
    nvm = 3
    vm = rng.integers(0, nvm, size=n)
    kw: dict = {"top_n": 5}
    if case == "empty":
        h, vm = np.zeros(0, np.uint64), np.zeros(0, np.int64)
    elif case == "one-page":
        h, vm = np.array([2**64 - 1], np.uint64), np.array([2])
    elif case == "all-identical":
        h = np.full(n, 0xDEADBEEF, np.uint64)
    elif case == "all-zero":
        h = np.zeros(n, np.uint64)
    elif case == "all-distinct":
        h = rng.permutation(np.arange(n, dtype=np.uint64)) * np.uint64(0x9E3779B97F4A7C15)
    elif case == "small-ints":
        h = rng.integers(0, 7, size=n).astype(np.uint64)
    elif case == "top-bits-only":  # keys that differ only in their top 3 bits
        h = rng.integers(0, 8, size=n).astype(np.uint64) << np.uint64(61)
    elif case == "fixed-prefix":  # one hash-prefix partition of bigcount: top 8 bits equal
        h = (rng.integers(0, 300, size=n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) >> np.uint64(8)) | (
            np.uint64(0xAB) << np.uint64(56)
        )
    elif case == "many-salts-one-hash":
        h = np.full(n, 42, np.uint64)
        kw["salt"] = rng.integers(0, n // 3, size=n)
    elif case == "all-ineligible":
        h = rng.integers(0, 5, size=n).astype(np.uint64)
        kw["eligible"] = np.zeros(n, bool)
    elif case == "mps-boundaries":  # contents with k·mps, k·mps ± 1 copies
        sizes = [2, 3, 4, 5, 7, 8, 9, 16, 17]
        h = np.repeat(np.arange(len(sizes), dtype=np.uint64) + np.uint64(1), sizes)
        vm = rng.integers(0, nvm, size=len(h))
        kw["max_page_sharing"] = 4
    elif case == "top-ties":  # many contents with the same number of copies: ties by hash
        h = np.repeat(rng.integers(0, 2**64 - 1, size=n // 4, dtype=np.uint64), 4)
        vm = rng.integers(0, nvm, size=len(h))
    elif case == "zero-first-collision":  # hash-only: a zero and a non-zero page share a hash
        h = np.full(n, 9, np.uint64)
        z = np.zeros(n, bool)
        z[1::2] = True
        for uzp in (False, True):
            check(h, z, vm, nvm, use_zero_pages=uzp, **kw)
            check(h, ~z, vm, nvm, use_zero_pages=uzp, **kw)
        return
    else:  # page tables concatenated VM by VM, every content in two VMs
        half = np.arange(n // 2, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        h = np.concatenate([half, half])
        vm = np.repeat([0, 1], n // 2)
    z = h == 0
    for uzp in (False, True):
        check(h, z, vm[: len(h)], nvm, use_zero_pages=uzp, **kw)


@pytest.mark.parametrize("nvm", [700, 3000])
def test_many_vms_payload_in_its_own_array(rng, buckets, nvm):
    """Many VMs: 700 fit in 11 record bits (packed unless the level-1 bits are capped lower, as in
    ``tiny-buckets``); 3000 need 13, more than the record's spare bits, so the payload goes to
    its own array."""
    n = scaled(6000, 600)
    h = rng.integers(0, n // 3, size=n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for vm in (rng.integers(0, nvm, size=n), np.sort(rng.integers(0, nvm, size=n))):
        check(h, h == h[0], vm, nvm, top_n=4, salt=vm // 3 if buckets == "tiny-packed" else None)


def test_heavy_content(rng, buckets):
    """One content with most of the pages (the zero page) beside many small ones, salted per
    VM, in blocks and interleaved."""
    n = scaled(5000, 500)
    h = rng.integers(1, n, size=n).astype(np.uint64)
    h[rng.random(n) < 0.6] = 0
    vm = np.sort(rng.integers(0, 5, size=n))
    for v in (vm, rng.permutation(vm)):
        check(h, h == 0, v, 5, top_n=3)
        check(h, h == 0, v, 5, top_n=3, salt=v % 2, use_zero_pages=True)


def test_vm_blocks_in_any_order(rng, buckets):
    """Each VM's pages one block, but the blocks not in VM order (VM 3, then 0, then 2, 1):
    runs are still (content, VM) pairs, and a content's zero flag is that of its first page in
    input order, which here is in a later VM than some of its other pages. Contents with more
    copies than the copy classes (more than 16) included."""
    n = scaled(4000, 400)
    h = rng.integers(0, n // 8, size=n).astype(np.uint64)
    z = rng.random(n) < 0.3  # hash-only: zero flags that disagree within a content
    vm = np.repeat(np.array([3, 0, 2, 1]), -(-n // 4))[:n]
    for salt in (None, rng.integers(0, 2, size=n)):
        check(h, z, vm, 4, top_n=6, salt=salt)
        check(h, z, vm, 4, top_n=6, salt=salt, use_zero_pages=True, max_page_sharing=3)


@pytest.mark.parametrize("blocks", [True, False])
@pytest.mark.parametrize("trial", range(scaled(12, 3)))
def test_salts_of_vms_match_twin(rng, buckets, trial, blocks):
    """Salts that are sharing domains of VMs (``share --salting``): the records carry no salt
    (the kernel takes each VM's salt from its VM index). Random sets, VMs in blocks or not."""
    r = np.random.default_rng(100 + trial)
    n = int(r.integers(1, scaled(3000, 300)))
    nvm = int(r.integers(1, 9))
    h = r.integers(0, max(2, n // 3), size=n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    vm = r.integers(0, nvm, size=n).astype(np.uint8)
    if blocks:
        vm = np.sort(vm)
    vsalt = r.integers(-3, 3, size=nvm)
    salt = vsalt[vm]
    vs = np.zeros(nvm, np.int64)
    if not JIT_DISABLED:
        assert counts._salt_per_vm(salt.astype(np.int64), vm, nvm, vs)
    kw = dict(top_n=int(r.integers(0, 8)), use_zero_pages=bool(trial % 3 == 0), max_page_sharing=int(r.integers(2, 6)))
    if trial % 4 == 1:
        kw["eligible"] = r.random(n) > 0.1
    check(h, h == h[0], vm, nvm, salt=salt, **kw)


@pytest.mark.parametrize("blocks", [True, False])
def test_salts_of_vms_with_colliding_keys(rng, buckets, blocks):
    """Different contents whose mixed keys ``(hash ^ salt·C3)·C1`` are equal: hash ``h`` under
    salt 1 and ``h ^ C3 ^ 2·C3`` under salt 2, in VMs 0 (salt 1), 1 (salt 2) and 2 (salt 1
    again), beside ordinary contents. Their records differ only in the salt, which the kernel
    takes from the VM index after the scatter: sorted by key alone they would interleave."""
    m64 = (1 << 64) - 1
    c3 = int(counts._C3)
    base = [int(x) for x in rng.integers(0, 2**63, size=scaled(60, 12), dtype=np.uint64)]
    other = [x ^ ((c3 ^ (2 * c3)) & m64) for x in base]
    assert all(((x ^ c3) * int(counts._C1)) & m64 == ((y ^ (2 * c3 & m64)) * int(counts._C1)) & m64
               for x, y in zip(base, other, strict=True))  # fmt: skip
    plain = [int(x) for x in rng.integers(0, 50, size=scaled(300, 60))]
    t = len(plain) // 3
    p0, p1, p2 = plain[:t], plain[t : 2 * t], plain[2 * t :]
    h = np.array(base + p0 + other + p1 + base + p2, np.uint64)
    vm = np.repeat([0, 1, 2], [len(base) + len(p0), len(other) + len(p1), len(base) + len(p2)])
    if not blocks:
        order = rng.permutation(len(h))
        h, vm = h[order], vm[order]
    vsalt = np.array([1, 2, 1])
    for uzp in (False, True):
        check(h, h == h[0], vm, 3, salt=vsalt[vm], top_n=5, use_zero_pages=uzp, max_page_sharing=2)


@pytest.mark.parametrize(
    "case", ["empty", "one-vm", "all-identical", "all-zero", "skewed", "shared-top-bits", "colliding-heavy"]
)
def test_salts_of_vms_in_blocks_edge_cases(rng, buckets, case):
    """Salts of VMs with each VM's pages one block: the records are sorted by key alone and the
    scan tells the salts apart (a key under several salts is sorted by salt). Empty input, one
    VM, one content everywhere, all zero pages, one content with most pages, keys that agree in
    their top 40 bits under every salt, and a content of thousands of copies whose key equals
    another content's under another salt (the sort of that key gives up its insertion sort)."""
    n = scaled(3000, 300)
    nvm = 4
    vsalt = np.array([3, -1, 3, 7])
    m64 = (1 << 64) - 1
    c1inv, c3 = int(counts._C1_INV), int(counts._C3)
    kw: dict = {"top_n": 5}
    vm = np.sort(rng.integers(0, nvm, size=n))
    if case == "empty":
        h, vm = np.zeros(0, np.uint64), np.zeros(0, np.uint8)
    elif case == "one-vm":
        h = rng.integers(0, 50, size=n).astype(np.uint64)
        vm = np.zeros(n, np.uint8)
    elif case == "all-identical":
        h = np.full(n, 0xDEADBEEF, np.uint64)
    elif case == "all-zero":
        h = np.zeros(n, np.uint64)
    elif case == "skewed":  # the zero page holds 90 % of the pages
        h = rng.integers(1, 200, size=n).astype(np.uint64)
        h[rng.random(n) < 0.9] = 0
    elif case == "shared-top-bits":  # mixed keys (h ^ s·C3)·C1 equal in their top 40 bits
        low = rng.integers(0, 60, size=n)
        h = np.array(
            [
                ((((0xABCDEF1234 << 24) | int(x)) * c1inv) & m64) ^ ((int(vsalt[v]) * c3) & m64)
                for x, v in zip(low, vm, strict=True)
            ],
            np.uint64,
        )
    else:  # colliding-heavy: hash x under salt 3 (VMs 0, 2) and y under salt -1 (VM 1) share a key
        x = 0x1234567890ABCDEF
        y = x ^ ((3 * c3) & m64) ^ ((-1 * c3) & m64)
        k = n // 2
        h = np.array([x] * k + [y] * k + [x] * k + list(rng.integers(0, 30, size=n // 4)), np.uint64)
        vm = np.repeat([0, 1, 2, 3], [k, k, k, n // 4])
    z = h == 0
    for uzp in (False, True):
        check(h, z, vm, nvm, salt=vsalt[vm], use_zero_pages=uzp, max_page_sharing=3, **kw)


def test_salt_per_vm_detection():
    vm = np.array([0, 1, 1, 0, 2], np.uint8)
    vs = np.zeros(3, np.int64)
    assert counts._salt_per_vm(np.array([5, -1, -1, 5, 0], np.int64), vm, 3, vs)
    assert vs.tolist() == [5, -1, 0]
    assert not counts._salt_per_vm(np.array([5, -1, -2, 5, 0], np.int64), vm, 3, vs)  # VM 1 has two salts
    assert not counts._salt_per_vm(np.zeros(5, np.int64), vm, 2, vs)  # VM 2 out of range: _count reports it
    assert counts._salt_per_vm(np.full(3, 7, np.int64), np.zeros(0, np.int64), 1, vs)  # no VMs: one VM
    with pytest.raises(ValueError, match=r"vm indices must be in \[0, 2\); page 4 has 2"):
        count_sharing(np.arange(5, dtype=np.uint64), None, vm, ["a", "b"], salt=np.zeros(5, np.int64))


def test_synthetic_benchmark_input_matches_twin(buckets):
    """The benchmark's input generator, counted by the kernel and the twin."""
    from pagecore.bench.count import make_pages

    h, z, vm = make_pages(scaled(20_000, 500), vms=7, seed=3)
    check(h, z, vm, 7, top_n=10)


def test_count_hashes_is_the_same_kernel(rng):
    h = rng.integers(0, 500, size=scaled(10_000, 500)).astype(np.uint64)
    c = count_sharing(h, None, None, ["all"], top_n=0)
    assert count_hashes(h) == (c.t(T_DISTINCT), c.t(T_SHARED), c.t(T_SHARED_GROUPS))


def test_input_checks():
    h = np.arange(4, dtype=np.uint64)
    with pytest.raises(ValueError, match=r"vm indices must be in \[0, 2\); page 3 has 2"):
        count_sharing(h, h == 0, np.array([0, 1, 0, 2]), ["a", "b"])
    with pytest.raises(ValueError, match=r"vm indices must be in \[0, 2\)"):
        count_sharing(h, h == 0, np.array([0, -1, 0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="eligible must have shape"):
        count_sharing(h, h == 0, np.zeros(4, int), ["a"], eligible=np.ones(3, bool))
    with pytest.raises(ValueError, match="top_n"):
        count_sharing(h, h == 0, np.zeros(4, int), ["a"], top_n=-1)
    # vm as uint64 is accepted (converted), input arrays are not modified
    vm = np.array([0, 1, 1, 0], np.uint64)
    before = h.copy()
    count_sharing(h, None, vm, ["a", "b"])
    assert np.array_equal(h, before)


def _same(a, b):
    """Two SharingCounts equal to the bit (SHRDSVD's float sums included)."""
    assert np.array_equal(a.totals, b.totals)
    assert np.array_equal(a.per_vm, b.per_vm)
    assert a.shrdsvd.tobytes() == b.shrdsvd.tobytes()
    assert a.top == b.top


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_threads_give_the_same_bits(rng, monkeypatch, threads):
    """The same counts, to the bit, on any number of threads and ranges of pages: VMs in blocks
    that cross the ranges' ends (still blocks), a VM that comes back in a later range (not
    blocks), salts (of VMs and not), ineligible pages, payloads in their own array; and the
    twin agrees."""
    monkeypatch.setattr(counts, "SCATTER_MIN_PAGES", 8)
    monkeypatch.setattr(counts, "SCATTER_RANGE_TAILS", 0)
    monkeypatch.setattr(counts, "BUCKET_TARGET", 16)
    monkeypatch.setattr("pagecore._jit.max_threads", lambda: 8)
    n = scaled(5000, 600)
    h = rng.integers(0, n // 3, size=n).astype(np.uint64)
    z = h < n // 40
    blocks = np.repeat(np.arange(5), -(-n // 5))[:n]  # 5 VMs, each ~n/5 pages: crosses range ends
    back = blocks.copy()
    back[-7:] = 0  # VM 0 again at the end, in the last range
    inter = rng.integers(0, 5, size=n)
    for vm in (blocks, back, inter):
        for kw in ({}, {"salt": (vm // 2).astype(np.int64)}, {"salt": rng.integers(0, 3, size=n)},
                   {"eligible": rng.random(n) > 0.05}):  # fmt: skip
            one = count_sharing(h, z, vm, [f"vm{i}" for i in range(5)], top_n=7, threads=1, **kw)
            many = count_sharing(h, z, vm, [f"vm{i}" for i in range(5)], top_n=7, threads=threads, **kw)
            _same(one, many)
            check(h, z, vm, 5, top_n=7, **kw)
    # more than 2048 VMs: payloads in their own array
    vm = np.repeat(np.arange(3000), 2)
    h2 = rng.integers(0, 2000, size=vm.shape[0]).astype(np.uint64)
    names = [f"v{i}" for i in range(3000)]
    _same(count_sharing(h2, None, vm, names, threads=1), count_sharing(h2, None, vm, names, threads=threads))


def test_every_page_eligible_counts_as_without_flags(rng, monkeypatch):
    """Eligibility flags that are all true (verification found no false match) give the counts
    of no flags, to the bit, through the common path's kernels: the general scatter is not run
    (nor compiled, in a fresh clone, for a pipeline whose pages are all eligible)."""
    n = 4000
    h = rng.integers(0, n // 3, size=n).astype(np.uint64)
    z = h < n // 40
    vm = np.repeat(np.arange(4), n // 4)
    names = [f"vm{i}" for i in range(4)]
    want = count_sharing(h, z, vm, names, top_n=5)

    def general(*a):
        raise AssertionError("the general scatter ran")

    monkeypatch.setattr(counts, "_scatter", general)
    _same(count_sharing(h, z, vm, names, top_n=5, eligible=np.ones(n, bool)), want)
    with pytest.raises(AssertionError, match="general scatter"):  # one ineligible page: general path
        count_sharing(h, z, vm, names, eligible=np.arange(n) != 7)


def test_threads_vm_blocks_and_bad_index_across_ranges(monkeypatch):
    """Whether each VM's pages form one block is decided across the scatter's ranges (a VM that
    ends one range and starts the next is one block; one that comes back is not), and a bad VM
    index is reported at its first page whatever range it is in."""
    monkeypatch.setattr(counts, "SCATTER_MIN_PAGES", 4)
    monkeypatch.setattr(counts, "SCATTER_RANGE_TAILS", 0)
    monkeypatch.setattr("pagecore._jit.max_threads", lambda: 4)

    def vm_blocks(*ranges):  # (the range's VMs one block each, its VMs in the order met) per range
        return counts._vm_blocks([b for b, _ in ranges], [np.array(o, np.int64) for _, o in ranges])

    assert vm_blocks((True, [0, 1]), (True, [1, 2]), (True, [2]))
    assert not vm_blocks((True, [0, 1]), (True, [2, 0]))
    assert not vm_blocks((True, [0]), (False, [1]))
    assert vm_blocks((True, [0]), (True, []), (True, [0]))  # an empty range between
    h = np.arange(16, dtype=np.uint64)
    vm = np.zeros(16, np.int64)
    vm[[9, 13]] = 5
    with pytest.raises(ValueError, match=r"page 9 has 5"):
        count_sharing(h, None, vm, ["a", "b"], threads=4)
    with pytest.raises(ValueError, match="threads must be >= 0"):
        count_sharing(h, None, None, ["a"], threads=-1)


def test_scatter_ranges_are_few_enough():
    """One range per thread, but never so many that the ranges' unused block tails (2**b1 blocks
    each) pass a quarter of the records: 64 threads on 50 M pages get 5 ranges; small sets one."""
    b1, bs = 11, counts.SCATTER_BLOCK
    cuts = counts._scatter_ranges(50_000_000, 64, b1, bs)
    assert len(cuts) - 1 == 50_000_000 // (counts.SCATTER_RANGE_TAILS * (1 << b1) * bs)
    assert cuts[0] == 0 and cuts[-1] == 50_000_000 and cuts == sorted(cuts)
    assert counts._scatter_ranges(50_000_000, 2, b1, bs) == [0, 25_000_000, 50_000_000]
    assert counts._scatter_ranges(100_000, 2, 8, 256) == [0, 100_000]
    assert counts._scatter_ranges(0, 4, 1, 8) == [0, 0]


def test_chunks_cover_the_buckets():
    """Ranges of level-1 buckets (a function of the bucket sizes and the VM count only, so the
    threads cannot change them): cover every bucket once, in order, about equal in records; at
    most COUNT_CHUNKS; fewer for very many VMs; one for an empty set."""
    size = np.array([5, 0, 100, 3, 3, 3, 90, 0, 1, 1], np.int64)
    ch = counts._chunks(size, 4)
    assert ch[0][0] == 0 and ch[-1][1] == len(size)
    assert all(a < b for a, b in ch) and all(ch[i][1] == ch[i + 1][0] for i in range(len(ch) - 1))
    assert 2 <= len(ch) <= counts.COUNT_CHUNKS
    assert counts._chunks(np.zeros(8, np.int64), 4) == [(0, 8)]
    assert counts._chunks(size, 1 << 30) == [(0, len(size))]  # per-VM scratch too large for more


@pytest.mark.skipif(JIT_DISABLED, reason="already running without the JIT")
def test_kernel_without_jit():
    """This file again with NUMBA_DISABLE_JIT=1 (small inputs), so the Python bodies run too."""
    here = Path(__file__).parent
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "test_count_kernel.py"],
        cwd=here,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


@pytest.mark.parametrize("has_s", [False, True])
@pytest.mark.parametrize("m", [0, 1, 2, 3, 7, 64, 1000])
def test_stable_order_is_pythons_stable_sort(m, has_s):
    """The insertion sort's fallback: a merge sort by (key, salt), equal records in input order."""
    rng = np.random.default_rng(m + 10 * has_s)
    kk = rng.integers(-3, 3, m).astype(np.int64)  # many ties, negative keys too
    ss = rng.integers(0, 3, m).astype(np.int64)
    got = counts._stable_order(kk, ss, has_s, m)
    want = sorted(range(m), key=lambda i: (kk[i], ss[i]) if has_s else kk[i])
    assert got.tolist() == want


def test_stream_line_copies_one_aligned_line():
    """The scatter's 64-byte non-temporal store: eight int64 from anywhere in ``src`` to a
    64-byte aligned line of ``dst``, nothing else written."""
    from numba import njit

    from pagecore._intrinsics import store_fence, stream_line

    @njit
    def put(dst, i, src, j):
        stream_line(dst, i, src, j)
        store_fence()

    raw = np.full(40, -1, np.int64)
    skip = (-(raw.ctypes.data // 8)) % 8
    dst = raw[skip : skip + 32]
    src = np.arange(100, 120, dtype=np.int64)
    put(dst, 8, src, 3)
    assert dst[8:16].tolist() == list(range(103, 111))
    assert (dst[:8] == -1).all() and (dst[16:] == -1).all()


def test_bench_count_goals_line_reads_the_rows():
    """`pagecore bench count` states issue 18's goals from its own rows (no speed is asserted:
    the rows here are made up): one core's rate from the 1-thread CPU time, the ratio to
    numpy.unique's wall time per thread count, best over best and paired round by round."""
    from pagecore.bench.count import goals_line

    def row(method, threads, rounds):
        return {"method": method, "threads": threads, "wall_s": min(w for w, _ in rounds),
                "cpu_s": min(c for _, c in rounds), "rounds": rounds}  # fmt: skip

    rows = [
        row("count_sharing (share, workflow, bigcount)", 1, [(2.0, 2.0), (4.0, 4.0), (2.2, 2.2)]),
        row("count_sharing (share, workflow, bigcount)", 2, [(1.0, 2.0), (2.5, 5.0), (1.25, 2.5)]),
        row("count_sharing with salts (share --salting 2)", 1, [(9.0, 9.0), (9.0, 9.0), (9.0, 9.0)]),
        # the host slowed by half in round 2, for every method alike; numpy.unique's best round is
        # the first, so best over best pairs it with the count's own best round
        row("numpy.unique(return_counts=True)", 1, [(2.5, 2.5), (5.0, 5.0), (2.75, 2.75)]),
    ]
    line = goals_line(50_000_000, rows)
    assert "one core >= 30 M pages/s: 25.0 (not met)" in line
    assert "on 1 thread(s): best 1.25 x (not met), paired 1.25 x (not met)" in line
    assert "on 2 thread(s): best 2.50 x (met), paired 2.20 x (met)" in line
    assert "9.00" not in line and "0.28" not in line  # the salted row is not the goal's


def test_bench_count_paired_ratio_takes_each_round_on_its_own():
    """The paired ratio is the median of the per-round ratios: a round in which the count alone
    was slow (another process on its core) moves it only when such rounds are most of them."""
    from pagecore.bench.count import paired

    base = {"rounds": [(2.0, 2.0), (2.0, 2.0), (2.0, 2.0)]}
    row = {"rounds": [(1.0, 1.0), (4.0, 4.0), (0.8, 1.0)]}
    assert paired(row, base) == (2.0, 2.0)
    row["rounds"][0] = (4.0, 4.0)
    assert paired(row, base) == (0.5, 0.5)
    with pytest.raises(ValueError):  # the rounds pair up or nothing is said
        paired({"rounds": [(1.0, 1.0)]}, base)


@pytest.mark.skipif(JIT_DISABLED, reason="a benchmark's report: under NUMBA_DISABLE_JIT it would time pure Python")
def test_bench_count_runs_and_reports_both_ratios(capsys):
    """The whole `pagecore bench count` at a tiny size: the methods take turns, every row has its
    paired ratio, numpy.unique's own is 1, and the goals line states both (timings at this size
    mean nothing; only the report is checked)."""
    from pagecore.bench.count import main

    assert main(["--pages", "2e5", "--repeat", "2", "--threads", "2"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("count_sharing", "numpy.unique(return"))]
    assert len(rows) == 5  # unsalted and salted on 1 and 2 threads, numpy.unique
    for line in rows:
        nums = [float(x) for x in line.split()[-7:]]  # s, M pages/s (wall, CPU), then the three ratios
        assert nums[1] > 0 and nums[3] > 0 and all(x >= 0 for x in nums[-3:])
    assert rows[-1].split()[-3:] == ["1.00", "1.00", "1.00"]
    assert "on 2 thread(s): best" in out and "paired" in out.splitlines()[-2]


def test_careless_vm_indices_flags_and_top_n_are_refused():
    """Session 17 audit: a first page of VM -1 skipped the range check (pandas codes use -1 for a
    missing name), its pages counted as the last VM's; float indices were truncated (0.3 -> 0); a
    NaN zero flag was True; a fractional top_n was a NumPy TypeError from inside."""
    h = np.array([1, 1, 2, 2, 3], np.uint64)
    z = np.array([0, 0, 0, 0, 1], bool)
    for vm in ([-1, 1, 0, 1, 0], [-1, -1, -1, -1, -1], [0, 1, 0, 1, -1]):
        with pytest.raises(ValueError, match=r"vm indices must be in \[0, 2\)"):
            count_sharing(h, z, np.array(vm), ["a", "b"])
        with pytest.raises(ValueError, match=r"vm indices must be in \[0, 2\)"):
            count_sharing(h, z, np.array(vm), ["a", "b"], salt=np.arange(5))  # the general path too
    with pytest.raises(ValueError, match="whole VM indices"):
        count_sharing(h, z, np.array([0.3, 1.9, 0, 1, 0]), ["a", "b"])
    with pytest.raises(ValueError, match="whole VM indices"):
        count_sharing(h, z, np.array([0, np.nan, 0, 1, 0]), ["a", "b"])
    whole = count_sharing(h, z, np.array([0.0, 1.0, 0.0, 1.0, 0.0]), ["a", "b"])  # whole floats: as ints
    assert np.array_equal(whole.per_vm, count_sharing(h, z, np.array([0, 1, 0, 1, 0]), ["a", "b"]).per_vm)
    with pytest.raises(ValueError, match="zero must be bool flags"):
        count_sharing(h, np.array([0, 0, np.nan, 0, 1]), np.zeros(5, int), ["a"])
    with pytest.raises(ValueError, match="zero must be bool flags"):
        count_sharing(h, np.array([0, 0, 2, 0, 1]), np.zeros(5, int), ["a"])
    assert count_sharing(h, np.array([0, 0, 0, 0, 1.0]), np.zeros(5, int), ["a"]).t(T_ZERO) == 1
    for bad in (2.5, True, -1):
        with pytest.raises(ValueError, match="top_n must be a whole number"):
            count_sharing(h, z, np.zeros(5, int), ["a"], top_n=bad)


def _bucket(rng, b1, nvm, contents, halves=False):
    """A level-1 bucket as the scan sees it: packed records (key above ``b1`` bits, ``vm << 1 |
    zero`` below) sorted, so each content's pages come VM by VM; ``contents`` copies each (the
    first content is the zero page, if it has more than one copy). ``halves``: most contents'
    pages in even VMs only or odd VMs only (the salts of the test below), some in both."""
    recs = []
    for j, c in enumerate(contents):
        key = (j + 1) * 7919 << b1
        zero = int(j == 0 and c > 1)
        vms = rng.integers(0, nvm, c)
        if halves and j % 3:  # all even or all odd VMs
            vms = vms // 2 * 2 + j % 2
        recs += [key | int(v) << 1 | zero for v in vms]
    return np.sort(np.array(recs, np.int64))


@pytest.mark.parametrize("salted", [False, True])
@pytest.mark.parametrize("trial", range(scaled(16, 4)))
def test_windowed_scan_equals_one_pass_scan(trial, salted):
    """_scan_flat (three passes over windows that end where a content ends) adds exactly what
    _scan_packed (one pass) adds, the float sums and the top list included, for windows from
    one record to more than the bucket: contents longer than a window, windows that end at a
    content's end, the zero page, contents over max_page_sharing and the copy classes, windows
    of mostly single pages (the one-pass scan's), and with salts of VMs keys under one salt and
    under two (even and odd VMs, each their own salt, so a key's pages, VM by VM, change salt
    back and forth)."""
    rng = np.random.default_rng(trial)  # a case of its own per trial
    b1, nvm = 8, 60
    copies = rng.choice([1, 1, 2, 3, 4, 5, 15, 16, 17, 40], size=int(rng.integers(1, 120)))
    if trial % 3 == 2:  # mostly single pages
        copies = rng.choice([1] * 12 + [2, 3], size=int(rng.integers(1, 200)))
    rk = _bucket(rng, b1, nvm, copies, halves=salted)
    vs = np.tile(np.array([11, -5], np.int64), nvm // 2) if salted else None
    pmask = np.int64((1 << b1) - 1)
    uzp, mps, top_n = bool(trial % 2), (2, 3, 5, 256)[trial % 4], (0, 1, 3, 10)[trial // 4 % 4]
    cols = counts.H_CLASSES + counts.COPY_CLASSES + 1

    def run(window):
        hist, svd, acc = np.zeros((nvm, cols), np.int64), np.zeros(nvm), np.zeros(10, np.int64)
        top = tuple(np.zeros(top_n, t) for t in (np.int64, np.int64, np.int64, np.int64, np.bool_))
        if window is None:
            ntop = counts._scan_packed(rk, rk.size, pmask, vs, 5, b1, uzp, mps, 64, hist, svd, *top, np.int64(0), acc)
        else:
            starts, code = np.empty(window + 1, np.int32), np.empty(window, np.uint8)
            ntop = counts._scan_flat(
                rk, rk.size, pmask, vs, 5, b1, uzp, mps, 64, hist, svd, *top, np.int64(0), acc, starts, code
            )
        return hist, svd.tolist(), [t[:ntop].tolist() for t in top], acc.tolist()

    want = run(None)
    assert want[3][1] > 0  # shared pages counted
    for window in (1, 2, 3, 4, 5, 16, 17, 41, rk.size, rk.size + 3):
        got = run(window)
        assert (got[0] == want[0]).all(), window
        assert got[1:] == want[1:], window


@pytest.mark.parametrize("block", [counts.WC_LINE // 2, 3 * counts.WC_LINE])
def test_scatter_blocks_must_hold_whole_write_buffers(monkeypatch, block):
    """The scatter writes whole write-combining buffers (WC_LINE records) into blocks: a block
    smaller than a buffer or not a power of two would mix buckets' records (a fuzz setting of
    8-record blocks gave wrong counts once the buffers held 16); refused before any count."""
    monkeypatch.setattr(counts, "SCATTER_BLOCK", block)
    with pytest.raises(ValueError, match="SCATTER_BLOCK"):
        count_sharing(np.arange(100, dtype=np.uint64), None, None, ["vm0"])
