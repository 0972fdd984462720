"""Slow, obviously-correct twins of the reclamation and I/O-remapping kernels.

Written from the docstrings of :mod:`pagecore.sim.guestcache` and :mod:`pagecore.sim.ioremap`
(kept apart from ``slow_twins.py`` so the two can change independently): an ``OrderedDict``
LRU with a host that pages random frames, and a brute-force copy count.
"""

from __future__ import annotations

from collections import OrderedDict

M64 = (1 << 64) - 1


class XorShift:
    """xorshift64* with the kernels' seeding: state = seed × φ64 + 1."""

    def __init__(self, seed: int):
        self.x = (seed * 0x9E3779B97F4A7C15 + 1) & M64

    def next(self) -> int:
        x = self.x
        x ^= x >> 12
        x ^= (x << 25) & M64
        x ^= x >> 27
        self.x = x
        return (x * 2685821657736338717) & M64


def lru_replay(pages, write, capacity, reclaim=0, warmup=0, seed=0) -> dict:
    """The guest LRU cache (``OrderedDict`` page -> frame, oldest first) and the host's
    uniformly random page-outs over the frames in use, as ``guestcache`` documents them."""
    cache: OrderedDict[int, int] = OrderedDict()
    dirty: dict[int, bool] = {}
    swapped: set[int] = set()
    rng = XorShift(seed)
    used = 0
    c = dict.fromkeys(
        ("refs", "hits", "misses", "writebacks", "host_faults", "host_pageouts", "double_paging", "fresh_allocs"), 0
    )

    def evict(avoid):
        while True:
            f = rng.next() % used
            if f != avoid and f not in swapped:
                swapped.add(f)
                c["host_pageouts"] += 1
                return

    for i, (p, w) in enumerate(zip(pages, write, strict=True)):
        p = int(p)
        if i == warmup and reclaim > 0:
            for _ in range(reclaim):
                evict(-1)
        counting = i >= warmup
        if p in cache:
            f = cache[p]
            cache.move_to_end(p)
            c["hits"] += counting
            if f in swapped:
                swapped.discard(f)
                c["host_faults"] += counting
                evict(f)
        else:
            c["misses"] += counting
            if used < capacity:
                f = used
                used += 1
            else:
                _, f = cache.popitem(last=False)
                if dirty[f]:
                    c["writebacks"] += counting
                    if f in swapped:
                        swapped.discard(f)
                        c["double_paging"] += counting
                        c["host_faults"] += counting
                        evict(f)
            if f in swapped:
                swapped.discard(f)
                c["fresh_allocs"] += counting
                evict(f)
            cache[p] = f
            dirty[f] = False
        if w:
            dirty[f] = True
        c["refs"] += counting
    if reclaim == 0:
        c["host_pageouts"] = 0
    return c


def io_copies(pages, high, threshold, low_free, policy, seed=0, cb_sample=16) -> dict:
    """Brute-force copy count of hot-page remapping, as ``ioremap`` documents it."""
    high = [bool(h) for h in high]
    low = [p for p, h in enumerate(high) if not h]  # list order = the kernel's low list
    count = [0] * len(high)
    rng = XorShift(seed)
    s = {"ios": 0, "bounce_copies": 0, "remaps": 0, "remaps_back": 0}
    for p in pages:
        p = int(p)
        s["ios"] += 1
        count[p] += 1
        if not high[p]:
            continue
        s["bounce_copies"] += 1
        if threshold < 0 or count[p] <= threshold:
            continue
        if low_free > 0:
            low_free -= 1
        else:
            if not low:
                continue
            k = rng.next() % len(low)
            if policy == "cost_benefit":
                for _ in range(cb_sample - 1):
                    j = rng.next() % len(low)
                    if count[low[j]] < count[low[k]]:
                        k = j
            v = low[k]
            low[k] = low[-1]
            low.pop()
            high[v] = True
            count[v] = 0
            s["remaps_back"] += 1
        high[p] = False
        low.append(p)
        s["remaps"] += 1
    s["copies"] = s["bounce_copies"] + s["remaps"] + s["remaps_back"]
    return s
