"""Hot I/O page remapping into low memory (paper §7).

On an IA-32 PAE host with more than 4 GB, devices that reach only the lowest 4 GB DMA through
a **bounce buffer** when a guest page is backed by a "high" machine page: one page copy per
I/O. ESX counts, per guest page, how often it was involved in I/O (the paper's example: a
software cache of PPN-to-MPN mappings for network transmits) and, once the count **exceeds a
threshold**, transparently remaps the page to a low machine page (one copy). When no low page
is free, some low page must be remapped to high memory (another copy); the paper names
"random replacement" and "adaptive cost-benefit schemes" as options. Here:

* ``random``: a uniformly random low page of the guest goes high;
* ``cost_benefit``: of ``cb_sample`` low pages drawn at random (with replacement), the one
  with the fewest recorded I/Os goes high (least benefit from staying low; ties to the first
  drawn). Sampling keeps a remap O(1), as approximated LRU does in caches.

Counted copies = bounce copies + remaps to low + remaps back to high (each one 4 KB copy).
The threshold is UNCONFIRMED (config ``reclaim.io_remap.threshold``); per-page counts never
decay (no aging rule is given), and a page remapped back to high starts again from 0.

The hot loop is :func:`_io_replay` (Numba); its brute-force twin is
``tests/slow_twins_reclaim.py::io_copies``.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

from pagecore._jit import SERIAL
from pagecore.sim.contracts import mechanism
from pagecore.sim.guestcache import _rand, seed_state

#: Counters :func:`_io_replay` fills, in order.
STATS = ("ios", "bounce_copies", "remaps", "remaps_back", "copies")
POLICIES = {"random": 0, "cost_benefit": 1}


def io_trace(
    guest_pages: int, n_ios: int, net_fraction: float = 1.0, net_buffers: int = 64, seed: int = 0
) -> np.ndarray:
    """Guest pages touched by a sequence of I/Os.

    A fraction ``net_fraction`` are network transmits from a fixed set of ``net_buffers``
    buffer pages (uniform over the set); the rest are disk I/Os on pages spread uniformly over
    guest memory.

    Returns
    -------
    numpy.ndarray of int64, shape (n_ios,)
    """
    if guest_pages < 1 or n_ios < 0 or not 0 <= net_fraction <= 1 or not 1 <= net_buffers <= guest_pages:
        raise ValueError(
            "io_trace: need guest_pages >= 1, n_ios >= 0, 0 <= net_fraction <= 1, 1 <= net_buffers <= guest_pages"
        )
    rng = np.random.default_rng(seed)
    buffers = rng.choice(guest_pages, net_buffers, replace=False)
    net = rng.random(n_ios) < net_fraction
    return np.where(net, buffers[rng.integers(0, net_buffers, n_ios)], rng.integers(0, guest_pages, n_ios)).astype(
        np.int64
    )


def high_backing(guest_pages: int, low_pages: int, seed: int = 0) -> np.ndarray:
    """Which guest pages start backed by high memory: all but ``low_pages`` random ones."""
    if not 0 <= low_pages <= guest_pages:
        raise ValueError(f"low_pages must be in [0, {guest_pages}], got {low_pages}")
    high = np.ones(guest_pages, np.bool_)
    high[np.random.default_rng([seed, 1]).choice(guest_pages, low_pages, replace=False)] = False
    return high


@numba.njit(**SERIAL)
def _io_replay(pages, high, threshold, low_free, policy, cb_sample, state, stats):
    """Replay I/Os on ``pages`` (modifies ``high``); fill ``stats`` (:data:`STATS`)."""
    n = high.size
    count = np.zeros(n, np.int64)
    low = np.empty(n, np.int64)  # the guest's low pages, in list order
    pos = np.full(n, -1, np.int64)
    n_low = 0
    for p in range(n):
        if not high[p]:
            low[n_low] = p
            pos[p] = n_low
            n_low += 1
    for s in range(stats.size):
        stats[s] = 0
    for i in range(pages.size):
        p = pages[i]
        stats[0] += 1
        count[p] += 1
        if not high[p]:
            continue
        stats[1] += 1
        if threshold < 0 or count[p] <= threshold:
            continue
        if low_free > 0:
            low_free -= 1
        else:
            if n_low == 0:
                continue
            k = np.int64(_rand(state) % numba.uint64(n_low))
            if policy == 1:
                for _ in range(cb_sample - 1):
                    j = np.int64(_rand(state) % numba.uint64(n_low))
                    if count[low[j]] < count[low[k]]:
                        k = j
            v = low[k]
            n_low -= 1
            low[k] = low[n_low]
            pos[low[k]] = k
            pos[v] = -1
            high[v] = True
            count[v] = 0
            stats[3] += 1
        high[p] = False
        low[n_low] = p
        pos[p] = n_low
        n_low += 1
        stats[2] += 1
    stats[4] = stats[1] + stats[2] + stats[3]


def replay_io(
    pages, high, threshold: int, low_free: int, policy: str = "cost_benefit", seed: int = 0, cb_sample: int = 16
) -> dict:
    """Count page copies of an I/O trace with hot-page remapping.

    Parameters
    ----------
    pages : array of int, shape (n,)
        Guest page of each I/O, in ``[0, len(high))``.
    high : array of bool, shape (guest_pages,)
        Whether each guest page starts backed by high memory (not modified).
    threshold : int
        Remap a high page once its I/O count exceeds this; ``-1`` disables remapping.
    low_free : int
        Free low machine pages available for remapping before low pages must go back high.
    policy : {"random", "cost_benefit"}
        Which low page goes back to high memory when none is free.
    cb_sample : int
        Low pages the cost-benefit policy compares per choice (>= 1).

    Returns
    -------
    dict
        Counters :data:`STATS`; ``copies`` = bounce copies + remaps + remaps back.
    """
    pages = np.ascontiguousarray(pages, np.int64)
    high = np.array(high, np.bool_, copy=True)
    if pages.ndim != 1 or high.ndim != 1:
        raise ValueError("pages and high must be 1-D")
    if pages.size and (pages.min() < 0 or pages.max() >= high.size):
        raise ValueError(f"I/O page ids must be in [0, {high.size})")
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {sorted(POLICIES)}, got {policy!r}")
    if cb_sample < 1:
        raise ValueError(f"cb_sample must be >= 1, got {cb_sample}")
    if low_free < 0:
        raise ValueError(f"low_free must be >= 0, got {low_free}")
    stats = np.zeros(len(STATS), np.int64)
    _io_replay(pages, high, int(threshold), int(low_free), POLICIES[policy], int(cb_sample), seed_state(seed), stats)
    return dict(zip(STATS, (int(x) for x in stats), strict=True))


@mechanism("io_remap", "random")
class HotPageRemap:
    """Remap hot high pages to low memory; ``random`` low pages go back high when low is scarce."""

    threshold: int = 16
    cb_sample: int = 16

    def run(self, pages, high, low_free, seed=0):
        return replay_io(pages, high, self.threshold, low_free, self.name, seed, self.cb_sample)


@mechanism(name="cost_benefit")
class CostBenefitRemap(HotPageRemap):
    """As :class:`HotPageRemap`, but the low page with the fewest I/Os goes back high."""


def threshold_sweep(
    guest_pages: int,
    n_ios: int,
    workloads: dict[str, float],
    thresholds,
    low_pages: int,
    low_free: int,
    net_buffers: int = 64,
    policy: str = "cost_benefit",
    seed: int = 0,
    cb_sample: int = 16,
) -> pd.DataFrame:
    """Copies vs remap threshold for each workload (name -> network fraction); ``threshold``
    ``-1`` is the no-remapping baseline. One row per (workload, threshold)."""
    high = high_backing(guest_pages, low_pages, seed)
    rows = []
    for wname, frac in workloads.items():
        pages = io_trace(guest_pages, n_ios, frac, net_buffers, seed)
        for th in [-1, *thresholds]:
            rows.append(
                {"workload": wname, "threshold": th, **replay_io(pages, high, th, low_free, policy, seed, cb_sample)}
            )
    return pd.DataFrame(rows)


def scarcity_sweep(
    guest_pages: int,
    n_ios: int,
    net_fraction: float,
    low_pages_list,
    threshold: int,
    net_buffers: int = 64,
    seed: int = 0,
    cb_sample: int = 16,
) -> pd.DataFrame:
    """Copies vs the guest's low pages when none is free: random vs cost-benefit remap back."""
    pages = io_trace(guest_pages, n_ios, net_fraction, net_buffers, seed)
    rows = []
    for low in low_pages_list:
        high = high_backing(guest_pages, low, seed)
        for pol in POLICIES:
            rows.append({"low_pages": low, "policy": pol, **replay_io(pages, high, threshold, 0, pol, seed, cb_sample)})
        rows.append({"low_pages": low, "policy": "no remapping", **replay_io(pages, high, -1, 0, "random", seed)})
    return pd.DataFrame(rows)
