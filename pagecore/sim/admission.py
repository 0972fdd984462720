"""Admission control (paper §6.2).

A VM may power on only if the host has enough unreserved machine memory for
``min + overhead`` and enough unreserved server swap for ``max − min`` (so VM memory can
always be preserved). Reservations only gate admission; actual allocations vary.
"""

from __future__ import annotations

from pagecore.sim.contracts import mechanism


@mechanism("admission", "reservation")
class Reservation:
    """The paper's rule: reserve ``min + overhead`` memory and ``max − min`` swap."""

    def admit(self, vm, host):
        mem = vm.min_pages + vm.overhead_pages
        swap = vm.pages - vm.min_pages
        free_mem = host.managed_pages - host.reserved_pages
        if mem > free_mem:
            return False, (
                f"{vm.name}: needs {mem / 256:.0f} MB reserved (min {vm.min_pages / 256:.0f} + overhead "
                f"{vm.overhead_pages / 256:.0f}) but only {free_mem / 256:.0f} MB of machine memory is unreserved"
            )
        free_swap = host.swap_pages - host.swap_reserved_pages
        if swap > free_swap:
            return False, (
                f"{vm.name}: needs {swap / 256:.0f} MB of swap reserved (max − min) but only "
                f"{free_swap / 256:.0f} MB of server swap is unreserved"
            )
        return True, ""

    def reserve(self, vm, host):
        host.reserved_pages += vm.min_pages + vm.overhead_pages
        host.swap_reserved_pages += vm.pages - vm.min_pages

    def release(self, vm, host):
        host.reserved_pages -= vm.min_pages + vm.overhead_pages
        host.swap_reserved_pages -= vm.pages - vm.min_pages
