"""The Numba KSM emulator and ESX scanner against their slow twins (issue 15, item 2).

``tests/slow_twins_scan.py`` holds the pure-Python emulators the kernels replaced. Every run
here is made twice, fast and slow, and must agree exactly: the final counters, every timeline
row and the time to converge. Inputs: random page histories (with and without writes, in and out
of address order, several VMs) and named edge cases (empty, one page, all identical, all zero,
copies around k·max_page_sharing + 1, COW breaks, stale hints, false matches, reference-count
overflow). Sizes shrink when the JIT is off (the file runs once more that way).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import slow_twins_scan as slow
from conftest import JIT_DISABLED, scaled

from pagecore.sharing import ksm as fast_ksm
from pagecore.sharing import scanner as fast_scan
from pagecore.sharing.ksm import KsmSettings
from pagecore.sharing.pagehistory import PageHistory, with_random_writes
from pagecore.sharing.scanner import ScannerSettings


# ---------------------------------------------------------------------------------- inputs
def random_history(seed, n=500, nvm=3, distinct=120, zero_frac=0.1, writes=False, address_order=False):
    rng = np.random.default_rng(seed)
    h = rng.integers(1, distinct, n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z = rng.random(n) < zero_frac
    h[z] = 0
    vm = np.sort(rng.integers(0, nvm, n)) if address_order else rng.integers(0, nvm, n)
    gpfn = np.arange(n, dtype=np.uint64) if address_order else rng.permutation(n).astype(np.uint64)
    hist = PageHistory.from_pages(h, z, vm, [f"vm{i}" for i in range(nvm)], gpfn)
    if writes:
        hist = with_random_writes(
            hist, fraction=0.3, mean_interval_s=0.7, duration_s=4.0, zero_write_fraction=0.3, seed=seed
        )
    return hist


def static(hashes, vm=None, names=("a",)):
    hashes = np.asarray(hashes, np.uint64)
    vm = np.zeros(len(hashes), int) if vm is None else np.asarray(vm)
    return PageHistory.from_pages(hashes, hashes == 0, vm, list(names))


def named_histories():
    yield "empty", static(np.zeros(0, np.uint64))
    yield "one page", static([5])
    yield "one zero page", static([0])
    yield "all identical", static(np.full(100, 7))
    yield "all zero", static(np.zeros(60), np.arange(60) % 2, ["a", "b"])
    for mps_copies in (2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17):  # around k*max+1 for max 2, 3, 4
        yield f"{mps_copies} copies", static(np.full(mps_copies, 3))
    yield "empty VM", static(np.tile([1, 2, 3, 0], 10), np.arange(40) % 2, ["a", "b", "idle"])


def cow_history():
    """Pages 0-9 identical, 10-19 zero; merged pages are rewritten (COW), zero pages rewritten
    to other content and back to zero, and a page gets a content that then matches others."""
    base = static(np.r_[np.full(10, 9), np.zeros(10), np.arange(100, 110)])
    zc = base.zero_content
    new = base.n_contents
    t = np.array([0.05, 0.05, 0.3, 0.3, 0.6, 0.9, 1.2, 1.2, 2.0, 2.5])
    page = np.array([0, 1, 12, 13, 12, 20, 21, 2, 22, 3])
    nc = np.array([new, new, new + 1, zc, zc, base.content[0], base.content[0], new + 1, new, zc])
    chash = np.concatenate([base.content_hash, np.uint64([777, 888])])
    return PageHistory(base.vm_names, base.vm, base.gpfn, base.content, chash, zc, t, page, nc)


# ---------------------------------------------------------------------------------- compare
def assert_same(fast, slow_res, what=""):
    assert fast.final == slow_res.final, what
    for k, v in fast.final.items():
        assert type(v) in (int, float), (what, k, type(v))
    pd.testing.assert_frame_equal(fast.timeline, slow_res.timeline, obj=what)
    assert fast.seconds_to_converge == slow_res.seconds_to_converge, what
    if isinstance(fast, fast_ksm.KsmResult):  # (the scanner's twin does not say)
        assert fast.settled == slow_res.settled, what
    json.dumps(fast.to_dict())


def both_ksm(hist, settings=None, **kw):
    return fast_ksm.emulate_ksm(hist, settings, **kw), slow.emulate_ksm(hist, settings, **kw)


def both_scan(hist, settings=None, **kw):
    return fast_scan.emulate_scanner(hist, settings, **kw), slow.emulate_scanner(hist, settings, **kw)


KSM_SETTINGS = [
    KsmSettings(),
    KsmSettings(pages_to_scan=37, smart_scan=False),
    KsmSettings(pages_to_scan=37, use_zero_pages=True),
    KsmSettings(pages_to_scan=1, max_page_sharing=2, use_zero_pages=True, smart_scan=False),
    KsmSettings(pages_to_scan=13, max_page_sharing=3, sleep_millisecs=0),
    KsmSettings(pages_to_scan=50, max_page_sharing=4, scan_us_per_page=7.5, use_zero_pages=True),
    KsmSettings(pages_to_scan=1000, sleep_millisecs=0, use_zero_pages=True),
    KsmSettings(pages_to_scan=29, sleep_millisecs=10, hz=250, volatility_first=False),
]


def random_thp(hist, seed):
    """Random THP backing of ``hist``'s pages: runs of pages in huge pages (some 4 KiB), and a
    random share of the THP pages flagged as all-zero pieces."""
    rng = np.random.default_rng([seed, 0x7A9])
    n = hist.pages
    block = np.repeat(np.arange(n), rng.integers(1, 9, n))[:n].astype(np.int64)
    block[rng.random(n) < 0.3] = -1
    zero = (block >= 0) & (rng.random(n) < 0.25)
    return fast_ksm.ThpBacking(block, zero)


# ---------------------------------------------------------------------------------- KSM
@pytest.mark.parametrize("settings", KSM_SETTINGS, ids=range(len(KSM_SETTINGS)))
def test_ksm_named_cases(settings):
    for name, hist in [*named_histories(), ("cow", cow_history())]:
        f, s = both_ksm(hist, settings)
        assert_same(f, s, name)


@pytest.mark.parametrize("seed", range(scaled(6, 2)))
@pytest.mark.parametrize("writes", [False, True])
def test_ksm_random_histories(seed, writes):
    n = scaled(700, 150)
    for k, settings in enumerate(KSM_SETTINGS[seed % 3 :: 3]):
        hist = random_history(seed, n=n, nvm=1 + seed % 4, writes=writes, address_order=bool(k % 2))
        # with sleep 0 and no scan cost emulated time stands still: the writes never come
        f, s = both_ksm(hist, settings, max_full_scans=60)
        assert_same(f, s, f"seed {seed} settings {settings}")


@pytest.mark.parametrize("seed", range(scaled(8, 2)))
@pytest.mark.parametrize("writes", [False, True])
def test_ksm_stale_zero_node_random_histories(seed, writes):
    """THP-backed pages (the stale zero node), random fractions of contents below the root."""
    n = scaled(700, 150)
    rng = np.random.default_rng(seed)
    for k, base in enumerate(KSM_SETTINGS[seed % 4 :: 4]):
        hist = random_history(seed, n=n, nvm=1 + seed % 3, distinct=60 + 40 * k, writes=writes,
                              address_order=bool((seed + k) % 2))  # fmt: skip
        st = dataclasses.replace(base, stale_below_fraction=float(rng.choice([0.0, 0.3, 0.5, 1.0])))
        thp = random_thp(hist, seed)
        f, s = both_ksm(hist, st, thp=thp, max_full_scans=60)
        assert_same(f, s, f"seed {seed} settings {st}")


def test_ksm_run_options():
    hist = random_history(11, n=scaled(400, 120), writes=True)
    st = KsmSettings(pages_to_scan=20, use_zero_pages=True)
    for kw in (
        {"until_s": 0.7},
        {"until_s": 0.0},
        {"settle_scans": 1},
        {"settle_scans": 4, "sample_s": 0.05},
        {"max_full_scans": 3},
        {"sample_s": 100.0},
    ):
        f, s = both_ksm(hist, st, **kw)
        assert_same(f, s, str(kw))


def test_ksm_long_timeline_grows_row_buffer():
    """More than the driver's first 1024 rows: it returns for room and resumes."""
    hist = random_history(3, n=scaled(300, 60), writes=True)
    st = KsmSettings(pages_to_scan=2, sleep_millisecs=1)
    f, s = both_ksm(hist, st, sample_s=0.001)
    assert len(f.timeline) > 1024 or JIT_DISABLED
    assert_same(f, s)


def test_ksm_resumed_runs_and_manual_writes():
    """A run stopped early, writes made by hand, then a second run: the state carries over."""
    hist = random_history(5, n=scaled(300, 100), address_order=False)
    st = KsmSettings(pages_to_scan=25, max_page_sharing=3)
    ef, es = fast_ksm.KsmEmulator(hist, st), slow.KsmEmulator(hist, st)
    assert_same(ef.run(until_s=0.5), es.run(until_s=0.5), "first")
    rng = np.random.default_rng(0)
    for p, c in zip(rng.integers(0, hist.pages, 40), rng.integers(0, hist.n_contents, 40), strict=True):
        ef._write(int(p), int(c))
        es._write(int(p), int(c))
        assert ef.snapshot() == es.snapshot()
    assert_same(ef.run(), es.run(), "second")
    assert ef.snapshot()["pages_sharing"] > 0


def test_ksm_address_order_relabelling():
    """The same pages listed in two orders give the same counters (KSM walks address order)."""
    hist = random_history(8, n=scaled(500, 100), nvm=4, writes=False)
    order = np.lexsort((hist.gpfn, hist.vm))
    sorted_hist = PageHistory(
        hist.vm_names, hist.vm[order], hist.gpfn[order], hist.content[order], hist.content_hash, hist.zero_content
    )
    a = fast_ksm.emulate_ksm(hist)
    b = fast_ksm.emulate_ksm(sorted_hist)
    assert a.final == b.final
    pd.testing.assert_frame_equal(a.timeline, b.timeline)
    assert_same(b, slow.emulate_ksm(sorted_hist))


def test_ksm_history_is_never_changed_and_ids_are_checked():
    hist = random_history(9, n=200, address_order=True, writes=True)
    before = (hist.content.copy(), hist.new_content.copy())
    e = fast_ksm.KsmEmulator(hist)
    e.run()
    e._write(0, 1)
    np.testing.assert_array_equal(hist.content, before[0])
    np.testing.assert_array_equal(hist.new_content, before[1])
    with pytest.raises(ValueError, match="out of range"):
        e._write(0, hist.n_contents)
    bad = PageHistory(hist.vm_names, hist.vm, hist.gpfn, hist.content + hist.n_contents, hist.content_hash)
    with pytest.raises(ValueError, match=r"PageHistory.content must lie in \[0, "):
        fast_ksm.KsmEmulator(bad)


def test_ksm_manual_writes_of_contents_not_met_yet():
    """Writes (by hand) of contents no page held at first, the zero page among them: the
    emulator numbers them on first sight and still recognises the zero page."""
    base = static(np.tile([5, 6, 7], 20))
    chash = np.concatenate([base.content_hash, np.uint64([0, 8])])  # ids 3 (zero) and 4, unused
    hist = PageHistory(base.vm_names, base.vm, base.gpfn, base.content, chash, 3)
    st = KsmSettings(pages_to_scan=9, use_zero_pages=True)
    ef, es = fast_ksm.KsmEmulator(hist, st), slow.KsmEmulator(hist, st)
    assert_same(ef.run(), es.run(), "first")
    for p in range(0, 60, 2):
        c = 3 if p % 4 else 4
        ef._write(p, c)
        es._write(p, c)
    assert_same(ef.run(), es.run(), "second")
    assert ef.snapshot()["ksm_zero_pages"] == 15


def test_ksm_long_chain_after_cow_breaks():
    """Many dups of one content (max_page_sharing 2), then COW breaks in old dups: each freed
    mapping must be found again by the first-candidate pointer, in creation order."""
    n = scaled(200, 60)
    base = static(np.full(n, 4))
    m = 30
    rng = np.random.default_rng(2)
    t = np.sort(rng.uniform(0.05, 1.0, m))
    page = rng.integers(0, n, m)
    nc = np.where(rng.random(m) < 0.5, base.content[0], 1)
    hist = PageHistory(
        base.vm_names, base.vm, base.gpfn, base.content, np.uint64([4, 5]), -1, t, page, nc.astype(np.int64)
    )
    for mps in (2, 3):
        f, s = both_ksm(hist, KsmSettings(pages_to_scan=17, max_page_sharing=mps, smart_scan=False))
        assert_same(f, s, f"mps {mps}")


# ---------------------------------------------------------------------------------- ESX
SCAN_SETTINGS = [
    ScannerSettings(),
    ScannerSettings(scan_rate_vm=7, scan_rate_total=13, seed=1),
    ScannerSettings(hash_bits=4, hint_hash_bits=4, seed=2),  # false matches
    ScannerSettings(hash_bits=64, hint_hash_bits=3, seed=3, pages_per_bucket=16),  # truncated hints collide
    ScannerSettings(refcount_bits=2, scan_rate_vm=100, scan_rate_total=1000, tick_s=0.5),  # overflow table
    ScannerSettings(scan_rate_vm=3.3, scan_rate_total=5.5, tick_s=0.25, seed=7, pages_per_bucket=1000),
]


@pytest.mark.parametrize("settings", SCAN_SETTINGS, ids=range(len(SCAN_SETTINGS)))
def test_scanner_named_cases(settings):
    for name, hist in [*named_histories(), ("cow", cow_history())]:
        f, s = both_scan(hist, settings)
        assert_same(f, s, name)


@pytest.mark.parametrize("seed", range(scaled(6, 2)))
@pytest.mark.parametrize("writes", [False, True])
def test_scanner_random_histories(seed, writes):
    n = scaled(600, 150)
    for settings in SCAN_SETTINGS[seed % 2 :: 2]:
        hist = random_history(seed, n=n, nvm=1 + seed % 4, writes=writes)
        f, s = both_scan(hist, settings)
        assert_same(f, s, f"seed {seed} settings {settings}")


def test_scanner_many_tiny_vms_and_long_timeline():
    """One page per VM (a new random order at every scan, so the driver returns to Python for
    each) and a slow rate (more than 1024 ticks of timeline)."""
    n = scaled(60, 20)
    hist = static(np.arange(n) % 7, np.arange(n), [f"v{i}" for i in range(n)])
    assert_same(*both_scan(hist, ScannerSettings(scan_rate_vm=2, scan_rate_total=30)), "tiny VMs")
    hist = random_history(4, n=scaled(300, 40), nvm=2)
    f, s = both_scan(hist, ScannerSettings(scan_rate_vm=0.2, scan_rate_total=0.2, seed=5))
    assert len(f.timeline) > 1024 or JIT_DISABLED
    assert_same(f, s, "slow rate")


def test_scanner_run_options_and_resume():
    hist = random_history(12, n=scaled(400, 100), writes=True)
    st = ScannerSettings(scan_rate_vm=40, scan_rate_total=90, seed=4)
    for kw in ({"until_s": 3.0}, {"settle_passes": 2}, {"max_s": 5.0}, {"until_s": 0.0}):
        assert_same(*both_scan(hist, st, **kw), str(kw))
    ef, es = fast_scan.EsxScanner(hist, st), slow.EsxScanner(hist, st)
    assert_same(ef.run(until_s=2.0), es.run(until_s=2.0), "first")
    assert_same(ef.run(settle_passes=2), es.run(settle_passes=2), "second")


@pytest.mark.parametrize("seed", range(scaled(4, 1)))
def test_scanner_single_operations(seed):
    """Random interleavings of scans, writes and share-before-swap, counter for counter."""
    rng = np.random.default_rng(seed)
    n = 80
    hist = random_history(seed, n=n, distinct=60, nvm=2)
    st = ScannerSettings(hash_bits=4 if seed % 2 else 64, hint_hash_bits=3, refcount_bits=2, pages_per_bucket=4)
    ef, es = fast_scan.EsxScanner(hist, st), slow.EsxScanner(hist, st)
    for _ in range(scaled(1500, 300)):
        p = int(rng.integers(0, n))
        op = rng.random()
        if op < 0.6:
            ef._scan_page(p)
            es._scan_page(p)
        elif op < 0.85:
            c = int(rng.integers(0, hist.n_contents))
            ef._write(p, c)
            es._write(p, c)
        else:
            assert ef.share_before_swap(p) == es.share_before_swap(p)
        assert ef.snapshot() == es.snapshot()
    assert ef.snapshot()["stale_hints"] > 0
    assert ef.snapshot()["false_matches"] > 0 or seed % 2 == 0


def test_scanner_counter_view_reads_like_the_dict():
    hist = static([1, 1, 2])
    e = fast_scan.EsxScanner(hist)
    for p in range(3):
        e._scan_page(p)
    assert dict(e.c) == {**dict.fromkeys(fast_scan.COUNTERS, 0), **{k: e.c[k] for k in fast_scan.COUNTERS}}
    assert (e.c["shared_pages"], e.c["hint_frames"], e.c["pages_scanned"]) == (2, 1, 3)


# ---------------------------------------------------------------------------------- without the JIT
@pytest.mark.skipif(JIT_DISABLED, reason="already running without the JIT")
def test_kernels_without_jit():
    """This file again with NUMBA_DISABLE_JIT=1 (small sizes), so the kernels' Python bodies run."""
    here = Path(__file__).parent
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", Path(__file__).name],
        cwd=here,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


# ---------------------------------------------------------------------------------- benchmark
def test_fig04_host_is_a_static_address_ordered_history():
    from pagecore.bench.scan import fig04_host
    from pagecore.sharing import count_sharing

    h = fig04_host(3, 1, seed=2)
    assert h.pages == 3 * 256 and len(h.t) == 0
    assert np.all(np.diff(h.vm) >= 0) and h.gpfn[:256].tolist() == list(range(256))
    h.check_ids()
    zero = h.content_hash[h.content] == 0
    assert zero.any() and np.all(h.content[zero] == h.zero_content)
    # the emulator on it converges to the exact counts, as on any page set
    r = fast_ksm.emulate_ksm(h, KsmSettings(smart_scan=False, use_zero_pages=True))
    want = count_sharing(h.content_hash[h.content], zero, h.vm, h.vm_names, use_zero_pages=True).to_dict()["ksm"]
    for k in ("pages_shared", "pages_sharing", "pages_unshared", "ksm_zero_pages"):
        assert r.final[k] == want[k], k
    assert want["pages_sharing"] > h.pages // 3  # heavy sharing, as in Figure 4


@pytest.mark.skipif(JIT_DISABLED, reason="the benchmark is not a kernel test")
def test_bench_scan_runs(capsys):
    from pagecore.bench import scan as bench_scan

    assert bench_scan.main(["--rate-host", "2x1", "--twin-host", "1x1", "--host", "2x2"]) == 0
    out = capsys.readouterr().out
    assert "KSM " in out and "ESX scanner" in out and "x the twin" in out
    assert "emulate_ksm to convergence" in out and "2 VMs x 2 MiB = 1,024 pages" in out
    with pytest.raises(SystemExit):
        bench_scan.main(["--host", "64"])


def test_ksm_replays_every_write_even_past_max_full_scans():
    """A history whose last write comes after more full scans than max_full_scans still replays
    it (found by the live-series work: a run used to stop at t = 16 s before writes at 25 s)."""
    from pagecore.sharing.ksm import KsmEmulator

    h = PageHistory.from_pages(np.array([1, 2, 3, 4], np.uint64), np.zeros(4, bool), np.zeros(4, np.int64), ["a"])
    h.t = np.array([25.0])
    h.page = np.array([1])
    h.new_content = np.array([0])  # page 1 becomes a copy of page 0 at t = 25 s
    st = KsmSettings(pages_to_scan=100, sleep_millisecs=20, smart_scan=False)
    fast = KsmEmulator(h, st).run(max_full_scans=50)
    assert fast.final["pages_sharing"] == 1
    slow_run = slow.KsmEmulator(h, st).run(max_full_scans=50)
    assert slow_run.final == fast.final
