"""The replay engine with its fast kernels (idle-tax targets, one-call scanners) gives the very
same timelines and events as with the slow twins they replaced (tests/slow_twins_alloc.py,
tests/slow_twins_simscan.py), bit for bit, on the small overcommitted scenario."""

import numpy as np
import pandas as pd
import pytest
from slow_twins_alloc import idle_tax_targets
from slow_twins_simscan import content_scan, zero_scan
from test_sim import _small_scenario

from pagecore.sim import SimParams, simulate, synthetic_contents
from pagecore.sim.allocation import IdleTax
from pagecore.sim.sharing import ContentScanner, ZeroScanner


def _twins(monkeypatch):
    monkeypatch.setattr(
        IdleTax,
        "targets",
        lambda self, s, lo, hi, a, avail, tau: idle_tax_targets(s, lo, hi, a, avail, tau, self.max_transfers),
    )
    monkeypatch.setattr(ZeroScanner, "scan", lambda self, vms, dt, rng, host: zero_scan(self, vms, dt, rng, host))
    monkeypatch.setattr(ContentScanner, "scan", lambda self, vms, dt, rng, host: content_scan(self, vms, dt, rng, host))


@pytest.mark.parametrize("sharing", ["zero", "content"])
@pytest.mark.parametrize("seed", [11, 12])
@pytest.mark.parametrize("balloon_in_high", [True, False])
def test_engine_equals_the_slow_twins(monkeypatch, sharing, seed, balloon_in_high):
    from pagecore.synth.workloads import trace_frame

    sc = _small_scenario()
    trace = trace_frame(sc)
    contents = synthetic_contents(sc, {"os_shared": {"windows": 1.0, "linux": 0.5}}, seed=5)
    p = SimParams(
        duration_s=sc.duration_s,
        seed=seed,
        tau=0.75,
        tau_schedule=[(120.0, 0.5), (240.0, 0.0)],
        record_s=2.0,
        balloon_in_high=balloon_in_high,
        mechanisms={"sharing": sharing},
    )
    fast = simulate(sc.specs(), sc.host, p, trace, contents)
    with monkeypatch.context() as mp:
        _twins(mp)
        slow = simulate(sc.specs(), sc.host, p, trace, contents)
    for a, b in ((fast.vms, slow.vms), (fast.host, slow.host), (fast.events, slow.events)):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert fast.vms["shared"].max() > 0  # the scanner and the allocation did something
    assert np.unique(fast.vms["target"]).size > 3
