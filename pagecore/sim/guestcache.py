"""A guest's own page cache under ballooning and under host demand paging (paper §3.1–3.3, Figure 2).

The guest (Red Hat Linux 7.2 running dbench in the paper) keeps file data in an **LRU page
cache** — its own replacement policy, which ballooning lets it apply (§3.2). Three setups of
the same guest replay the same file-server trace (:func:`dbench_trace`):

* **configured** with M MB: the kernel sizes its per-page structures for M MB;
* **ballooned** from 256 MB down to M MB: the kernel's structures are sized for 256 MB, so
  the cache is smaller by ``(256 − M) MB × kernel_bytes_per_page / 4096`` (the paper's
  explanation of the ballooning overhead);
* **host-paged**: a 256 MB guest that *thinks* it still has 256 MB while the host reclaims
  ``256 − M`` MB by paging **uniformly random** guest frames to its swap area (§3.3). A guest
  touch of such a frame faults it back in (the host then pages out another random frame), and
  when the guest's LRU evicts a dirty page whose frame the host swapped, the page is read from
  host swap only to be written to the guest's virtual disk: **double paging** (§3.1).

Throughput comes from a two-parameter cost model (:class:`CostModel`): every 4 KB
reference costs ``t_ref`` (CPU and memory copy of the client operation) and every disk
transfer ``t_disk`` (guest reads and write-backs, host swap-ins); host page-outs are
asynchronous and clustered (§3.3) and cost ``host_write_cost × t_disk``.

Named assumptions (UNCONFIRMED in the paper; config ``reclaim.guest``):

* ``kernel_bytes_per_page = 68``: Linux 2.4 (i386) ``struct page`` (``mem_map``, 64 bytes
  with its wait queue, ``include/linux/mm.h``) plus one pointer of the page-cache hash table
  per physical page (``page_cache_init`` in ``mm/filemap.c`` sizes it from ``num_physpages``).
  Smaller memory-sized tables (buffer, inode and dentry hashes) are left out.
* ``fixed_mb = 24``: kernel text/data, daemons and the 40 dbench processes, not cache.
* the host pages out cache frames only (kernel and process pages are hot and would fault
  straight back); a virtual-disk read into a host-swapped frame overwrites the whole page, so
  the host gives it a fresh machine page without reading swap.

The hot loop is :func:`_replay` (Numba, one reference at a time, O(1) each); its slow twin is
``tests/slow_twins.py::lru_replay`` (an ``OrderedDict``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from pagecore import PAGES_PER_MB
from pagecore._jit import JIT_DISABLED, SERIAL
from pagecore.sim.contracts import mechanism

PAGE = 4096
M64 = (1 << 64) - 1

#: Index of each counter in the stats array :func:`_replay` fills.
STATS = ("refs", "hits", "misses", "writebacks", "host_faults", "host_pageouts", "double_paging", "fresh_allocs")


# ----------------------------------------------------------------------------- trace
def dbench_trace(
    clients: int = 40,
    mb_per_client: float = 8.0,
    refs: int = 2_000_000,
    popularity_power: float = 1.0,
    run_pages: float = 8.0,
    write_fraction: float = 0.3,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A dbench-like file-server page-reference trace.

    Each of ``clients`` clients owns ``mb_per_client`` MB of files. An operation picks a
    client uniformly, a starting file page whose popularity falls with its rank x over the
    client's ``P`` pages as density ∝ (1 − x/P)^``popularity_power`` (1: linearly; 0:
    uniform), and reads or (with ``write_fraction``) writes a run of consecutive pages
    (geometric, mean ``run_pages``), as dbench's clients replay NetBench's read/write mix [28].

    Returns
    -------
    pages : numpy.ndarray of int64, shape (n,)
        File page ids in ``[0, clients × pages per client)``.
    write : numpy.ndarray of bool, shape (n,)
    """
    if clients < 1 or mb_per_client <= 0 or refs < 0 or popularity_power < 0 or run_pages < 1:
        raise ValueError(
            "dbench_trace: need clients >= 1, mb_per_client > 0, refs >= 0, popularity_power >= 0, run_pages >= 1"
        )
    rng = np.random.default_rng(seed)
    per = max(1, int(mb_per_client * PAGES_PER_MB))
    n_ops = int(refs / run_pages) + 16
    client = rng.integers(0, clients, n_ops)
    u = rng.random(n_ops)
    start = np.minimum((per * (1.0 - u ** (1.0 / (popularity_power + 1.0)))).astype(np.int64), per - 1)
    length = rng.geometric(1.0 / run_pages, n_ops)
    wr = rng.random(n_ops) < write_fraction
    op = np.repeat(np.arange(n_ops), length)
    offs = np.arange(op.size) - np.repeat(np.cumsum(length) - length, length)
    pages = client[op] * per + (start[op] + offs) % per
    return pages[:refs].astype(np.int64), wr[op][:refs]


# ----------------------------------------------------------------------------- kernel
@numba.njit(**SERIAL)
def _rand(state):
    """xorshift64* step on ``state[0]``; returns a uint64. Twin: ``slow_twins_reclaim.XorShift``."""
    x = state[0]
    x ^= x >> numba.uint64(12)
    x ^= x << numba.uint64(25)
    x ^= x >> numba.uint64(27)
    state[0] = x
    return x * numba.uint64(2685821657736338717)


if JIT_DISABLED:  # plain Python (coverage runs): NumPy scalars would warn on the wrap-around

    def _rand(state):  # the same generator without Numba
        x = int(state[0])
        x ^= x >> 12
        x ^= (x << 25) & M64
        x ^= x >> 27
        state[0] = x
        return np.uint64((x * 2685821657736338717) & M64)


def seed_state(seed: int) -> np.ndarray:
    """The generator state the kernels start from: ``seed × 0x9E3779B97F4A7C15 + 1`` (mod 2^64)."""
    return np.array([(int(seed) * 0x9E3779B97F4A7C15 + 1) & M64], np.uint64)


@numba.njit(**SERIAL)
def _host_evict(swapped, used, avoid, state, stats):
    """Page out one uniformly random resident frame other than ``avoid`` (among ``used``)."""
    while True:
        f = np.int64(_rand(state) % numba.uint64(used))
        if f != avoid and not swapped[f]:
            swapped[f] = True
            stats[5] += 1
            return


@numba.njit(**SERIAL)
def _replay(pages, write, n_pages, capacity, reclaim, warmup, state, stats):
    """Replay ``pages``/``write`` through an LRU cache of ``capacity`` frames.

    After ``warmup`` references the host pages out ``reclaim`` uniformly random frames
    (0: no host paging); counters (see :data:`STATS`) cover the references after warmup.
    """
    where = np.full(n_pages, -1, np.int64)  # page -> frame
    holds = np.full(capacity, -1, np.int64)  # frame -> page
    prev = np.full(capacity, -1, np.int64)
    nxt = np.full(capacity, -1, np.int64)
    dirty = np.zeros(capacity, np.bool_)
    swapped = np.zeros(capacity, np.bool_)
    # np.int64, not literals: a variable still holding its literal start value types a call's
    # argument as Literal[int], and Numba compiles _host_evict once more for each such call
    head = np.int64(-1)  # most recent
    tail = np.int64(-1)  # least recent
    used = np.int64(0)
    for s in range(stats.size):
        stats[s] = 0
    for i in range(pages.size):
        if i == warmup and reclaim > 0:
            if reclaim >= used:
                raise ValueError("host reclaim must leave at least one resident frame")
            stats[5] = 0
            for _ in range(reclaim):
                _host_evict(swapped, used, np.int64(-1), state, stats)
        counting = i >= warmup
        p = pages[i]
        f = where[p]
        if f >= 0:
            if counting:
                stats[1] += 1
            if swapped[f]:
                swapped[f] = False
                if counting:
                    stats[4] += 1
                _host_evict(swapped, used, f, state, stats)
            if f != head:  # unlink, then push at head
                pf = prev[f]
                nf = nxt[f]
                nxt[pf] = nf
                if nf >= 0:
                    prev[nf] = pf
                else:
                    tail = pf
                prev[f] = -1
                nxt[f] = head
                prev[head] = f
                head = f
        else:
            if counting:
                stats[2] += 1
            if used < capacity:
                f = used
                used += 1
            else:
                f = tail
                tail = prev[f]
                if tail >= 0:
                    nxt[tail] = -1
                else:
                    head = -1
                if dirty[f]:
                    if counting:
                        stats[3] += 1
                    if swapped[f]:  # host read it back only for the guest to write it out
                        swapped[f] = False
                        if counting:
                            stats[6] += 1
                            stats[4] += 1
                        _host_evict(swapped, used, f, state, stats)
                where[holds[f]] = -1
            if swapped[f]:  # the disk read overwrites the page: a fresh machine page
                swapped[f] = False
                if counting:
                    stats[7] += 1
                _host_evict(swapped, used, f, state, stats)
            holds[f] = p
            where[p] = f
            dirty[f] = False
            prev[f] = -1
            nxt[f] = head
            if head >= 0:
                prev[head] = f
            head = f
            if tail < 0:
                tail = f
        if write[i]:
            dirty[f] = True
        if counting:
            stats[0] += 1
    if reclaim == 0:
        stats[5] = 0


def replay(
    pages: np.ndarray, write: np.ndarray, capacity: int, reclaim: int = 0, warmup: int = 0, seed: int = 0
) -> dict[str, int]:
    """Replay a trace through the guest's LRU page cache, optionally under host paging.

    Parameters
    ----------
    pages : array of int, shape (n,)
        Page ids ``>= 0`` (e.g. from :func:`dbench_trace`).
    write : array of bool, shape (n,)
    capacity : int
        Cache frames of the guest (>= 1).
    reclaim : int
        Frames the host pages out at the end of warmup and keeps paged out (uniform random
        victims, §3.3); 0 for none. Must be below ``capacity``.
    warmup : int
        References replayed before counting (and before the host reclaims).
    seed : int
        Seed of the host's victim choice.

    Returns
    -------
    dict
        Counters of :data:`STATS` over the references after warmup.
    """
    pages = np.ascontiguousarray(pages, np.int64)
    write = np.ascontiguousarray(write, np.bool_)
    if pages.ndim != 1 or write.shape != pages.shape:
        raise ValueError(f"pages and write must be 1-D of equal length, got {pages.shape} and {write.shape}")
    if capacity < 1:
        raise ValueError(f"capacity must be >= 1 frame, got {capacity}")
    if reclaim < 0 or (reclaim and reclaim >= capacity):
        raise ValueError(f"reclaim must be in [0, capacity), got {reclaim} for capacity {capacity}")
    if pages.size and pages.min() < 0:
        raise ValueError("page ids must be >= 0")
    if not 0 <= warmup <= pages.size:
        raise ValueError(f"warmup must be in [0, {pages.size}], got {warmup}")
    if reclaim and warmup == pages.size:
        reclaim = 0
    n_pages = int(pages.max()) + 1 if pages.size else 1
    stats = np.zeros(len(STATS), np.int64)
    _replay(pages, write, n_pages, int(capacity), int(reclaim), int(warmup), seed_state(seed), stats)
    return dict(zip(STATS, (int(x) for x in stats), strict=True))


# ----------------------------------------------------------------------------- cost model
@dataclass(frozen=True)
class CostModel:
    """Service time per 4 KB reference (``t_ref``) and per disk transfer (``t_disk``), seconds.

    ``host_write_cost``: a host page-out's cost in disk transfers (asynchronous, clustered
    writes, §3.3; UNCONFIRMED, default 0.25).
    """

    t_ref: float
    t_disk: float
    host_write_cost: float = 0.25

    def seconds(self, s: dict) -> float:
        disk = s["misses"] + s["writebacks"] + s["host_faults"] + self.host_write_cost * s["host_pageouts"]
        return s["refs"] * self.t_ref + disk * self.t_disk

    def throughput_mbps(self, s: dict) -> float:
        """Client MB/s: every reference moves 4 KB of client data."""
        return s["refs"] * PAGE / 2**20 / self.seconds(s)

    @classmethod
    def fit(cls, points: list[tuple[dict, float]], host_write_cost: float = 0.25) -> CostModel:
        """``t_ref`` and ``t_disk`` from two (stats, measured MB/s) points, solved exactly."""
        if len(points) != 2:
            raise ValueError(f"the cost model has two unknowns; fit it on exactly 2 points, got {len(points)}")
        a = np.array([[s["refs"], s["misses"] + s["writebacks"]] for s, _ in points], float)
        b = np.array([s["refs"] * PAGE / 2**20 / mbps for s, mbps in points])
        t_ref, t_disk = np.linalg.solve(a, b)
        if t_ref <= 0 or t_disk <= 0:
            raise ValueError(f"fitted service times must be positive (t_ref={t_ref:.3g}, t_disk={t_disk:.3g})")
        return cls(float(t_ref), float(t_disk), host_write_cost)


# ----------------------------------------------------------------------------- the guest
@mechanism("guest_cache", "lru")
class LRUGuest:
    """A Linux-like guest: LRU page cache in what memory its kernel leaves free.

    Contract (kind ``guest_cache``): ``cache_pages(vm_mb, boot_mb)`` is the page-cache capacity
    of a guest booted with ``boot_mb`` and left ``vm_mb`` by the balloon; ``run(pages, write,
    vm_mb, boot_mb, host_reclaim_mb, seed)`` replays a trace and returns :data:`STATS`.
    Guarantees: ``cache_pages`` never grows as ``boot_mb`` grows at fixed ``vm_mb``; a run is
    deterministic in its seed.
    """

    kernel_bytes_per_page: float = 68.0
    fixed_mb: float = 24.0
    warmup_fraction: float = 0.5

    def __post_init__(self):
        # a negative kernel size per page made a ballooned guest's cache larger than a
        # configured one's (the contract above), a negative fixed size gave memory away
        for key in ("kernel_bytes_per_page", "fixed_mb"):
            if not 0 <= getattr(self, key) < math.inf:
                raise ValueError(f"{key} must be >= 0 and finite, got {getattr(self, key)}")
        if not 0 <= self.warmup_fraction <= 1:
            raise ValueError(f"warmup_fraction must be in [0, 1], got {self.warmup_fraction}")

    def cache_pages(self, vm_mb: float, boot_mb: float | None = None) -> int:
        boot_mb = vm_mb if boot_mb is None else boot_mb
        if vm_mb > boot_mb:
            raise ValueError(f"a guest cannot have more memory ({vm_mb} MB) than it booted with ({boot_mb} MB)")
        kernel_mb = boot_mb * self.kernel_bytes_per_page / PAGE
        pages = int((vm_mb - self.fixed_mb - kernel_mb) * PAGES_PER_MB)
        if pages < 1:
            raise ValueError(f"no page cache left in {vm_mb} MB (fixed {self.fixed_mb} MB + kernel {kernel_mb:.1f} MB)")
        return pages

    def run(self, pages, write, vm_mb, boot_mb=None, host_reclaim_mb=0.0, seed=0) -> dict[str, int]:
        cap = self.cache_pages(vm_mb, boot_mb)
        return replay(
            pages, write, cap, int(host_reclaim_mb * PAGES_PER_MB), int(self.warmup_fraction * len(pages)), seed
        )


# ----------------------------------------------------------------------------- experiments
def fig02_sweep(
    guest: LRUGuest,
    pages: np.ndarray,
    write: np.ndarray,
    sizes_mb=(128, 160, 192, 224, 256),
    boot_mb: float = 256,
    fit_mb=(128, 256),
    measured: dict | None = None,
    host_write_cost: float = 0.25,
    cost: CostModel | None = None,
) -> tuple[pd.DataFrame, CostModel]:
    """Figure 2: configured vs ballooned throughput at every VM size.

    ``measured`` maps VM size -> the paper's *configured* MB/s; the two sizes in ``fit_mb``
    calibrate the cost model (``t_ref``, ``t_disk``); everything else is predicted. A ``cost``
    model fitted beforehand (the declared fit step) replaces ``measured``/``fit_mb``.

    Returns
    -------
    (DataFrame, CostModel)
        Columns ``vm_mb, cache_configured_pages, cache_ballooned_pages, configured_mbps,
        ballooned_mbps, overhead_pct`` (ballooned NaN at ``boot_mb``) and the fitted model.
    """
    conf = {m: guest.run(pages, write, m) for m in sizes_mb}
    ball = {m: guest.run(pages, write, m, boot_mb) for m in sizes_mb if m < boot_mb}
    if cost is None:
        if measured is None:
            raise ValueError("fig02_sweep needs a fitted cost model or the measured throughput at the fit sizes")
        cost = CostModel.fit([(conf[m], measured[m]) for m in fit_mb], host_write_cost)
    rows = []
    for m in sizes_mb:
        c = cost.throughput_mbps(conf[m])
        b = cost.throughput_mbps(ball[m]) if m in ball else float("nan")
        rows.append(
            {
                "vm_mb": m,
                "cache_configured_pages": guest.cache_pages(m),
                "cache_ballooned_pages": guest.cache_pages(m, boot_mb) if m in ball else -1,
                "hit_ratio_configured": conf[m]["hits"] / max(conf[m]["refs"], 1),
                "configured_mbps": c,
                "ballooned_mbps": b,
                "overhead_pct": 100 * (c - b) / c,
            }
        )
    return pd.DataFrame(rows), cost


def paging_sweep(
    guest: LRUGuest,
    pages: np.ndarray,
    write: np.ndarray,
    cost: CostModel,
    reclaim_mb=(0, 32, 64, 96, 128),
    boot_mb: float = 256,
    seed: int = 0,
) -> pd.DataFrame:
    """Balloon vs host demand paging reclaiming the same memory from a ``boot_mb`` guest (§3.1–3.3).

    One row per (reclaim_mb, method) with the :data:`STATS` counters, per-1000-reference
    rates and throughput.
    """
    rows = []
    for r in reclaim_mb:
        runs = {
            "balloon": guest.run(pages, write, boot_mb - r, boot_mb),
            "host paging": guest.run(pages, write, boot_mb, boot_mb, host_reclaim_mb=r, seed=seed),
        }
        for method, s in runs.items():
            row = {"reclaim_mb": r, "method": method, **s, "throughput_mbps": cost.throughput_mbps(s)}
            for k in ("misses", "host_faults", "double_paging"):
                row[f"{k}_per_1000"] = 1000 * s[k] / max(s["refs"], 1)
            rows.append(row)
    return pd.DataFrame(rows)
