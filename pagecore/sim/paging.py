"""Demand paging by the ESX swap daemon (paper §3.3).

When ballooning is impossible or not enough, ESX pages VM memory to its own swap area
without the guest's involvement. Victims are chosen **uniformly at random** among the VM's
pages that hold a machine page (the paper: "randomized"; uniformity is UNCONFIRMED), and a
victim that is a zero page is **shared instead of written** (share before swap, §4.3; this is
how Figure 8 reclaims 325 MB of zero pages at boot). With the content scanner
(``sim.mechanisms.sharing: content``) a victim is looked up in the content table first, as the
scanner does: it is shared if its content is already shared or a valid hint's, and written to
swap only otherwise (:func:`pagecore.sim.memory.page_out_content`). A touch of a swapped page swaps it back
in (:func:`pagecore.sim.memory.replay`).

``swap_rate_mb_s = 32``: machine memory the daemon reclaims host-wide per second, sharing
and writing together. UNCONFIRMED; a 2002 SCSI disk streams 20–40 MB/s and the daemon
clusters writes (§3.3).
"""

from __future__ import annotations

import math

import numpy as np

from pagecore.sim import memory as m
from pagecore.sim.contracts import mechanism


@mechanism("paging", "random")
class RandomPager:
    """Uniform random victims with share-before-swap."""

    swap_rate_mb_s: float = 32.0

    def __post_init__(self):
        if not 0 <= self.swap_rate_mb_s < math.inf:  # < 0 switched paging off without a word
            raise ValueError(f"swap_rate_mb_s must be >= 0 and finite (0: no paging), got {self.swap_rate_mb_s}")

    def rate_pages(self, dt):
        return int(self.swap_rate_mb_s * 256 * dt)

    def page_out(self, vm, count, rng, host):
        if count <= 0:
            return 0
        st = vm.mem.state
        cand = np.flatnonzero((st == m.PRIVATE) | (st == m.ZERO))
        if cand.size == 0:
            return 0
        pick = rng.permutation(cand)[: 2 * count + 16] if cand.size > 2 * count + 16 else rng.permutation(cand)
        pick = pick.astype(np.int64)
        if not host.content_sharing:
            return int(m.page_out(count, pick, st, vm.mem.c, vm.host_free, host.swap_free))
        states, conts, counters = host.frame_lists()
        t = host.table
        return int(
            m.page_out_content(
                count, pick, vm.index, states, conts, counters, t.keys, t.refs, t.hvm, t.hfr, t.stat,
                vm.host_free, host.swap_free,
            )
        )  # fmt: skip
