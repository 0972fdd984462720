"""What the engine and the mechanisms share: host-wide accounting and per-VM state.

Kept apart from :mod:`pagecore.sim.engine` so that the mechanism contracts
(:mod:`pagecore.sim.contracts`) can name these types without importing the engine.
"""

from __future__ import annotations

import math

import numpy as np

from pagecore import PAGES_PER_MB
from pagecore.errors import ConfigError, InputError
from pagecore.sim import memory as m
from pagecore.synth.specs import HostSpec, VMSpec


def mb(pages) -> float:
    return float(pages) / PAGES_PER_MB


def pages_of(mb_: float) -> int:
    return round(float(mb_) * PAGES_PER_MB)


class HostView:
    """Host-wide accounting shared with the mechanisms."""

    def __init__(self, spec: HostSpec):
        self.system_pages = pages_of(spec.system_mb)
        self.esx_pages = pages_of(spec.esx_mb)
        if self.esx_pages >= self.system_pages:
            raise ConfigError(f"host: esx_mb {spec.esx_mb} leaves no memory of system_mb {spec.system_mb}")
        self.managed_pages = self.system_pages - self.esx_pages
        self.swap_pages = pages_of(spec.swap_mb)
        self.overhead_used = pages_of(spec.overhead_used_mb)
        self.reserved_pages = 0
        self.swap_reserved_pages = 0
        self.free = np.array([self.managed_pages], np.int64)
        self.swap_free = np.array([self.swap_pages], np.int64)
        self.overhead_pages = 0  # overhead in use by running VMs
        # page sharing (§4.3): the global content table, the counter of fresh content ids,
        # whether the sharing mechanism shares non-zero contents, and every VM's frames by index
        self.table = m.ContentTable()
        self.next_id = np.array([1], np.int64)
        self.content_sharing = False
        self.mems: dict[int, m.VMMemory] = {}
        self._lists = None

    def register(self, index: int, mem: m.VMMemory) -> None:
        """Make VM ``index``'s frames reachable from the content table's hints."""
        self.mems[int(index)] = mem
        self._lists = None

    def frame_lists(self):
        """Every registered VM's ``(states, conts, counters)`` as Numba typed lists, by VM index
        (what the content kernels take)."""
        if self._lists is None:
            from numba.typed import List

            n = max(self.mems, default=-1) + 1
            if sorted(self.mems) != list(range(n)):
                raise ValueError(f"VM indexes must be 0..{n - 1}, got {sorted(self.mems)}")
            lists = (List(), List(), List())
            for i in range(n):
                mem = self.mems[i]
                lists[0].append(mem.state)
                lists[1].append(mem.cont)
                lists[2].append(mem.c)
            self._lists = lists
        return self._lists

    @property
    def shared_pages(self) -> int:
        """Machine pages backing shared non-zero contents (one per content, §4.3)."""
        return self.table.shared_pages


class _Buffer:
    """A VM's not-yet-replayed trace events (time-sorted arrays, consumed from ``pos``)."""

    def __init__(self):
        self.t = np.zeros(0, np.float64)
        self.g = np.zeros(0, np.uint64)
        self.f = np.zeros(0, np.uint8)
        self.pos = 0

    def append(self, t, g, f):
        if self.pos > 0:
            self.t, self.g, self.f = self.t[self.pos :], self.g[self.pos :], self.f[self.pos :]
            self.pos = 0
        if len(self.t) and len(t) and t[0] < self.t[-1]:
            raise InputError(None, "access trace is not sorted by time within a VM", hint="sort by (t) before replay")
        if len(self.t) == 0:  # nothing left to keep: take the arrays as they are (never written)
            self.t, self.g, self.f, self.pos = t, g, f, 0
            return
        self.t = np.concatenate([self.t, t])
        self.g = np.concatenate([self.g, g])
        self.f = np.concatenate([self.f, f])

    @property
    def last_t(self):
        return self.t[-1] if len(self.t) else -math.inf


class VMState:
    """Everything the engine and the mechanisms know about one VM."""

    def __init__(self, spec: VMSpec, index: int, host: HostView, rng, image=None):
        self.spec = spec
        self.name = spec.name
        self.index = index
        self.pages = pages_of(spec.max_mb)
        if self.pages < 1:  # VMMemory said only "a VM needs at least one page, got 0"
            raise ConfigError(f"VM {spec.name}: max_mb {spec.max_mb:g} is less than one 4-KiB page (1/256 MB)")
        self.min_pages = pages_of(spec.min_mb)
        # at most this many machine pages whatever the host has free (VMSpec.limit_mb)
        lim = spec.limit_mb
        self.limit_pages = self.pages if lim is None or lim >= spec.max_mb else pages_of(lim)
        self.overhead_pages = pages_of(spec.overhead_mb)
        self.shares = float(spec.shares)
        self.balloon_driver_s = float(spec.balloon_driver_s)
        self.zero_freed = bool(spec.zero_freed)
        self.mem = m.VMMemory(self.pages, table=host.table, next_id=host.next_id, image=image)
        host.register(index, self.mem)
        self.host_free = host.free
        self.rng = rng
        self.clock = 0.0
        self.status = "waiting"  # waiting | starting (admitted, waits for free memory) | running | refused | stopped
        self.waited = False  # a power_on_wait was logged
        self.overhead_held = 0  # overhead pages in use taken so far while starting
        self.blocked = False
        self.limit_wait = False  # a touch waits at limit_pages for reclamation
        self.est: dict = {}
        self.bal: dict = {}
        self.scan_credit = 0.0
        self.target = self.pages
        self.balloon_target = 0
        self.buf = _Buffer()
        self.period = 0
        self.next_period = 0.0
        self.active_true = 0

    @property
    def running(self):
        return self.status == "running"
