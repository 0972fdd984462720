"""Free page reporting model (issue 20): which pages the host discards, and when, against slow twins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pagecore.errors import InputError
from pagecore.experiments.cooperative import (
    ReportingParams,
    free_report,
    reclaim_timeline,
    reportable_mask,
    synthetic_guest_free,
)
from pagecore.synth.fig04 import Fig04Model

ONE_ZONE = (("Z", 0),)


def slow_reportable(table: pd.DataFrame, p: ReportingParams) -> np.ndarray:
    """Page by page: whole aligned chunk present and free, and the zone above its watermark."""
    out = np.zeros(len(table), bool)
    starts = [s for _, s in p.zones]
    names = [n for n, _ in p.zones]

    def zone(g):
        z = 0
        for i, s in enumerate(starts):
            if g >= s:
                z = i
        return z

    for vm in table["vm"].unique():
        rows = [i for i in range(len(table)) if table["vm"].iloc[i] == vm]
        free = {int(table["gpfn"].iloc[i]): bool(table["guest_free"].iloc[i]) for i in rows}
        zfree = {}
        for g, f in free.items():
            zfree[zone(g)] = zfree.get(zone(g), 0) + f
        for i in rows:
            g = int(table["gpfn"].iloc[i])
            c = g // p.chunk_pages
            whole = all(free.get(c * p.chunk_pages + k, False) for k in range(p.chunk_pages))
            z = zone(g)
            out[i] = whole and zfree[z] > p.low(names[z]) + p.capacity * p.chunk_pages
    return out


def _table(rng, vms=2, pages=4096, free_chunks=3, order=4, noise=0.3, holes=0):
    parts = []
    for v in range(vms):
        gpfn = np.arange(pages, dtype=np.uint64)
        free = rng.random(pages) < noise
        for c in rng.choice(pages >> order, size=free_chunks, replace=False):
            free[c << order : (c + 1) << order] = True
        keep = np.ones(pages, bool)
        if holes:
            keep[rng.choice(pages, size=holes, replace=False)] = False
        parts.append(pd.DataFrame({"vm": f"vm{v}", "gpfn": gpfn[keep], "guest_free": free[keep]}))
    t = pd.concat(parts, ignore_index=True)
    t["hash"] = np.uint64(0)
    t["zero"] = False
    return t.sample(frac=1.0, random_state=int(rng.integers(1 << 30))).reset_index(drop=True)


def test_refuses_without_guest_free():
    t = pd.DataFrame({"vm": ["a"], "gpfn": np.array([0], np.uint64), "hash": np.uint64(1), "zero": False})
    for f in (reportable_mask, free_report, reclaim_timeline):
        with pytest.raises(InputError, match="guest_free") as e:
            f(t, where="pages.parquet")
        assert "\n" not in str(e.value) and str(e.value).startswith("pages.parquet:")


def test_kernel_defaults_are_the_cited_ones():
    p = ReportingParams()
    assert (p.order, p.chunk_pages, p.delay_s, p.capacity, p.max_order) == (9, 512, 2.0, 32, 10)


@pytest.mark.parametrize("seed", range(6))
def test_mask_matches_slow_twin_random(seed):
    rng = np.random.default_rng(seed)
    p = ReportingParams(order=4, max_order=6, capacity=2, zones=(("A", 0), ("B", 1024), ("C", 3000)))
    t = _table(rng, free_chunks=int(rng.integers(0, 40)), holes=int(rng.integers(0, 3)), noise=rng.random() * 0.9)
    np.testing.assert_array_equal(reportable_mask(t, p), slow_reportable(t, p))


@pytest.mark.parametrize(
    "case",
    ["empty", "one_page", "all_free", "none_free", "chunk_missing_a_page", "zone_under_watermark"],
)
def test_mask_edge_cases(case):
    p = ReportingParams(order=3, max_order=5, capacity=1, zones=ONE_ZONE)
    n = 64
    gpfn = np.arange(n, dtype=np.uint64)
    free = np.ones(n, bool)
    if case == "empty":
        gpfn, free = gpfn[:0], free[:0]
    elif case == "one_page":
        gpfn, free = gpfn[:1], free[:1]
    elif case == "none_free":
        free[:] = False
    elif case == "chunk_missing_a_page":
        gpfn, free = np.delete(gpfn, 5), np.delete(free, 5)
    elif case == "zone_under_watermark":
        p = ReportingParams(order=3, max_order=5, capacity=1, zones=ONE_ZONE, low_wmark_pages=n)
    t = pd.DataFrame({"vm": "a", "gpfn": gpfn, "guest_free": free})
    got = reportable_mask(t, p)
    np.testing.assert_array_equal(got, slow_reportable(t, p))
    expect = {"all_free": n, "chunk_missing_a_page": n - 8}.get(case, 0)
    assert got.sum() == expect


def test_dma_zone_is_never_reported_at_kernel_defaults():
    """32 << 9 pages = 64 MiB of margin: the 16 MiB DMA zone can never pass the watermark."""
    n = 1 << 16  # 256 MiB, all free
    t = pd.DataFrame({"vm": "a", "gpfn": np.arange(n, dtype=np.uint64), "guest_free": True})
    m = reportable_mask(t, ReportingParams())
    assert not m[:4096].any() and m[4096:].all()


def test_free_report_accounts_every_page():
    rng = np.random.default_rng(7)
    p = ReportingParams(order=4, max_order=6, capacity=2, zones=ONE_ZONE)
    t = _table(rng, free_chunks=30)
    t["host_present"] = rng.random(len(t)) < 0.8
    r = free_report(t, p).set_index("vm")
    m = reportable_mask(t, p)
    for vm, row in r.iterrows():
        sel = (t["vm"] == vm).to_numpy()
        assert row["reported"] == m[sel].sum()
        assert row["discarded"] == (m & t["host_present"].to_numpy())[sel].sum()
        assert row["backed_before"] == row["backed_after"] + row["discarded"]
        assert row["stranded_free"] == row["guest_free"] - row["reported"]
        assert row["free_chunks"] * 16 >= row["reported"]


def test_timeline_story_budget_spreads_reports_over_passes():
    """Five free order-3 chunks at frames 0..39 (chunks 0-4) of one zone, capacity 1, max order 3:
    each pass may report (ceil(5 / 16) + 1) * 1 = 2 blocks, so passes at 2, 4 and 6 s report
    2, 2 and 1 chunks (16, 32, 40 pages) and the worker stops."""
    p = ReportingParams(order=3, max_order=3, capacity=1, zones=ONE_ZONE)
    n = 64
    free = np.zeros(n, bool)
    free[:40] = True
    t = pd.DataFrame({"vm": "a", "gpfn": np.arange(n, dtype=np.uint64), "guest_free": free})
    tl = reclaim_timeline(t, p, t_free=10.0)
    assert tl["event"].tolist() == ["start", "report", "report", "report"]
    assert tl["t"].tolist() == [10.0, 12.0, 14.0, 16.0]
    assert tl["reported"].tolist() == [0, 16, 32, 40]
    assert tl["backed"].tolist() == [64, 48, 32, 24]


def test_timeline_buddy_merge_counts_blocks_not_chunks():
    """The same 40 free pages with max order 4: chunks (0,1) and (2,3) merge into two order-4
    blocks, chunk 4 stays order 3. Each list has at most 2 blocks, so one pass reports all."""
    p = ReportingParams(order=3, max_order=4, capacity=1, zones=ONE_ZONE)
    free = np.zeros(64, bool)
    free[:40] = True
    t = pd.DataFrame({"vm": "a", "gpfn": np.arange(64, dtype=np.uint64), "guest_free": free})
    tl = reclaim_timeline(t, p)
    assert tl["reported"].tolist() == [0, 40]
    assert tl["t"].tolist() == [0.0, 2.0]


def test_timeline_reuse_faults_back_and_blocks_report():
    """Chunks 0 and 1 free. Page 3 is reused at 1 s (before the 2 s pass): chunk 0 is never
    reported. Page 9 is reused at 5 s, after chunk 1 was reported: it faults back in."""
    p = ReportingParams(order=3, max_order=3, capacity=1, zones=ONE_ZONE)
    free = np.zeros(32, bool)
    free[:16] = True
    t = pd.DataFrame({"vm": "a", "gpfn": np.arange(32, dtype=np.uint64), "guest_free": free})
    reuse = pd.DataFrame({"t": [1.0, 5.0], "vm": ["a", "a"], "gpfn": np.array([3, 9], np.uint64)})
    tl = reclaim_timeline(t, p, reuse=reuse)
    assert tl["event"].tolist() == ["start", "reuse", "report", "reuse"]
    assert tl["reported"].tolist() == [0, 0, 8, 7]
    assert tl["backed"].tolist() == [32, 32, 24, 25]


@pytest.mark.parametrize("seed", range(3))
def test_timeline_ends_where_free_report_says(seed):
    rng = np.random.default_rng(seed)
    p = ReportingParams(order=4, max_order=6, capacity=2, zones=(("A", 0), ("B", 2048)))
    t = _table(rng, free_chunks=int(rng.integers(5, 60)), noise=0.2)
    t["host_present"] = rng.random(len(t)) < 0.7
    end = reclaim_timeline(t, p).groupby("vm").last()
    r = free_report(t, p).set_index("vm")
    for vm in r.index:
        assert end.loc[vm, "reported"] == r.loc[vm, "reported"]
        assert end.loc[vm, "backed"] == r.loc[vm, "backed_after"]


def test_synthetic_rules_bracket_the_saving():
    m = Fig04Model(mem_mb=96, zero=0.8, common=0.1, seed=3)
    gpfn, _, zero = m.page_table(0)
    rows = []
    for rule in ("zero", "top"):
        f = synthetic_guest_free(gpfn, zero, rule=rule)
        assert f.sum() == zero.sum()
        rows.append(free_report(pd.DataFrame({"vm": "v", "gpfn": gpfn, "guest_free": f}))["reported"].iloc[0])
    low, high = rows
    assert low == 0  # scattered zero pages never fill a 2 MiB chunk
    # top: 76.8 MiB free (> the 64 MiB margin), every whole chunk above the boundary
    n_free = int(zero.sum())
    assert high == (n_free // 512) * 512 > 0


def test_synthetic_top_reports_whole_chunks_when_zone_has_room():
    m = Fig04Model(mem_mb=256, zero=0.6, seed=1)
    gpfn, _, zero = m.page_table(0)
    f = synthetic_guest_free(gpfn, zero, rule="top")
    r = free_report(pd.DataFrame({"vm": "v", "gpfn": gpfn, "guest_free": f}))
    assert r["reported"].iloc[0] == (int(f.sum()) // 512) * 512
    with pytest.raises(ValueError):
        synthetic_guest_free(gpfn, zero, rule="nope")
