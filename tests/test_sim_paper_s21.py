"""Session 21's hand-worked audit of the replay engine's paper semantics (issue 14 item 5):
free memory against the high threshold (§6.3), shared-page credit, the content scanner inside
the replay (§4.2-4.3), stalls (only a touch that needs a new page waits) and careless inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pagecore.sim import HostSpec, SimParams, VMSpec, simulate

NO_PAGING = {"paging": {"swap_rate_mb_s": 0.0}}
FAST_CONTENT_SCAN = {"sharing": {"rate_vm_pages_s": 1e6, "rate_total_pages_s": 1e6}, **NO_PAGING}


def _events(vm, t0, gpfns, write, zero=False, span=0.5):
    g = np.asarray(gpfns, np.uint64)
    t = t0 + np.arange(g.size) * (span / max(1, g.size))
    return pd.DataFrame({"t": t, "vm": vm, "gpfn": g, "write": write, "zero": zero})


def _trace(parts):
    return pd.concat(parts, ignore_index=True).sort_values("t", kind="stable").reset_index(drop=True)


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
    parts = []
    for v in "ab":
        parts += [_events(v, 0.0, range(5000), False), _events(v, 0.5, range(5000, 12000), True)]
        parts.append(_events(v, 2.0, range(12000, 15000), True))
    image = np.full(25600, -1, np.int64)
    image[:5000] = np.arange(1, 5001)
    p = SimParams(
        duration_s=40, seed=1, tau=0.0, record_s=1.0, check=True,
        mechanisms={"sharing": "content"}, settings=FAST_CONTENT_SCAN,
    )  # fmt: skip
    vms = [VMSpec(v, max_mb=100, overhead_mb=0) for v in "ab"]
    host = HostSpec(system_mb=101, esx_mb=0, swap_mb=1024, overhead_used_mb=0)
    res = simulate(vms, host, p, _trace(parts), contents={"a": image, "b": image})
    at3 = res.vms[res.vms["t"] == 3.0]
    assert res.host.set_index("t").loc[3.0, "free"] * 256 == 856
    # the recorded target adds the VM's shared frames back (alloc terms): 9523 + 5000
    assert (at3["target"] * 256).tolist() == [14523, 14523]
    last = res.host.iloc[-1]
    assert last["state"] == "high" and last["free"] * 256 >= 1810


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


@pytest.mark.parametrize(
    "vm_a",
    [VMSpec("a", max_mb=50, overhead_mb=0), VMSpec("a", max_mb=100, min_mb=50, shares=0, overhead_mb=0)],
    ids=["max", "min"],
)
def test_bounds_of_a_vm_with_shared_pages_count_its_shared_frames(vm_a):
    """Hand-worked (§6.1: min and max bound the VM's "physical" memory). A 100-MB host (25600
    pages; 1793 stay free, see above). VM a reads 40 MB of untouched pages (zero-filled, 10240
    frames, which the scanner shares) and writes 10 MB (2560 pages); it maps 50 MB, its max
    (or its min, with 0 shares, which pins it there). VM b writes 22272 pages at t = 2 s: 768
    free, soft. Targets count machine pages held alone (shared pages credited), so a's bound is
    50 MB − 10240 shared frames = 2560 pages: a keeps its 50 MB, b's target is 25600 − 1793 −
    2560 = 21247 and 1025 of its pages are reclaimed: free 1793, high. With bounds in frames,
    a's target was 12800 machine pages (recorded as 90 or 71 MB of alloc for a 50-MB VM) and b
    was reclaimed for memory that then sat free."""
    trace = _trace(
        [
            _events("a", 0.0, range(10240), False),
            _events("a", 0.5, range(10240, 12800), True),
            _events("b", 2.0, range(22272), True),
        ]
    )
    p = SimParams(
        duration_s=30,
        seed=1,
        tau=0.0,
        record_s=1.0,
        check=True,
        settings={"sharing": {"rate_vm_pages_s": 1e6, "rate_total_pages_s": 1e6}, **NO_PAGING},
    )
    vms = [vm_a, VMSpec("b", max_mb=100, overhead_mb=0)]
    res = simulate(vms, HostSpec(system_mb=100, esx_mb=0, swap_mb=1024, overhead_used_mb=0), p, trace)
    last = res.vms[res.vms["t"] == res.vms["t"].max()].set_index("vm")
    assert last.loc["a", "target"] == 50.0 and last.loc["a", "shared"] == 40.0
    assert last.loc["b", "target"] * 256 == 21247 and last.loc["b", "alloc"] * 256 == 21247
    assert res.host.iloc[-1]["free"] * 256 == 1793 and res.host.iloc[-1]["state"] == "high"


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
