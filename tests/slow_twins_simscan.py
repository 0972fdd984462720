"""Slow twins of the background scanners' one-call draws (pagecore.sim.sharing._draw_all): the
per-VM NumPy draws ``rng.integers(0, pages, size=n)`` the kernel replaced."""

from __future__ import annotations

import numpy as np

from pagecore.sim import memory as m
from pagecore.sim.sharing import _counts


def zero_scan(scanner, vms, dt, rng, host):
    """ZeroScanner.scan, one NumPy draw and one scan_share call per VM."""
    done = 0
    for vm, n in _counts(scanner, vms, dt):
        cand = rng.integers(0, vm.pages, size=n)
        done += int(m.scan_share(cand, vm.mem.state, vm.mem.c, vm.host_free))
    return done


def content_scan(scanner, vms, dt, rng, host):
    """ContentScanner.scan with the candidates drawn per VM by NumPy."""
    picks = [(vm, rng.integers(0, vm.pages, size=n)) for vm, n in _counts(scanner, vms, dt)]
    if not picks:
        return 0
    cand_vm = np.concatenate([np.full(len(c), vm.index, np.int64) for vm, c in picks])
    cand_f = np.concatenate([c for _, c in picks]).astype(np.int64)
    states, conts, counters = host.frame_lists()
    t = host.table
    t.reserve(len(cand_f), states, conts)
    return int(
        m.scan_content(cand_vm, cand_f, states, conts, counters, t.keys, t.refs, t.hvm, t.hfr, t.stat, host.free)
    )
