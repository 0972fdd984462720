"""A VM's limit (``VMSpec.limit_mb``) in the replayed memory manager, worked by hand.

Not in the paper (ESX 2 has no per-VM limit); ESX 3+ and ``pagecore host`` take one: the VM
holds at most ``limit_mb`` of machine memory whatever the host has free. Its target never
exceeds the limit, a VM above it is reclaimed in every state (balloon first, then paging), and
a touch that needs a new page at the limit waits for reclamation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pagecore.errors import ConfigError
from pagecore.sim import HostSpec, SimParams, Simulator, VMSpec
from pagecore.sim import memory as m


def _writes(mb, rate_mb_s=1.0, vm="a"):
    """``vm`` writes ``mb`` MB of fresh pages at ``rate_mb_s`` MB/s of VM time."""
    n = int(mb * 256)
    return pd.DataFrame(
        {"t": np.arange(n) / (256.0 * rate_mb_s), "vm": vm, "gpfn": np.arange(n, dtype=np.uint64), "write": True}
    )


def _run(limit_mb, *, write_mb=32, balloon_s=1e9, duration_s=120):
    vms = [VMSpec("a", max_mb=32, min_mb=0, overhead_mb=0, balloon_driver_s=balloon_s, limit_mb=limit_mb)]
    p = SimParams(
        duration_s=duration_s,
        seed=3,
        tau=0.0,
        record_s=1,
        check=True,
        settings={"sharing": {"rate_vm_pages_s": 0.0}, "paging": {"swap_rate_mb_s": 4.0}},
    )
    sim = Simulator(vms, HostSpec(system_mb=128, swap_mb=64, overhead_used_mb=0), p, _writes(write_mb))
    return sim, sim.run()


def test_a_limit_swaps_what_the_vm_writes_beyond_it_on_a_roomy_host():
    """``a`` (max 32 MB, limit 16 MB, no balloon driver) writes 32 MB of fresh pages at 1 MB/s on a
    128-MB host that never leaves the high state. By hand: it holds at most 16 MB = 4096 pages at
    every moment; each write at the limit waits while the swap daemon (4 MB/s, faster than the
    writes) pages out the VM's own pages, so every write is replayed and, since none is touched
    again, the 8192 pages written are either held or swapped: held ≤ 4096, swapped ≥ 4096, the
    two adding up to 8192. Without the limit it holds all 8192 and swaps nothing: the high state
    reclaims nothing."""
    sim, res = _run(16)
    a = sim.by_name["a"].mem
    assert (res.host["state"] == "high").all()
    assert res.vms["alloc"].max() <= 16.0 and res.vms["target"].max() <= 16.0
    assert int(a.c[m.C_EVENTS]) == 8192  # every write replayed: the VM waited, it lost nothing
    assert a.alloc <= 4096 and a.count(m.SWAPPED) >= 4096 and a.alloc + a.count(m.SWAPPED) == 8192
    assert a.c[m.C_SWAP_OUT] == a.count(m.SWAPPED) and a.c[m.C_SWAP_IN] == 0
    sim0, res0 = _run(None)
    a0 = sim0.by_name["a"].mem
    assert a0.alloc == 8192 and a0.count(m.SWAPPED) == 0 and res0.vms["alloc"].max() == 32.0


def test_a_limit_above_what_the_vm_uses_or_at_its_size_changes_nothing():
    """A limit the VM never reaches (20 MB for 12 MB written), or one at or above its size, gives
    the same timelines, to the byte, as no limit."""
    _, base = _run(None, write_mb=12)
    for lim in (20, 32, 1e9):
        _, res = _run(lim, write_mb=12)
        cols = [c for c in base.vms.columns if c != "target"] if lim < 32 else list(base.vms.columns)
        pd.testing.assert_frame_equal(res.vms[cols], base.vms[cols])
        assert res.vms["target"].max() == min(lim, 32)
        pd.testing.assert_frame_equal(res.host, base.host)


def test_the_balloon_takes_what_a_limit_reclaims_once_its_driver_runs():
    """With the balloon driver running, a VM that waits at its limit in the high state is
    ballooned first (§3.2's order: balloon before swap): at the end it holds at most its limit and
    its balloon is not empty, and every write was replayed."""
    sim, res = _run(16, balloon_s=0.0, duration_s=240)
    a = sim.by_name["a"].mem
    assert (res.host["state"] == "high").all()
    assert a.alloc <= 4096 and a.count(m.BALLOONED) > 0 and int(a.c[m.C_EVENTS]) == 8192
    assert res.vms["alloc"].max() <= 16.0


@pytest.mark.parametrize("lim", [4.0, -1.0, float("nan")])
def test_a_limit_below_the_minimum_is_refused(lim):
    with pytest.raises(ConfigError, match="limit_mb must be at least min_mb"):
        VMSpec("a", max_mb=32, min_mb=8, limit_mb=lim)
