"""The KSM emulator and the ESX page-sharing scanner over time (issue 8).

The strong check: after full convergence on a static set, each model's final counters equal the
exact counts of :func:`pagecore.sharing.count_sharing` for the same pages.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pagecore.cli import main
from pagecore.sharing import count_sharing
from pagecore.sharing.ksm import KsmSettings, emulate_ksm
from pagecore.sharing.pagehistory import PageHistory, with_random_writes
from pagecore.sharing.scanner import EsxScanner, ScannerSettings, emulate_scanner

KSM_KEYS = ("pages_shared", "pages_sharing", "pages_unshared", "ksm_zero_pages", "general_profit")


def random_set(seed, n=600, nvm=3, distinct=150, zero_frac=0.1):
    rng = np.random.default_rng(seed)
    c = rng.integers(1, distinct, n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z = rng.random(n) < zero_frac
    c[z] = 0
    return c, z, rng.integers(0, nvm, n), [f"vm{i}" for i in range(nvm)]


def named_sets():
    yield "random", *random_set(1)
    yield "one page", np.array([5], np.uint64), np.array([False]), np.array([0]), ["a"]
    yield "all identical", np.full(100, 7, np.uint64), np.zeros(100, bool), np.zeros(100, int), ["a"]
    yield "all zero", np.zeros(50, np.uint64), np.ones(50, bool), np.arange(50) % 2, ["a", "b"]
    # copies ≡ 1 (mod max_page_sharing): the last copy has no partner for a new KSM page
    yield "9 copies", np.full(9, 3, np.uint64), np.zeros(9, bool), np.zeros(9, int), ["a"]


@pytest.mark.parametrize("uzp", [False, True])
@pytest.mark.parametrize("smart", [False, True])
@pytest.mark.parametrize("mps", [4, 256])
def test_ksm_converges_to_exact_counts(uzp, smart, mps):
    for name, h, z, vm, names in named_sets():
        hist = PageHistory.from_pages(h, z, vm, names)
        r = emulate_ksm(hist, KsmSettings(pages_to_scan=37, use_zero_pages=uzp, smart_scan=smart, max_page_sharing=mps))
        want = count_sharing(h, z, vm, names, use_zero_pages=uzp, max_page_sharing=mps).to_dict()["ksm"]
        got = {k: r.final[k] for k in KSM_KEYS}
        if smart:  # skipped unique pages leave the unstable tree for a while (counted volatile)
            assert got["pages_unshared"] + r.final["pages_volatile"] == want["pages_unshared"], name
            got["pages_unshared"] = want["pages_unshared"]
            got["general_profit"] = want["general_profit"]
        else:
            assert r.final["pages_volatile"] == 0, name
        assert got == {k: want[k] for k in KSM_KEYS}, name


def test_ksm_doc_oracle():
    """100 identical mergeable pages -> 1 shared, 99 sharing; half of them zero with
    use_zero_pages -> 50 zero pages, 1 shared, 49 sharing (GingerDeity/DedupeResearch)."""
    h = np.full(100, 9, np.uint64)
    r = emulate_ksm(PageHistory.from_pages(h, np.zeros(100, bool), np.zeros(100, int), ["a"]))
    assert (r.final["pages_shared"], r.final["pages_sharing"]) == (1, 99)
    h[:50] = 0
    z = h == 0
    r = emulate_ksm(PageHistory.from_pages(h, z, np.zeros(100, int), ["a"]), KsmSettings(use_zero_pages=True))
    assert (r.final["ksm_zero_pages"], r.final["pages_shared"], r.final["pages_sharing"]) == (50, 1, 49)


def test_ksm_pacing_and_convergence_time():
    """Two copies of 100 contents, 200 pages, 100 pages per 20 ms wake-up: the first full scan
    only records checksums, the second merges: settled at 2 scans = 0.08 s."""
    h = np.tile(np.arange(1, 101, dtype=np.uint64), 2)
    r = emulate_ksm(PageHistory.from_pages(h, np.zeros(200, bool), np.zeros(200, int), ["a"]))
    assert r.final["pages_sharing"] == 100
    assert r.seconds_to_converge == pytest.approx(0.08)
    r2 = emulate_ksm(
        PageHistory.from_pages(h, np.zeros(200, bool), np.zeros(200, int), ["a"]), KsmSettings(sleep_millisecs=40)
    )
    assert r2.seconds_to_converge == pytest.approx(0.16)
    assert list(r.timeline.columns[:2]) == ["t", "full_scans"]


def test_ksm_volatile_pages_never_merge_and_cow_breaks():
    """A page rewritten more often than it is visited never passes the checksum filter; a
    write to a merged page is un-counted at ksmd's next visit."""
    n = 20
    h = np.full(n, 11, np.uint64)
    base = PageHistory.from_pages(h, np.zeros(n, bool), np.zeros(n, int), ["a"])
    # page 0 gets fresh content every 10 ms for 10 s (ksmd visits it every 20 ms)
    k = 1000
    hist = PageHistory(
        base.vm_names,
        base.vm,
        base.gpfn,
        base.content,
        np.concatenate([base.content_hash, np.arange(1000, 1000 + k, dtype=np.uint64)]),
        -1,
        np.arange(k) * 0.01,
        np.zeros(k, np.int64),
        1 + np.arange(k, dtype=np.int64),
    )
    r = emulate_ksm(hist, KsmSettings(pages_to_scan=n, smart_scan=False), until_s=5.0)
    assert r.final["pages_sharing"] == n - 2  # pages 1..19 merged, page 0 volatile
    assert r.final["pages_volatile"] == 1


def test_ksm_deterministic_and_writes():
    h, z, vm, names = random_set(4)
    hist = with_random_writes(
        PageHistory.from_pages(h, z, vm, names), fraction=0.2, mean_interval_s=0.5, duration_s=3, seed=1
    )
    a = emulate_ksm(hist)
    b = emulate_ksm(hist)
    pd.testing.assert_frame_equal(a.timeline, b.timeline)
    assert a.seconds_to_converge >= 0


@pytest.mark.parametrize("seed", [0, 1])
def test_scanner_converges_to_exact_counts(seed):
    for name, h, z, vm, names in named_sets():
        hist = PageHistory.from_pages(h, z, vm, names)
        r = emulate_scanner(hist, ScannerSettings(seed=seed, scan_rate_vm=7, scan_rate_total=13))
        want = count_sharing(h, z, vm, names).to_dict()
        assert r.final["shared_pages"] == want["shared_pages"], name
        assert r.final["reclaimed_pages"] == want["reclaimed_pages"], name
        assert r.final["shared_frames"] == want["shared_pages"] - want["reclaimed_pages"], name
        assert r.final["hint_frames"] == want["unshared_pages"], name
        assert r.final["table_pct_of_memory"] < 0.5


def test_scanner_rate_caps_and_determinism():
    h, z, vm, names = random_set(2, n=900, nvm=3)
    vm = np.arange(900) % 3  # 300 pages per VM
    hist = PageHistory.from_pages(h, z, vm, names)
    # per VM min(50, 60/3) = 20 pages/s: one pass of 300 pages takes 15 s
    r = emulate_scanner(hist, ScannerSettings(scan_rate_vm=50, scan_rate_total=60, seed=3))
    assert r.timeline["t"].iloc[-1] == pytest.approx(15.0)
    assert r.timeline["pages_scanned"].diff().dropna().max() == 60
    r2 = emulate_scanner(hist, ScannerSettings(scan_rate_vm=50, scan_rate_total=60, seed=3))
    pd.testing.assert_frame_equal(r.timeline, r2.timeline)
    r3 = emulate_scanner(hist, ScannerSettings(scan_rate_vm=50, scan_rate_total=60, seed=4))
    assert not r.timeline["reclaimed_pages"].equals(r3.timeline["reclaimed_pages"])


def test_scanner_false_matches_make_pages_ineligible():
    """With 4-bit hashes distinct contents collide: comparisons catch it, pages go ineligible
    and nothing wrong is shared."""
    h, z, vm, names = random_set(5)
    hist = PageHistory.from_pages(h, z, vm, names)
    r = emulate_scanner(hist, ScannerSettings(hash_bits=4, hint_hash_bits=4))
    want = count_sharing(h, z, vm, names).to_dict()
    assert r.final["false_matches"] > 0
    assert r.final["ineligible_pages"] > 0
    assert r.final["reclaimed_pages"] < want["reclaimed_pages"]


def test_scanner_cow_break_stale_hint_and_share_before_swap():
    """Content ids 0, 1, 2 hold hashes 1, 2, 3; the story in the comments."""
    h = np.array([1, 1, 1, 2, 3, 3], np.uint64)
    hist = PageHistory.from_pages(h, np.zeros(6, bool), np.zeros(6, int), ["a"])
    s = EsxScanner(hist)
    for p in (0, 1, 2):  # hint, then a shared frame (refs 2), then refs 3
        s._scan_page(p)
    assert (s.c["shared_pages"], s.c["reclaimed_pages"], s.c["shared_frames"]) == (3, 2, 1)
    s._write(0, 1)  # COW break: page 0 now holds page 3's content
    assert (s.c["shared_pages"], s.c["reclaimed_pages"], s.c["cow_breaks"]) == (2, 1, 1)
    s._scan_page(4)  # a hint for page 4 (content 2)
    s._write(4, 0)  # page 4 changes: its hint is stale
    s._scan_page(5)  # content 2 hits page 4's hint; the rehash shows the change
    assert s.c["stale_hints"] == 1 and s.c["hint_frames"] == 1  # page 5's own hint
    s._scan_page(3)  # a hint for page 3
    assert s.share_before_swap(0)  # matches page 3's hint, outside the rate caps
    assert s.c["reclaimed_pages"] == 2
    assert s.share_before_swap(4)  # content 0: joins the first shared frame
    assert s.c["reclaimed_pages"] == 3
    assert s.c["false_matches"] == 0


def test_snapshots_history():
    s0 = pd.DataFrame(
        {"vm": ["a"] * 4, "gpfn": np.arange(4, dtype=np.uint64), "hash": np.uint64([1, 1, 2, 3]), "zero": False}
    )
    s1 = s0.assign(hash=np.uint64([1, 4, 2, 2]))
    hist = PageHistory.from_snapshots([s0, s1], [0, 10])
    assert hist.t.tolist() == [10.0, 10.0]
    assert sorted(hist.page.tolist()) == [1, 3]
    r = emulate_ksm(hist, KsmSettings(pages_to_scan=4, smart_scan=False))
    # pages 2 and 3 merge; page 0 stays alone on its KSM page after page 1's COW break (as in
    # the kernel: a KSM page with one mapping still counts in pages_shared)
    assert (r.final["pages_shared"], r.final["pages_sharing"], r.final["pages_unshared"]) == (2, 1, 1)


def test_cli_ksm_and_scan_json(tmp_path, capsys):
    from pagecore.synth.fig04 import FIG04_DEFAULTS, Fig04Model, write_hash_only_shard

    path = tmp_path / "p.parquet"
    write_hash_only_shard(Fig04Model(**{**FIG04_DEFAULTS, "mem_mb": 1}), range(2), path)
    assert main(["ksm", str(path), "--format", "json", "--pages-to-scan", "50", "--use-zero-pages"]) == 0
    out = json.loads(capsys.readouterr().out)
    for k in ("full_scans", "pages_shared", "pages_sharing", "pages_unshared", "ksm_zero_pages", "general_profit"):
        assert k in out
    assert out["seconds_to_converge"] > 0
    assert main(["scan", str(path), "--format", "json", "--rate-vm", "100"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reclaimed_pages"] > 0 and out["seconds_to_converge"] > 0
    assert main(["ksm", str(tmp_path / "missing.parquet")]) == 1
    assert "error" in capsys.readouterr().err


def test_duplicate_lifetimes_tiny_story():
    """Pages 0 and 1 start identical; page 1 is rewritten at t = 25 (seen at the snapshot at
    30); page 2 is zeroed at t = 5, joining page 3 (a zero page) from the snapshot at 10."""
    from pagecore.sharing.lifetime import catchable_fraction, duplicate_episodes, ksm_catchable_fraction, survival

    base = PageHistory.from_pages(np.uint64([7, 7, 9, 0]), np.array([0, 0, 0, 1], bool), np.zeros(4, int), ["a"])
    zc = base.zero_content
    hist = PageHistory(
        base.vm_names,
        base.vm,
        base.gpfn,
        base.content,
        np.concatenate([base.content_hash, np.uint64([99])]),
        zc,
        np.array([5.0, 25.0]),
        np.array([2, 1]),
        np.array([zc, base.n_contents]),
    )
    ep = duplicate_episodes(hist, [0, 10, 20, 30, 40])
    got = sorted(zip(ep["page"], ep["start"], ep["end"], ep["censored"], strict=True))
    assert got == [(0, 0.0, 30.0, False), (1, 0.0, 30.0, False), (2, 10.0, 40.0, True), (3, 10.0, 40.0, True)]
    assert survival(ep, [0, 30]).fraction.tolist() == [1.0, 0.0]
    c = catchable_fraction(ep, pages_per_vm=4, rates=[0.1, 1.0])  # passes of 40 s and 4 s
    assert c.fraction.tolist() == pytest.approx([0.75, 1.0])
    k = ksm_catchable_fraction(ep, total_pages=4, rates=[0.2])  # T = 20 s: (30-20)/20 = 0.5 each
    assert k.fraction.tolist() == pytest.approx([0.5])


def test_scanreport_runs_every_setting():
    from pagecore.experiments.scan import duplicate_lifetimes, sharing_over_time

    h, z, vm, names = random_set(7)
    hist = PageHistory.from_pages(h, z, vm, names)
    tl, summ = sharing_over_time(
        hist,
        [{"name": "esx", "rate_vm": 20, "rate_total": 40}],
        [{"name": "ksm", "pages_to_scan": 50, "sleep_ms": 20}],
    )
    assert set(tl["setting"]) == {"esx", "ksm"}
    assert np.allclose(summ["saved_mb"], summ["exact_saved_mb"])
    surv, catch = duplicate_lifetimes(
        hist, {"fraction": 0.5, "mean_interval_s": 10, "duration_s": 60, "zero_write_fraction": 0.3}, 10, [1, 10], [100]
    )
    assert surv["fraction"].is_monotonic_decreasing
    assert list(catch["model"]) == ["esx", "esx", "ksm"]
