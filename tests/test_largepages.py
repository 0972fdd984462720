"""Large-page regions: savings per region and the greedy breaking curve, against slow twins."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from pagecore.sharing.largepages import large_page_savings, regions_to_reach


def slow_savings(pages, broken) -> int:
    """Savings when only regions in ``broken`` are small pages (module docstring's definition)."""
    zeros = 0
    copies = Counter()
    for vm, gpfn, h, z, d in pages:
        if (vm, gpfn // 512) not in broken:
            continue
        if z:
            zeros += 1
        else:
            copies[(d, h)] += 1
    return zeros + sum(c - 1 for c in copies.values())


def slow_greedy(pages):
    regions = sorted({(vm, g // 512) for vm, g, _, _, _ in pages})
    broken, order, gains = set(), [], []
    cur = 0
    for _ in regions:
        best, best_gain = None, None
        for r in regions:  # sorted, so the first maximum is the lowest (vm, region)
            if r in broken:
                continue
            g = slow_savings(pages, broken | {r}) - cur
            if best_gain is None or g > best_gain:
                best, best_gain = r, g
        broken.add(best)
        cur += best_gain
        order.append(best)
        gains.append(best_gain)
    return regions, order, gains


def random_pages(seed, n=300, vms=("a", "b"), gpfn_max=6 * 512, contents=40, domains=1):
    rng = np.random.default_rng(seed)
    vm = np.array(vms)[rng.integers(0, len(vms), n)]
    gpfn = rng.choice(gpfn_max, n, replace=False).astype(np.uint64) if n <= gpfn_max else None
    h = rng.integers(0, contents, n).astype(np.uint64)
    z = h < 3
    h[z] = 0
    d = rng.integers(0, domains, n)
    return vm, gpfn, h, z, d


def as_rows(vm, gpfn, h, z, d):
    return [(str(a), int(b), int(c), bool(e), int(f)) for a, b, c, e, f in zip(vm, gpfn, h, z, d, strict=True)]


@pytest.mark.parametrize("seed", range(6))
def test_greedy_curve_matches_brute_force(seed):
    vm, gpfn, h, z, d = random_pages(seed, domains=1 + seed % 2)
    reg, curve = large_page_savings(vm, gpfn, h, z, domain=d)
    rows = as_rows(vm, gpfn, h, z, d)
    regions, order, gains = slow_greedy(rows)
    assert list(zip(reg["vm"], reg["region"], strict=True)) == regions
    assert list(zip(curve["vm"][1:], curve["region"][1:], strict=True)) == order
    assert curve["gain"][1:].tolist() == gains
    total = slow_savings(rows, set(regions))
    assert curve["saved_pages"].iloc[-1] == total == curve.attrs["total_saved_pages"]
    # per-region: alone = savings if only it were broken; attributed sums to the total
    for (v, r), alone in zip(regions, reg["alone"], strict=True):
        assert alone == slow_savings(rows, {(v, r)})
    assert reg["attributed"].sum() == pytest.approx(total)
    assert reg["pages"].sum() == len(rows)


@pytest.mark.parametrize("seed", range(3))
def test_greedy_never_beats_the_optimum(seed):
    vm, gpfn, h, z, d = random_pages(100 + seed, n=120, gpfn_max=5 * 512, contents=15)
    rows = as_rows(vm, gpfn, h, z, d)
    _, curve = large_page_savings(vm, gpfn, h, z, domain=d)
    regions = sorted({(v, g // 512) for v, g, _, _, _ in rows})
    for k in range(len(regions) + 1):
        best = max(slow_savings(rows, set(c)) for c in itertools.combinations(regions, k))
        assert curve["saved_pages"].iloc[k] <= best
    assert curve["saved_pages"].iloc[-1] == best


def test_edge_cases():
    empty = np.zeros(0, np.uint64)
    reg, curve = large_page_savings(np.array([], str), empty, empty, np.zeros(0, bool))
    assert len(reg) == 0 and curve["saved_pages"].tolist() == [0]
    reg, curve = large_page_savings(["a"], np.array([5], np.uint64), np.array([9], np.uint64), np.array([False]))
    assert curve["saved_pages"].tolist() == [0, 0]
    # all zero: every zero page saves one page, wherever it is
    g = np.arange(0, 2048, 3, dtype=np.uint64)
    reg, curve = large_page_savings(["a"] * len(g), g, np.zeros(len(g), np.uint64), np.ones(len(g), bool))
    assert curve["saved_pages"].iloc[-1] == len(g)
    assert (np.diff(curve["gain"][1:]) <= 0).all()  # zero-only gains are independent: non-increasing
    # a content split across two regions: breaking one saves nothing, both saves one
    reg, curve = large_page_savings(
        ["a", "a"], np.array([0, 512], np.uint64), np.array([7, 7], np.uint64), np.array([False, False])
    )
    assert curve["gain"].tolist() == [0, 0, 1]
    assert regions_to_reach(curve, 1.0) == 2


def test_plots_return_figures():
    from matplotlib.figure import Figure

    from pagecore.plotting.compression import compression_ladder
    from pagecore.plotting.largepages import large_page_breaking
    from pagecore.sharing.compress import reclamation_ladder

    vm, gpfn, h, z, _ = random_pages(7)
    reg, curve = large_page_savings(vm, gpfn, h, z)
    fig = large_page_breaking({"x": curve}, {"x": reg})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 2  # the curve and the proportional reference
    import pandas as pd

    f = pd.DataFrame({"vm": vm, "hash": h, "zero": z, "same_filled": z, "csize_lz4": np.full(len(h), 900)})
    fig = compression_ladder({"x": reclamation_ladder(f, "lz4", salting=2)})
    assert isinstance(fig, Figure)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert sum(heights[:5]) == pytest.approx(100)  # the five steps fill the bar


def test_summary_marks():
    from pagecore.sharing.largepages import large_page_summary

    vm, gpfn, h, z, d = random_pages(3)
    reg, curve = large_page_savings(vm, gpfn, h, z, domain=d)
    s = large_page_summary(curve, reg)
    assert s["regions"] == len(reg) and s["regions_to_reach"]["1"] <= len(reg)
    assert s["saved_pages_all_broken"] == curve["saved_pages"].iloc[-1]
    k = s["regions_to_reach"]["0.5"]
    assert curve["saved_fraction"].iloc[k] >= 0.5 and (k == 0 or curve["saved_fraction"].iloc[k - 1] < 0.5)


def test_large_page_report_against_the_slow_twin():
    """Backable regions are the full ones; the savings they hide and those a host's THP hide
    are the slow twin's savings with only the other regions broken."""
    from pagecore.sharing.largepages import backable_regions, large_page_report

    rng = np.random.default_rng(11)
    # a: regions 0 and 1 full, region 2 with one frame missing; b: region 0 half full
    ga = np.concatenate([np.arange(1024), np.arange(1024, 1535)]).astype(np.uint64)
    gb = np.arange(256, dtype=np.uint64)
    vm = np.array(["a"] * len(ga) + ["b"] * len(gb))
    gpfn = np.concatenate([ga, gb])
    h = rng.integers(0, 300, len(gpfn)).astype(np.uint64)
    z = h < 20
    h[z] = 0
    rows = as_rows(vm, gpfn, h, z, np.zeros(len(h), int))
    allr = {(v, g // 512) for v, g, *_ in rows}
    total = slow_savings(rows, allr)
    in_b, n, nb = backable_regions(vm, gpfn)
    assert (n, nb) == (4, 2) and in_b.sum() == 1024
    thp = (vm == "a") & (gpfn >= 512) & (gpfn < 1024)  # the host backs a's region 1 with a THP
    rep = large_page_report(vm, gpfn, h, z, thp=thp)
    assert rep["regions"] == 4 and rep["backable_regions"] == 2 and rep["backable_pages"] == 1024
    assert rep["saved_pages_small_pages"] == total
    kept = slow_savings(rows, {("a", 2), ("b", 0)})
    assert rep["saved_pages_if_backed"] == kept and rep["lost_pages_if_backed"] == total - kept
    assert rep["lost_zero_pages_if_backed"] == int(z[in_b].sum())
    assert rep["host_thp_regions"] == 1
    assert rep["lost_pages_host_thp"] == total - slow_savings(rows, allr - {("a", 1)})
    reach = rep["regions_to_reach"]
    assert reach["0.5"] <= reach["0.9"] <= reach["0.99"] <= 4
    # a THP flag on part of a region does not make it a large page
    assert large_page_report(vm, gpfn, h, z, thp=thp & (gpfn != 700))["host_thp_regions"] == 0
