"""Sharing metrics: the Numba group scan against dict counting and content grouping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import scaled
from slow_twins import sharing_by_content, sharing_by_hash

from pagecore.pages.hashing import hash_pages
from pagecore.sharing import sharing_report, vm_count_sweep

FIELDS = [
    "total_pages",
    "zero_pages",
    "shared_pages",
    "reclaimed_pages",
    "distinct_pages",
    "shared_minus_reclaimed_pages",
]


def _as_dict(rep):
    d = rep.to_dict()
    return {k: d[k] for k in FIELDS}


@pytest.mark.parametrize("n,alphabet", [(0, 1), (1, 1), (2, 1), (50, 3), (1000, 40), (5000, 5000)])
def test_group_scan_matches_dict(rng, n, alphabet):
    hashes = rng.integers(0, alphabet, size=n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    zero = rng.random(n) < 0.1
    assert _as_dict(sharing_report(hashes, zero)) == sharing_by_hash(hashes.tolist(), zero.tolist())


def test_categories_account_for_every_page(rng):
    hashes = rng.integers(0, 300, size=2000, dtype=np.uint64)
    rep = sharing_report(hashes, np.zeros(2000, bool))
    unshared = rep.total_pages - rep.shared_pages
    # every page is shared or unshared; every page is a distinct content's first copy or reclaimed
    assert rep.shared_pages + unshared == rep.total_pages
    assert rep.distinct_pages + rep.reclaimed_pages == rep.total_pages
    assert rep.shared_minus_reclaimed_pages + unshared == rep.distinct_pages


def test_from_page_bytes_matches_content_grouping(rng):
    """Hash real page bytes, then count: equals grouping by full content."""
    n = scaled(400, 40)
    uniq = rng.integers(0, 256, size=(n // 4, 4096), dtype=np.uint8)
    uniq[0] = 0
    pick = rng.integers(0, n // 4, size=n)
    pages = uniq[pick]
    h, z = hash_pages(pages)
    got = _as_dict(sharing_report(h, z))
    assert got == sharing_by_content([p.tobytes() for p in pages])


def test_edge_cases():
    one = sharing_report(np.array([7], np.uint64), np.array([False]))
    assert (one.shared_pages, one.reclaimed_pages, one.distinct_pages) == (0, 0, 1)
    same = sharing_report(np.full(100, 7, np.uint64), np.zeros(100, bool))
    assert (same.shared_pages, same.reclaimed_pages, same.shared_minus_reclaimed_pages) == (100, 99, 1)
    empty = sharing_report(np.zeros(0, np.uint64), np.zeros(0, bool))
    assert empty.total_pages == 0 and empty.distinct_pages == 0


def test_input_validation():
    with pytest.raises(ValueError, match="uint64"):
        sharing_report(np.zeros(3, np.int64), np.zeros(3, bool))
    with pytest.raises(ValueError, match="bool"):
        sharing_report(np.zeros(3, np.uint64), np.zeros(2, bool))


def test_mb_and_expected_false_matches():
    rep = sharing_report(np.arange(256, dtype=np.uint64), np.zeros(256, bool))
    d = rep.to_dict()
    assert d["total_mb"] == 1.0
    assert 0 < d["expected_false_matches"] < 1e-14
    assert d["verified"] is False


def _frame(rng, vms=4, per_vm=300, alphabet=500):
    rows = []
    for v in range(vms):
        h = rng.integers(0, alphabet, size=per_vm, dtype=np.uint64)
        rows.append(pd.DataFrame({"vm": f"vm{v}", "hash": h, "zero": h == 0}))
    return pd.concat(rows, ignore_index=True)


def test_vm_count_sweep_matches_twin(rng):
    df = _frame(rng)
    sweep = vm_count_sweep(df)
    names = sorted(df["vm"].unique())
    for i, row in sweep.iterrows():
        sub = df[df["vm"].isin(names[: i + 1])]
        twin = sharing_by_hash(sub["hash"].tolist(), sub["zero"].tolist())
        assert {k: int(row[k]) for k in FIELDS} == twin
        assert row["vms"] == i + 1
        assert row["reclaimed_pct"] == pytest.approx(100 * twin["reclaimed_pages"] / twin["total_pages"])


def test_vm_count_sweep_order_and_missing(rng):
    df = _frame(rng, vms=3)
    a = vm_count_sweep(df, order=["vm2", "vm0", "vm1"])
    b = vm_count_sweep(df)
    assert a.iloc[-1]["reclaimed_pages"] == b.iloc[-1]["reclaimed_pages"]
    with pytest.raises(ValueError, match="vm9"):
        vm_count_sweep(df, order=["vm9"])


@pytest.mark.parametrize(
    "kind",
    ["random-dups", "all-identical", "all-distinct", "small-ints", "one", "empty", "two-buckets"],
)
def test_count_hashes_matches_counter(rng, kind):
    from collections import Counter

    from pagecore.sharing.fastcount import count_hashes

    n = scaled(200_000, 3000)
    if kind == "random-dups":
        uniq = rng.integers(0, 2**64 - 1, size=n // 3, dtype=np.uint64)
        h = uniq[rng.integers(0, len(uniq), size=n)]
    elif kind == "all-identical":
        h = np.full(n, 0xDEADBEEF, np.uint64)
    elif kind == "all-distinct":
        h = rng.permutation(np.arange(n, dtype=np.uint64)) * np.uint64(0x9E3779B97F4A7C15)
    elif kind == "small-ints":  # every key in the first radix bucket
        h = rng.integers(0, 50, size=n // 10).astype(np.uint64)
    elif kind == "one":
        h = np.array([5], np.uint64)
    elif kind == "empty":
        h = np.zeros(0, np.uint64)
    else:  # keys only in the lowest and highest bucket
        h = np.concatenate([np.zeros(7, np.uint64), np.full(9, 2**64 - 1, np.uint64), np.array([3], np.uint64)])
    before = h.copy()
    d, s, g = count_hashes(h)
    c = Counter(h.tolist())
    assert (d, s, g) == (len(c), sum(v for v in c.values() if v > 1), sum(1 for v in c.values() if v > 1))
    assert np.array_equal(h, before)  # input untouched
