"""Session 21's hand-worked audit of the replay engine's paper semantics (issue 14 item 5):
free memory against the high threshold (§6.3), shared-page credit, the content scanner inside
the replay (§4.2-4.3), stalls (only a touch that needs a new page waits) and careless inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
