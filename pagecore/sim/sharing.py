"""Background page sharing, zero pages only (paper §4.3; the full content scanner is a later
issue).

A scanner visits random pages of every running VM at a capped rate and shares those whose
contents are all zero (one machine zero page backs them all, copy-on-write). Rates are
UNCONFIRMED in the paper; defaults are ESX 2.x's ``Mem.ShareScanVM`` = 50 pages/s per VM and
``Mem.ShareScanTotal`` = 200 pages/s [DOC ESX 2.x]. Set both to 0 to switch sharing off
(share-before-swap in :mod:`pagecore.sim.paging` still works).
"""

from __future__ import annotations

from pagecore.sim import memory as m
from pagecore.sim.contracts import mechanism


@mechanism("sharing", "zero")
class ZeroScanner:
    """Random-order scanning that shares zero pages."""

    rate_vm_pages_s: float = 50.0
    rate_total_pages_s: float = 200.0

    def scan(self, vms, dt, rng, host):
        if not vms or self.rate_vm_pages_s <= 0 or self.rate_total_pages_s <= 0:
            return 0
        per_vm = min(self.rate_vm_pages_s, self.rate_total_pages_s / len(vms)) * dt
        done = 0
        for vm in vms:
            # carry fractional pages so low rates still scan
            vm.scan_credit += per_vm
            n = int(vm.scan_credit)
            if n <= 0:
                continue
            vm.scan_credit -= n
            cand = rng.integers(0, vm.pages, size=n)
            done += int(m.scan_share(cand, vm.mem.state, vm.mem.c, vm.host_free))
        return done
