"""The balloon driver (paper §3.2).

The driver in each guest polls ESX once per second for its balloon target and inflates or
deflates toward it. What the guest gives up is the guest's decision, modelled in
:func:`pagecore.sim.memory.inflate`: free pages first, then cold ("cache") pages, then pages it
must write to its own virtual disk.

Parameters:

``poll_s = 1.0``
    polling interval (TEXT).
``max_fraction = 0.65``
    largest balloon as a fraction of the VM's configured size. UNCONFIRMED in the paper;
    ESX 4's ``Mem.CtlMaxPercent`` [DOC ESX 4.0] (ESX 2.x: half of max). Figure 7 takes the
    idle VM down to about 101 of 256 MB, past half.
``rate_min_mb_s = 1.0``, ``rate_max_mb_s = 16.0``, ``rate_factor = 2.0``
    the adaptive rate limit (algorithm UNCONFIRMED). Ours: start at the minimum, multiply the
    per-poll step by ``rate_factor`` (double it) after every poll in which the guest did not have
    to page in-use data to its disk, divide it by ``rate_factor`` after one in which it did
    (additive probing is too slow at 1 poll/s).
    Deflation always runs at the maximum rate. Pages a Windows guest gets back are zeroed by
    its zero page thread (VM spec ``zero_freed``), so they are backed again (and shareable).
``unavailable_during_boot = true``
    the driver starts only once the guest has booted (the VM spec's ``balloon_driver_s``,
    seconds of VM time after power-on; Figure 8's Windows drivers "start late in boot").
"""

from __future__ import annotations

import math

from pagecore.sim import memory as m
from pagecore.sim.contracts import mechanism


@mechanism("balloon", "esx")
class EsxBalloon:
    """A per-guest driver with an adaptive (multiplicative) rate limit."""

    poll_s: float = 1.0
    max_fraction: float = 0.65
    rate_min_mb_s: float = 1.0
    rate_max_mb_s: float = 16.0
    rate_factor: float = 2.0
    unavailable_during_boot: bool = True

    def __post_init__(self):
        if not 0 < self.poll_s < math.inf:  # the engine's step: 0 divided by zero, < 0 ran no step
            raise ValueError(f"poll_s must be > 0 and finite, got {self.poll_s}")
        if not 0 <= self.max_fraction <= 1:
            raise ValueError(f"max_fraction must be in [0, 1], got {self.max_fraction}")
        if not 0 < self.rate_min_mb_s <= self.rate_max_mb_s < math.inf:
            raise ValueError("need 0 < rate_min_mb_s <= rate_max_mb_s < inf")
        if not 1 <= self.rate_factor < math.inf:  # < 1 shrank the step after a clean poll, NaN froze it
            raise ValueError(f"rate_factor must be >= 1 and finite, got {self.rate_factor}")

    def _pages(self, mb_s):
        return max(1, round(mb_s * 256 * self.poll_s))

    def start(self, vm):
        vm.bal.update(rate=self._pages(self.rate_min_mb_s), pageouts=int(vm.mem.c[m.C_GUEST_PAGEOUT]))

    def available(self, vm, now):
        return (not self.unavailable_during_boot) or vm.clock >= vm.balloon_driver_s

    def max_pages(self, vm):
        return int(self.max_fraction * vm.pages)

    def poll(self, vm, target, now):
        if not self.available(vm, now):
            return 0
        mem = vm.mem
        size = int(mem.c[m.BALLOONED])
        target = max(0, min(int(target), self.max_pages(vm)))
        b = vm.bal
        paged = int(mem.c[m.C_GUEST_PAGEOUT]) - b["pageouts"]
        if target > size:
            step = min(target - size, b["rate"])
            done = mem.inflate(step, vm.host_free)
            grew = int(mem.c[m.C_GUEST_PAGEOUT]) - b["pageouts"] - paged
            if paged + grew > 0:
                b["rate"] = max(self._pages(self.rate_min_mb_s), int(b["rate"] / self.rate_factor))
            else:
                b["rate"] = min(self._pages(self.rate_max_mb_s), int(b["rate"] * self.rate_factor))
            delta = done
        elif target < size:
            n = min(size - target, self._pages(self.rate_max_mb_s))
            delta = -mem.deflate(n, vm.host_free, vm.zero_freed)
        else:
            delta = 0
        b["pageouts"] = int(mem.c[m.C_GUEST_PAGEOUT])
        return delta
