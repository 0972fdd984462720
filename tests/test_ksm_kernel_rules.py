"""Hand-worked KSM cases for the kernel rules added in session 4 (issue 15, item 3).

Each case is a handful of pages whose counters can be worked out by hand from ``mm/ksm.c``
(6.18): the smart-scan skip that is no scan, the sleep in whole jiffies, the checksum checked
before the stable tree, and the stale zero node of THP-backed guest RAM. Every case runs through
the Numba emulator and its slow twin (``tests/slow_twins_scan.py``) and both must give the
worked-out numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
import slow_twins_scan as slow

from pagecore.sharing import ksm as fast
from pagecore.sharing.ksm import KsmSettings, ThpBacking, stale_below
from pagecore.sharing.pagehistory import PageHistory

EMULATORS = [pytest.param(fast.emulate_ksm, id="numba"), pytest.param(slow.emulate_ksm, id="twin")]


def static(hashes):
    hashes = np.asarray(hashes, np.uint64)
    return PageHistory.from_pages(hashes, hashes == 0, np.zeros(len(hashes), int), ["a"])


def per_scan(res, key="pages_sharing"):
    """The counter at the end of each full scan (rows are written at every scan's end)."""
    tl = res.timeline
    return tl.groupby("full_scans")[key].last().to_dict()


# ------------------------------------------------------------------------ smart scan
@pytest.mark.parametrize("emulate", EMULATORS)
def test_smart_scan_skips_are_not_scans(emulate):
    """One page that never merges, pages_to_scan 1, smart scan on. Its visits (age before the
    visit): 0, 1, 2 scanned; 3: skips = skip_age(3) = 1, scanned; 4: skipped; 5: skips =
    skip_age(5) = 2, scanned; 6, 7: skipped; 8: skips = 4, scanned. A skipped page is not
    returned by scan_get_next_rmap_item, so the wake-up goes on to the next lap: wake-ups 1-4
    scan laps 1-4, wake-up 5 laps 5 (skip) and 6, wake-up 6 laps 7, 8 (skips) and 9.
    After 6 wake-ups: 9 full scans, 6 pages scanned, 3 skipped."""
    hist = static([5])
    st = KsmSettings(pages_to_scan=1, sleep_millisecs=20, smart_scan=True)
    r = emulate(hist, st, until_s=0.12 - 1e-9, settle_scans=1000)  # 6 wake-ups end at t = 0.12
    assert r.final["full_scans"] == 9
    assert r.final["pages_scanned"] == 6
    assert r.final["pages_skipped"] == 3


# ------------------------------------------------------------------------ jiffies
@pytest.mark.parametrize(
    ("ms", "hz", "expect_s"),
    [
        (20, 0, 0.020),
        (10, 250, 0.012),
        (10, 100, 0.010),
        (10, 300, 0.010),
        (1, 250, 0.004),
        (0, 250, 0.0),
        (7, 1000, 0.007),
    ],
)
def test_sleep_is_rounded_up_to_jiffies(ms, hz, expect_s):
    # msecs_to_jiffies rounds up: 10 ms at HZ=250 is 3 jiffies of 4 ms; at HZ=300, 3 of 3.33 ms
    assert KsmSettings(sleep_millisecs=ms, hz=hz).sleep_s == pytest.approx(expect_s)


@pytest.mark.parametrize("emulate", EMULATORS)
def test_emulated_time_uses_whole_jiffies(emulate):
    """Two identical pages, pages_to_scan 2 (one full scan per wake-up): scan 1 records the
    checksums, scan 2 merges. The merge is at the end of wake-up 2: t = 2 sleeps = 24 ms at
    sleep 10 ms, HZ 250 (20 ms without rounding)."""
    hist = static([7, 7])
    for hz, t in ((250, 0.024), (0, 0.020)):
        r = emulate(hist, KsmSettings(pages_to_scan=2, sleep_millisecs=10, hz=hz, smart_scan=False))
        assert r.seconds_to_converge == pytest.approx(t)
        assert r.final["pages_sharing"] == 1


# ------------------------------------------------------------------------ checksum first
def written_history():
    """Pages A, B with content 1 and D with content 2; at t = 0.03 the guest writes content 1
    into D."""
    base = static([1, 1, 2])
    one = int(base.content[0])
    return PageHistory(
        base.vm_names, base.vm, base.gpfn, base.content, base.content_hash, -1,
        np.array([0.03]), np.array([2]), np.array([one]),
    )  # fmt: skip


@pytest.mark.parametrize("emulate", EMULATORS)
@pytest.mark.parametrize(("volatility_first", "sharing_after_3"), [(True, 1), (False, 2)])
def test_checksum_before_stable_tree(emulate, volatility_first, sharing_after_3):
    """pages_to_scan 3, sleep 20 ms: wake-up k at t = 0.02 (k - 1) scans every page once.
    1 (t=0): checksums. 2 (t=0.02): A into the unstable tree, B merges with it (sharing 1),
    D (content 2) into the unstable tree. 3 (t=0.04, after the write D := 1): A, B are the KSM
    page; D's checksum changed: since 6.10 it only records it (sharing stays 1); before, the
    stable tree was searched first and D merged at once (sharing 2). 4: D merges either way."""
    st = KsmSettings(pages_to_scan=3, sleep_millisecs=20, smart_scan=False, volatility_first=volatility_first)
    r3 = emulate(written_history(), st, until_s=0.05)
    assert r3.final["full_scans"] == 3
    assert r3.final["pages_sharing"] == sharing_after_3
    r = emulate(written_history(), st)
    assert r.final["pages_shared"] == 1
    assert r.final["pages_sharing"] == 2


# ------------------------------------------------------------------------ stale zero node
def thp_case(zero_first: bool):
    """Five pages in walk order (one VM):

    * Z: an all-zero piece of huge page 0 (a content of its own: never merges);
    * A1: content A in huge page 0; B1: content B in huge page 1;
    * A2: content A, B2: content B, both 4 KiB pages.

    ``zero_first``: Z comes first, else after A2."""
    names = ["Z", "A1", "B1", "A2", "B2"] if zero_first else ["A1", "B1", "A2", "Z", "B2"]
    hashes = {"Z": 99, "A1": 11, "B1": 22, "A2": 11, "B2": 22}
    blocks = {"Z": 0, "A1": 0, "B1": 1, "A2": -1, "B2": -1}
    hist = static([hashes[n] for n in names])
    thp = ThpBacking(np.array([blocks[n] for n in names]), np.array([n == "Z" for n in names]))
    return hist, thp


@pytest.mark.parametrize("emulate", EMULATORS)
def test_stale_zero_node_defers_searches_by_one_full_scan(emulate):
    """pages_to_scan 5 (a full scan per wake-up), every content ordered below the root
    (stale_below_fraction 1). Scan 1: checksums only. Scan 2: Z is the first all-zero piece to
    reach the unstable tree: it is the zero node (huge page 0); A1, B1 go into the tree; A2
    matches A1: they merge (shared 1, sharing 1), which splits huge page 0, so the zero node
    goes stale; B2's search now reaches it and gives up: B2 is neither merged nor inserted
    (volatile). Scan 3: huge page 0 is split, so Z is no zero node; B1 is inserted again and B2
    merges with it (shared 2, sharing 2). Without THP backing, B2 merges in scan 2."""
    hist, thp = thp_case(zero_first=True)
    st = KsmSettings(pages_to_scan=5, smart_scan=False, stale_below_fraction=1.0)
    r = emulate(hist, st, thp=thp)
    assert per_scan(r) == {0: 0, 1: 0, 2: 1, 3: 2, 4: 2, 5: 2}
    assert per_scan(r, "pages_shared")[2] == 1
    assert per_scan(r, "pages_unshared")[2] == 2  # Z and B1
    assert per_scan(r, "pages_volatile")[2] == 1  # B2
    assert r.final["pages_shared"] == 2 and r.final["pages_sharing"] == 2
    plain = emulate(hist, st)
    assert per_scan(plain)[2] == 2
    off = emulate(hist, KsmSettings(pages_to_scan=5, smart_scan=False, stale_zero_node=False), thp=thp)
    assert per_scan(off)[2] == 2


@pytest.mark.parametrize("emulate", EMULATORS)
def test_no_stale_node_when_the_split_comes_first_or_the_content_is_above_the_root(emulate):
    """Walk order A1, B1, A2, Z, B2: A2's merge splits huge page 0 before Z is visited, so Z
    (in a split huge page: on the zero page) never becomes a zero node and B2 merges in scan 2.
    Z first but no content ordered below the root (fraction 0): the stale node blocks nothing."""
    hist, thp = thp_case(zero_first=False)
    r = emulate(hist, KsmSettings(pages_to_scan=5, smart_scan=False, stale_below_fraction=1.0), thp=thp)
    assert per_scan(r)[2] == 2
    hist, thp = thp_case(zero_first=True)
    r = emulate(hist, KsmSettings(pages_to_scan=5, smart_scan=False, stale_below_fraction=0.0), thp=thp)
    assert per_scan(r)[2] == 2


def test_stale_below_is_a_fixed_fraction_of_contents():
    h = np.arange(1, 20001, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for f in (0.0, 0.25, 0.5, 1.0):
        b = stale_below(h, f)
        assert abs(b.mean() - f) < 0.02
    assert (stale_below(h, 0.3) <= stale_below(h, 0.6)).all()  # nested: a larger fraction adds contents


def test_thp_backing_is_checked():
    with pytest.raises(ValueError, match="one value per page"):
        ThpBacking(np.zeros(3, int), np.zeros(2, bool))
    with pytest.raises(ValueError, match="block id"):
        ThpBacking(np.array([-1]), np.array([True]))
    with pytest.raises(ValueError, match="pages"):
        fast.KsmEmulator(static([1, 2]), KsmSettings(), ThpBacking(np.zeros(3, int), np.zeros(3, bool)))
    with pytest.raises(ValueError, match="stale_below_fraction"):
        KsmSettings(stale_below_fraction=1.5)
    with pytest.raises(ValueError, match="hz"):
        KsmSettings(hz=-1)
