"""`pagecore host --policy kvm-ksm` on THP-backed guest RAM: the KSM emulator gets the VMs'
huge pages (:func:`pagecore.experiments.host.thp_backing`), so the time to 90 % follows the stale
zero node the real-KSM check validated; worked by hand on a five-page host view."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pagecore.experiments import host as H
from pagecore.sharing import ThpBacking, stale_below  # noqa: F401  (public names)

SLEEP = 0.02  # KSM's default sleep_millisecs; scan_us_per_page 0: a wake-up every 20 ms


def _host_view_vm(thp: bool = True):
    """One VM, pages in walk order (gpfn order): Z (all zero) and A1 (content A) in huge page
    0 (gpfns 0-511), B1 (content B) in huge page 1 (gpfns 512-1023), A2 and B2 on 4 KiB pages.
    ``thp`` False: no page is THP-backed."""
    gpfn = np.array([0, 1, 512, 1024, 1025], np.uint64)
    h = np.array([0, 11, 22, 11, 22], np.uint64)
    frame = pd.DataFrame({"vm": "g", "gpfn": gpfn, "hash": h, "zero": h == 0})
    frame["host_present"] = True
    frame["host_zero_page"] = False
    frame["host_thp"] = np.array([True, True, True, False, False]) & thp
    frame["host_ksm"] = False
    return H.HostVM(name="g", frame=frame, size_mb=len(h) / 256)


def _members(vms):
    keys = [v.frame["hash"].to_numpy(np.uint64) for v in vms]
    return H.replicate(vms, keys, len(vms))


def _settings(**ksm):
    # one full scan per wake-up, no smart scan, every content "ordered below the root"
    return H.HostSettings(ksm={"pages_to_scan": 5, "smart_scan": False, "stale_below_fraction": 1.0, **ksm})


def test_thp_backing_of_a_host_view():
    st = _settings()
    m = _members([_host_view_vm()])
    ps = H.page_set(m, "kvm-ksm", st)
    thp = H.thp_backing(m, ps, ps.cost, H._ksm_settings(st), st)
    assert thp.block.tolist() == [0, 0, 1, -1, -1]
    assert thp.zero.tolist() == [True, False, False, False, False]
    # no model: THP off, zero pages merged by KSM, or the stale node switched off
    assert H.thp_backing(m, ps, ps.cost, H._ksm_settings(st), H.HostSettings(kvm_thp=False)) is None
    for off in ({"use_zero_pages": True}, {"stale_zero_node": False}):
        s2 = _settings(**off)
        assert H.thp_backing(m, ps, ps.cost, H._ksm_settings(s2), s2) is None
    ps4k = H.page_set(_members([_host_view_vm(thp=False)]), "kvm-ksm", st)
    assert H.thp_backing(_members([_host_view_vm(thp=False)]), ps4k, ps4k.cost, H._ksm_settings(st), st) is None


def test_thp_backed_guest_converges_one_full_scan_later():
    """By hand (sleep 20 ms, the row of wake-up k at t = 0.02 k; savings = pages_sharing):

    * 4 KiB pages: wake-up 1 records checksums; wake-up 2 merges A1+A2 and B1+B2: savings 0, 0,
      2 at t = 0, 0.02, 0.04, so 90 % (1.8) is reached at 0.02 + 0.9 x 0.02 = 0.038 s.
    * THP-backed: in wake-up 2 Z (all-zero piece of huge page 0, walked first) becomes the zero
      node; A2's merge with A1 splits huge page 0, the node goes stale and B2's search gives up;
      wake-up 3 merges B2: savings 0, 0, 1, 2 at t = 0, 0.02, 0.04, 0.06, so 1.8 is reached at
      0.04 + 0.8 x 0.02 = 0.056 s.
    Both converge to the same savings (2 pages)."""
    st = _settings()
    plain = H.scan_over_time(_members([_host_view_vm(thp=False)]), "kvm-ksm", st)
    thp = H.scan_over_time(_members([_host_view_vm()]), "kvm-ksm", st)
    assert plain["converged_saved_mb"] * 256 == pytest.approx(2)
    assert thp["converged_saved_mb"] * 256 == pytest.approx(2)
    assert plain["seconds_to_90pct"] == pytest.approx(SLEEP + 0.9 * SLEEP)
    assert thp["seconds_to_90pct"] == pytest.approx(2 * SLEEP + 0.8 * SLEEP)
    saved = thp["timeline"].groupby("t_s")["saved_mb"].last() * 256
    assert saved.loc[[2 * SLEEP, 3 * SLEEP]].round().tolist() == [1, 2]
    # the same host view with THP ignored by the policy, or no content below the root: on time
    for st2 in (H.HostSettings(kvm_thp=False, ksm=st.ksm), _settings(stale_below_fraction=0.0)):
        got = H.scan_over_time(_members([_host_view_vm()]), "kvm-ksm", st2)
        assert got["seconds_to_90pct"] == pytest.approx(SLEEP + 0.9 * SLEEP)


def test_synthetic_guest_thp_assumption_cannot_make_the_node_stale():
    """Without the host view every 2 MiB block is a huge page and only the pieces of an all-zero
    block are unmergeable; such a block never has a merge, so its zero node never goes stale:
    the prediction equals the one with the stale node switched off."""
    rng = np.random.default_rng(5)
    h = np.concatenate([np.zeros(512), rng.integers(1, 40, 1024), np.zeros(7)]).astype(np.uint64)
    v = H.HostVM(name="s", frame=pd.DataFrame({"vm": "s", "gpfn": np.arange(len(h), dtype=np.uint64), "hash": h,
                                                "zero": h == 0}), size_mb=len(h) / 256)  # fmt: skip
    st = _settings(pages_to_scan=100)
    ps = H.page_set(_members([v]), "kvm-ksm", st)
    thp = H.thp_backing(_members([v]), ps, ps.cost, H._ksm_settings(st), st)
    assert thp.block.tolist() == [0] * 512 + [1] * 512 + [2] * 512 + [3] * 7
    assert thp.zero.sum() == 512 and thp.zero[:512].all()
    on = H.scan_over_time(_members([v]), "kvm-ksm", st)
    off = H.scan_over_time(_members([v]), "kvm-ksm", _settings(pages_to_scan=100, stale_zero_node=False))
    assert on["seconds_to_90pct"] == off["seconds_to_90pct"]
    assert on["converged_saved_mb"] == off["converged_saved_mb"]
