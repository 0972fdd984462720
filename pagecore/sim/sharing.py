"""Background page sharing (paper §4.2-4.3): zero pages only (``zero``) or by content
(``content``).

A scanner visits random pages of every running VM at capped rates. Rates are UNCONFIRMED in
the paper ("configuration options cap the per-VM and system-wide scan rates"); the defaults
are ESX 2.x's ``Mem.ShareScanVM`` = 50 pages/s per VM and ``Mem.ShareScanTotal`` = 200 pages/s
system-wide [DOC ESX 2.x]. Each running VM is scanned at ``min(rate_vm, rate_total / VMs)``
pages per second (fractional pages carry over), in random order (§4.3: "scanned randomly").
Set both rates to 0 to switch background sharing off (share-before-swap in
:mod:`pagecore.sim.paging` still works).

``zero``
    shares the pages whose contents are all zero (one machine zero page backs them all,
    copy-on-write).
``content``
    the scanner of §4.2/§4.3 (Figure 3): a scanned page's content id (the simulator's exact
    stand-in for its 64-bit hash and the full comparison) is looked up in the global
    :class:`~pagecore.sim.memory.ContentTable`. A zero page maps the zero page as above; a
    match with a *shared* frame maps the page copy-on-write to that frame's machine page (its
    reference count grows) and frees the page's own; a match with a *hint* re-checks the hint's
    page: still the same content, so both pages are shared (the hint becomes a shared frame
    with count 2 and one machine page is reclaimed); changed since, so the stale hint is
    replaced by this page; no match makes the page a hint (it is not marked copy-on-write).
    Writes break copy-on-write in the touch path (:func:`pagecore.sim.memory.replay`); a
    shared page is freed when its count reaches zero. Page contents come from the engine's
    ``contents`` (:mod:`pagecore.sim.contents`) and from the trace's writes. Share-before-swap
    uses the same table when this mechanism is selected.
"""

from __future__ import annotations

import numpy as np

from pagecore.sim import memory as m
from pagecore.sim.contracts import mechanism


def _candidates(scanner, vms, dt, rng):
    """Per VM, the random frames it scans in ``dt`` seconds (one rng draw per VM, in order)."""
    if not vms or scanner.rate_vm_pages_s <= 0 or scanner.rate_total_pages_s <= 0:
        return []
    per_vm = min(scanner.rate_vm_pages_s, scanner.rate_total_pages_s / len(vms)) * dt
    out = []
    for vm in vms:
        # carry fractional pages so low rates still scan
        vm.scan_credit += per_vm
        n = int(vm.scan_credit)
        if n <= 0:
            continue
        vm.scan_credit -= n
        out.append((vm, rng.integers(0, vm.pages, size=n)))
    return out


@mechanism("sharing", "zero")
class ZeroScanner:
    """Random-order scanning that shares zero pages."""

    rate_vm_pages_s: float = 50.0
    rate_total_pages_s: float = 200.0

    uses_contents = False

    def scan(self, vms, dt, rng, host):
        done = 0
        for vm, cand in _candidates(self, vms, dt, rng):
            done += int(m.scan_share(cand, vm.mem.state, vm.mem.c, vm.host_free))
        return done


@mechanism("sharing", "content")
class ContentScanner:
    """Random-order scanning that shares pages by content through hint and shared frames
    (§4.2-4.3). Same rate parameters as ``zero``."""

    rate_vm_pages_s: float = 50.0
    rate_total_pages_s: float = 200.0

    uses_contents = True

    def scan(self, vms, dt, rng, host):
        picks = _candidates(self, vms, dt, rng)
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
