"""Session 21's hand-worked audit of the replay engine's paper semantics (issue 14 item 5):
free memory against the high threshold (§6.3), shared-page credit, the content scanner inside
the replay (§4.2-4.3), stalls (only a touch that needs a new page waits) and careless inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pagecore.errors import ConfigError, InputError
from pagecore.sim import HostSpec, SimParams, VMSpec, simulate

NO_PAGING = {"paging": {"swap_rate_mb_s": 0.0}}
FAST_SCAN = {"sharing": {"rate_vm_pages_s": 1e6, "rate_total_pages_s": 1e6}, **NO_PAGING}


def _events(vm, t0, gpfns, write, zero=False, span=0.5):
    g = np.asarray(gpfns, np.uint64)
    t = t0 + np.arange(g.size) * (span / max(1, g.size))
    return pd.DataFrame({"t": t, "vm": vm, "gpfn": g, "write": write, "zero": zero})


def _trace(parts):
    return pd.concat(parts, ignore_index=True).sort_values("t", kind="stable").reset_index(drop=True)


def _two_vms_sharing_an_image(duration_s: float, credit_shared: bool):
    """The scenario of the two tests below: a 101-MB host, two 100-MB VMs whose first 5000
    pages hold the same OS contents; each reads them and writes 7000 more at t < 1 s, then
    3000 more at t = 2 s; the content scanner shares as fast as it likes."""
    parts = []
    for v in "ab":
        parts += [_events(v, 0.0, range(5000), False), _events(v, 0.5, range(5000, 12000), True)]
        parts.append(_events(v, 2.0, range(12000, 15000), True))
    image = np.full(25600, -1, np.int64)
    image[:5000] = np.arange(1, 5001)
    p = SimParams(
        duration_s=duration_s, seed=1, tau=0.0, record_s=1.0, check=True, credit_shared=credit_shared,
        mechanisms={"sharing": "content"}, settings=FAST_SCAN,
    )  # fmt: skip
    vms = [VMSpec(v, max_mb=100, overhead_mb=0) for v in "ab"]
    host = HostSpec(system_mb=101, esx_mb=0, swap_mb=1024, overhead_used_mb=0)
    return simulate(vms, host, p, _trace(parts), contents={"a": image, "b": image})


def test_targets_leave_room_for_the_machine_pages_of_shared_contents():
    """Hand-worked (§6.3: targets drive free memory above the high threshold). A 101-MB host
    (25856 pages, no ESX memory, no overhead); two 100-MB VMs whose first 5000 pages hold the
    same OS contents. Each reads those 5000 and writes 7000 more at t < 1 s: 24000 pages, then
    the scanner shares the 5000 contents, 5000 machine pages for the 10000 frames (free 6856).
    At t = 2 s each writes 3000 more: free 856 pages = 3.3 % < 4 %, the soft state. High +
    hysteresis = 7 % = 1809.92, so 1810 pages must stay free: the targets (machine pages held
    alone) add up to 25856 − 1810 − 5000 (the shared contents' pages) = 19046, 9523 each;
    each VM holds 10000, so 477 each are reclaimed and the host returns to high. The targets
    used to leave the 5000 shared pages out (12023 each, nothing to reclaim): soft for good at
    856 free pages."""
    res = _two_vms_sharing_an_image(duration_s=40, credit_shared=True)
    at3 = res.vms[res.vms["t"] == 3.0]
    assert res.host.set_index("t").loc[3.0, "free"] * 256 == 856
    # the recorded target adds the VM's shared frames back (alloc terms): 9523 + 5000
    assert (at3["target"] * 256).tolist() == [14523, 14523]
    last = res.host.iloc[-1]
    assert last["state"] == "high" and last["free"] * 256 >= 1810


def test_without_the_credit_targets_count_shared_content_pages_among_the_frames():
    """The scenario above with ``credit_shared: false``: targets count every mapped frame, so
    each shared content's page is counted among its frames already (twice here): the targets
    split 25856 − 1810 = 24046 pages, 12023 each, and each VM (15000 frames) is reclaimed
    2977. Taking the 5000 shared pages off the pool as well reclaimed 2500 more from each."""
    res = _two_vms_sharing_an_image(duration_s=4, credit_shared=False)
    assert (res.vms[res.vms["t"] == 3.0]["target"] * 256).tolist() == [12023, 12023]


def test_a_host_settled_at_its_targets_returns_to_high():
    """Hand-worked: one 100-MB VM on a 100-MB host (25600 pages, no ESX memory, no overhead)
    writes 25000 pages in its first second: 600 free, 2.3 %, the soft state. High + hysteresis
    is 7 % = 1792 pages exactly, and the state machine returns to high only above it
    (:class:`~pagecore.sim.states.EsxStates` compares strictly), so the target leaves 1793
    free: 23807 pages. The balloon takes the 600 untouched frames (no machine page) and 1193
    written ones: 1793 free, 7.004 %, high. The target used to leave 1792: soft for good."""
    p = SimParams(
        duration_s=30,
        seed=1,
        tau=0.0,
        record_s=1.0,
        check=True,
        settings={"sharing": {"rate_vm_pages_s": 0.0}, **NO_PAGING},
    )
    vm = VMSpec("a", max_mb=100, overhead_mb=0)
    res = simulate(
        [vm],
        HostSpec(system_mb=100, esx_mb=0, swap_mb=1024, overhead_used_mb=0),
        p,
        _events("a", 0.0, range(25000), True, span=1.0),
    )
    assert set(res.vms["target"] * 256) == {23807}
    last = res.host.iloc[-1]
    assert last["free"] * 256 == 1793 and last["state"] == "high"
    assert res.vms.iloc[-1]["balloon"] * 256 == 600 + 1193


def _a_with_shared_frames_b_pushing_to_soft(vm_a, extra=None, **kw):
    """VM a reads 40 MB of untouched pages (10240 zero frames, shared by the scanner) and
    writes 10 MB (2560 pages); VM b (100 MB) writes 22272 pages at t = 2 s, which takes a 100-MB
    host (25600 pages) to 768 free: soft."""
    parts = [_events("a", 0.0, range(10240), False), _events("a", 0.5, range(10240, 12800), True)]
    parts += [_events("b", 2.0, range(22272), True)] + ([extra] if extra is not None else [])
    p = SimParams(
        **{"duration_s": 30, "seed": 1, "tau": 0.0, "record_s": 1.0, "check": True, "settings": FAST_SCAN, **kw}
    )
    vms = [vm_a, VMSpec("b", max_mb=100, overhead_mb=0)]
    return simulate(vms, HostSpec(system_mb=100, esx_mb=0, swap_mb=1024, overhead_used_mb=0), p, _trace(parts))


def test_a_vm_with_shared_pages_is_bounded_by_its_max_less_its_shared_frames():
    """Hand-worked (§6.1: max bounds the VM's "physical" memory). VM a (max 50 MB) maps 50 MB,
    40 of them shared. Targets count machine pages held alone (shared pages credited), so a's
    bound is 12800 − 10240 shared frames = 2560 pages: a keeps its 50 MB, and b's target is
    25600 − 1793 (free, see above) − 2560 = 21247: 1025 of its pages are reclaimed, free 1793,
    high. With the bound in frames, a's target was 7936 machine pages (a third of the pool by
    shares 500:1000; recorded as 71 MB of alloc for a 50-MB VM) and b was reclaimed to 15871
    pages' target for memory that then sat free."""
    res = _a_with_shared_frames_b_pushing_to_soft(VMSpec("a", max_mb=50, overhead_mb=0))
    last = res.vms[res.vms["t"] == res.vms["t"].max()].set_index("vm")
    assert last.loc["a", "target"] == 50.0 and last.loc["a", "shared"] == 40.0
    assert last.loc["b", "target"] * 256 == 21247 and last.loc["b", "alloc"] * 256 == 21247
    assert res.host.iloc[-1]["free"] * 256 == 1793 and res.host.iloc[-1]["state"] == "high"


def test_a_vm_at_min_equal_max_is_never_reclaimed_below_min_through_its_shared_frames():
    """VM a has min = max = 50 MB, 40 of them shared: its bound is 2560 machine pages (above),
    met. At t = 20 s (the host back in high, reclaiming there with ``balloon_in_high``; the
    last rebalance at 15 s, the next at 30 s) it writes 512 of its shared frames
    (copy-on-write): 3072 pages alone, 512 over that bound until the rebalance (free 1793 − 512
    = 1281, 5 %: no state change to recompute earlier). Taking them would take a below its
    min (the guest's balloon takes shared zero frames first: they are its free pages), so
    nothing is taken: a maps 50 MB throughout and its bound is 3072 after the rebalance. The
    balloon took 512 of them (alloc 48 MB < min) when min was a bound less the shared frames."""
    cow = _events("a", 20.0, range(512), True)
    vm = VMSpec("a", max_mb=50, min_mb=50, overhead_mb=0)
    res = _a_with_shared_frames_b_pushing_to_soft(vm, cow, duration_s=35, balloon_in_high=True)
    a = res.vms[res.vms["vm"] == "a"].set_index("t")
    assert (a["alloc"] == 50.0).all() and (a["balloon"] == 0.0).all()
    assert a.loc[21.0, "private"] * 256 == 3072 and res.host.set_index("t").loc[21.0, "state"] == "high"
    assert a.loc[31.0, "target"] == 50.0  # 3072 alone + 9728 shared


def test_a_trace_without_events_replays_nothing():
    """A zero-length trace built from empty lists (no dtypes: float64 or object columns) was
    refused as "gpfn not an integer"; it replays nothing, like an empty typed one."""
    host = HostSpec(system_mb=64, esx_mb=0, swap_mb=64, overhead_used_mb=0)
    p = SimParams(duration_s=2, seed=1, record_s=1.0, check=True)
    vms = [VMSpec("a", max_mb=16, min_mb=16, overhead_mb=0)]
    for trace in (
        pd.DataFrame({"t": [], "vm": [], "gpfn": [], "write": []}),
        pd.DataFrame({"t": [], "vm": [], "gpfn": [], "write": [], "zero": []}, dtype=object),
    ):
        res = simulate(vms, host, p, trace)
        assert res.vms["alloc"].tolist() == [0.0, 0.0] and res.vms["events"].tolist() == [0, 0]  # rows at 1 and 2 s


def test_a_limit_bounds_the_target_of_a_vm_with_shared_pages_as_is():
    """A limit counts the machine pages a VM holds alone (what it is reclaimed to in every
    state), so it bounds that VM's credited target as is: VM a (max 100 MB, limit 50 MB) with
    40 MB shared may hold 12800 pages alone (12800 + 10240 frames < max). With τ = 0 and equal
    shares, a and b split the 23807-page pool: 11903 and 11904 (hand: the rounding page goes
    to the first VM of highest ρ after the bisection; both equal, the floor of 11903.5 each and
    one page left over). The bound was the limit less the shared frames, 2560: a target of
    2560 alone."""
    vm = VMSpec("a", max_mb=100, limit_mb=50, overhead_mb=0)
    res = _a_with_shared_frames_b_pushing_to_soft(vm, duration_s=4)
    at4 = res.vms[res.vms["t"] == 4.0].set_index("vm")
    assert at4.loc["a", "shared"] * 256 == 10240
    assert sorted([at4.loc["a", "target"] * 256 - 10240, at4.loc["b", "target"] * 256]) == [11903, 11904]


def test_a_zeroing_event_that_is_not_a_write_is_refused():
    """``zero`` says the write fills the page with zeros. A row with zero and not write was
    replayed as a zeroing write on a private page and as a read on a shared one (the shared
    content stayed): refused, naming the event."""
    trace = pd.concat([_events("a", 0.0, [0, 1], False), _events("a", 1.0, [1], False, zero=True)], ignore_index=True)
    p = SimParams(duration_s=2, seed=1, record_s=1.0)
    host = HostSpec(system_mb=64, esx_mb=0, swap_mb=64, overhead_used_mb=0)
    with pytest.raises(InputError, match="event 2 has zero = true but write = false"):
        simulate([VMSpec("a", max_mb=1, overhead_mb=0)], host, p, trace)


def test_the_recorded_target_of_a_vm_sharing_more_and_more_pages_stays_within_its_max():
    """A 50-MB VM alone on a 100-MB host reads 40 MB of untouched pages, which a scanner of
    2000 pages/s shares over the next seconds. Its target is its bound, max less the frames
    shared when it was computed; the timeline records it in frames, adding the frames shared
    now, which never makes more than its max: 50 MB. (The default run's Figure 6 recorded up
    to 453.8 MB for its 384-MB VM.)"""
    p = SimParams(
        duration_s=20, seed=1, record_s=1.0, check=True,
        settings={"sharing": {"rate_vm_pages_s": 2000.0, "rate_total_pages_s": 2000.0}, **NO_PAGING},
    )  # fmt: skip
    host = HostSpec(system_mb=100, esx_mb=0, swap_mb=64, overhead_used_mb=0)
    res = simulate([VMSpec("a", max_mb=50, overhead_mb=0)], host, p, _events("a", 0.0, range(10240), False))
    assert res.vms["shared"].iloc[-1] > res.vms["shared"].iloc[0] > 0  # shared over time
    assert res.vms["target"].max() == 50.0


def test_a_vm_smaller_than_one_page_is_refused_naming_it():
    with pytest.raises(ConfigError, match=r"VM tiny: max_mb 0\.001 is less than one 4-KiB page"):
        simulate([VMSpec("tiny", max_mb=0.001, overhead_mb=0)], HostSpec(system_mb=64), SimParams(duration_s=1))


@pytest.mark.parametrize(("credit", "alloc_a"), [(True, 10000), (False, 7619)])
def test_of_two_vms_mapping_as_much_the_one_with_shared_pages_is_reclaimed_less(credit, alloc_a):
    """Hand-worked: two 64-MB VMs on a 64-MB host (16384 pages; 1147 stay free, the fewest
    above 7 %), equal shares, τ = 0: targets 7619 (the first VM takes the rounding page) and
    7618. Each maps 10000 frames: a reads 4000 untouched pages (zero, shared by the scanner)
    and writes 6000; b writes 10000. 16000 machine pages, 384 free: soft. Reclaiming toward
    the targets in every state (``balloon_in_high``): with the credit a holds 6000 alone,
    under its target, and keeps its 10000 frames while b gives up 2382; without it a gives
    up 2381 frames as well."""
    parts = [_events("a", 0.0, range(4000), False), _events("a", 1.0, range(4000, 10000), True)]
    parts.append(_events("b", 1.0, range(10000), True, span=1.0))
    p = SimParams(
        duration_s=30, seed=1, tau=0.0, record_s=1.0, check=True, credit_shared=credit, balloon_in_high=True,
        settings=FAST_SCAN,
    )  # fmt: skip
    vms = [VMSpec(v, max_mb=64, overhead_mb=0) for v in "ab"]
    res = simulate(vms, HostSpec(system_mb=64, esx_mb=0, swap_mb=1024, overhead_used_mb=0), p, _trace(parts))
    assert res.host.set_index("t").loc[2.0, "state"] == "soft"
    last = res.vms[res.vms["t"] == 30.0].set_index("vm")
    assert (last["alloc"] * 256).to_dict() == {"a": alloc_a, "b": 7618}
    # without the credit a's balloon takes its 6384 untouched frames, then 2381 of its shared
    # zero frames (free pages to the guest): no machine page comes back from those
    assert last.loc["a", "shared"] * 256 == (4000 if credit else 4000 - 2381)
