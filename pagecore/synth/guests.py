"""Synthetic guests composed from a catalogue of content classes (paper Figure 5 scenarios).

Where :class:`pagecore.synth.fig04.Fig04Model` describes one kind of identical guest, this module
composes *different* guests — by OS kind, memory size and workload — from a catalogue:

``os`` entries (per OS kind; all sizes in MB or fractions of a guest's pages)
    ``zero``            fraction of pages that are zero (Windows zeroes free memory at boot
                        and in its zero page thread; Linux leaves free pages dirty);
    ``shared_mb``       kernel text/data, shared libraries, binaries and the page cache of
                        common files: one list of pages identical in every guest of this OS;
                        a guest holds the first ``min(shared_mb, max_shared × its size)`` of
                        them, so small guests hold the most common part;
    ``max_shared``      cap on the OS pages' share of a guest;
    ``variant``         fraction of the OS pages that vary per boot (relocated/randomized),
                        one of ``variants`` versions each;
    ``intra_dup``, ``intra_dup_groups``  non-zero pages repeated within a guest (pattern
                        pages), as fractions of its pages.
``apps`` entries
    ``shared_mb``       application binaries and data files identical in every guest that runs
                        the application.

Everything else in a guest is private. Page contents are the same counter-based SplitMix64
pages as :mod:`pagecore.synth.fig04` (so raw dumps can be written), and :meth:`GuestSet.page_table`
gives hash-only page tables at any scale.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from pagecore import PAGE_SIZE
from pagecore._util import name_tag, tag_collision
from pagecore.synth.fig04 import PAGES_PER_MB, WORDS, ContentLayout, _content_id, _fill_pages, content_hash

# content-id class tags (distinct from pagecore.synth.fig04's 0..4)
OS_SHARED, OS_VARIANT, OS_DUP, APP, PRIV = 5, 6, 7, 8, 9
CLASS_NAMES = {
    0: "zero",
    OS_SHARED: "os_shared",
    OS_VARIANT: "os_variant",
    OS_DUP: "intra_dup",
    APP: "app",
    PRIV: "private",
}


_tag = name_tag  # a stable 16-bit integer for a name (guest, OS kind or application)


@dataclass(frozen=True)
class OSKind:
    zero: float
    shared_mb: float
    max_shared: float = 0.6
    variant: float = 0.0
    variants: int = 8
    intra_dup: float = 0.0
    intra_dup_groups: float = 0.0


@dataclass(frozen=True)
class Guest:
    name: str
    os: str
    mem_mb: float
    apps: tuple[str, ...] = ()

    @property
    def pages(self) -> int:
        return round(self.mem_mb * PAGES_PER_MB)


@dataclass
class GuestSet:
    """A set of guests and the catalogue they are composed from.

    Parameters
    ----------
    guests : sequence of Guest
    os_kinds : mapping of OS name -> OSKind
    apps : mapping of application name -> shared MB
    seed : int
    """

    guests: Sequence[Guest]
    os_kinds: Mapping[str, OSKind]
    apps: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0

    @classmethod
    def from_config(cls, scenario: Mapping, catalogue: Mapping, seed: int) -> GuestSet:
        """Build from the workflow config (``synth.fig05.scenarios.<X>`` and ``synth.catalogue``)."""
        kinds = {k: OSKind(**v) for k, v in catalogue["os"].items()}
        guests = [Guest(g["name"], g["os"], float(g["mem_mb"]), tuple(g.get("apps", ()))) for g in scenario["guests"]]
        return cls(guests, kinds, dict(catalogue.get("apps", {})), seed)

    def __post_init__(self):
        for g in self.guests:
            if g.os not in self.os_kinds:
                raise ValueError(f"guest {g.name}: unknown OS kind {g.os!r} (catalogue has {sorted(self.os_kinds)})")
            for a in g.apps:
                if a not in self.apps:
                    raise ValueError(f"guest {g.name}: unknown application {a!r}")
        names = [g.name for g in self.guests]
        if len(set(names)) != len(names):
            raise ValueError("guest names must be unique")
        for g in self.guests:  # a guest of no page was written as one of the set, and counted as nothing
            if g.pages < 1:
                raise ValueError(
                    f"guest {g.name}: mem_mb {g.mem_mb:g} gives no 4 KiB page (at least {1 / PAGES_PER_MB:g})"
                )
        # contents are keyed by a 16-bit tag of each name: two guests (applications, OS kinds) whose
        # names share one got the same private (application) pages and the same random draws,
        # counted as sharing (guests "vm041" and "vm086": every private page shared), exit 0
        for what, group in (
            ("guests", names),
            ("applications", sorted(self.apps)),
            ("OS kinds", sorted(self.os_kinds)),
        ):
            pair = tag_collision(group)
            if pair is not None:
                raise ValueError(
                    f"{what} {pair[0]!r} and {pair[1]!r} have one 16-bit content tag (pagecore._util.name_tag): "
                    "their pages would be generated as one's; rename one of them"
                )

    @property
    def total_mb(self) -> float:
        return sum(g.mem_mb for g in self.guests)

    def counts(self, i: int) -> dict[str, int]:
        """Pages per class of guest ``i``."""
        g = self.guests[i]
        o = self.os_kinds[g.os]
        n = g.pages
        zero = round(o.zero * n)
        dup = min(round(o.intra_dup * n), n - zero)  # both rounded up could pass n: private was -1
        os_pages = min(round(o.shared_mb * PAGES_PER_MB), round(o.max_shared * n))
        app = 0
        for a in g.apps:
            app += round(self.apps[a] * PAGES_PER_MB)
        room = n - zero - dup
        os_pages = max(0, min(os_pages, room))
        app = max(0, min(app, room - os_pages))
        variant = round(o.variant * os_pages)
        return {
            "zero": zero,
            "intra_dup": dup,
            "os_shared": os_pages - variant,
            "os_variant": variant,
            "app": app,
            "private": n - zero - dup - os_pages - app,
        }

    def layout(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(content, patch, patch_pos, cls)`` by gpfn for guest ``i`` (see pagecore.synth.fig04)."""
        g = self.guests[i]
        o = self.os_kinds[g.os]
        c = self.counts(i)
        ot = _tag(g.os)
        rng = np.random.default_rng([self.seed, 0xF16_05, _tag(g.name)])
        layout = ContentLayout()
        add = layout.add

        add(0, np.zeros(c["zero"], np.uint64))
        groups = min(c["intra_dup"], max(1 if c["intra_dup"] else 0, round(o.intra_dup_groups * g.pages)))
        add(OS_DUP, _content_id(self.seed, OS_DUP, ot, np.arange(c["intra_dup"]) % max(groups, 1)))
        add(OS_SHARED, _content_id(self.seed, OS_SHARED, ot, np.arange(c["os_shared"])))
        v = c["os_variant"]
        slots = np.arange(v)
        draw = rng.integers(0, o.variants, size=v)
        patch = np.where(draw == 0, 0, _content_id(self.seed, OS_VARIANT, ot + 1, slots * o.variants + draw))
        add(OS_VARIANT, _content_id(self.seed, OS_VARIANT, ot, slots), patch, (slots * 7) % WORDS)
        left = c["app"]
        for a in g.apps:
            k = min(left, round(self.apps[a] * PAGES_PER_MB))
            add(APP, _content_id(self.seed, APP, _tag(a), np.arange(k)))
            left -= k
        add(PRIV, _content_id(self.seed, PRIV, _tag(g.name) ^ 0xFFFF, np.arange(c["private"])))
        perm = rng.permutation(g.pages)
        return layout.permuted(perm)

    def page_table(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(gpfn, hash, zero)`` of guest ``i`` without page bytes (hash-only)."""
        content, patch, _, _ = self.layout(i)
        return np.arange(len(content), dtype=np.uint64), content_hash(content, patch), content == 0

    def write_raw(self, i: int, path: str | os.PathLike, chunk_pages: int = 4096) -> int:
        """Write guest ``i`` as a raw physical image (atomically); returns bytes written."""
        from pagecore._util import atomic_path

        content, patch, pos, _ = self.layout(i)
        buf = np.empty((chunk_pages, WORDS), np.uint64)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            for lo in range(0, len(content), chunk_pages):
                hi = min(len(content), lo + chunk_pages)
                out = buf[: hi - lo]
                _fill_pages(out, content[lo:hi], patch[lo:hi], pos[lo:hi])
                fh.write(out.view(np.uint8).tobytes())
        return len(content) * PAGE_SIZE


def measure(gs: GuestSet) -> dict:
    """Sharing of a guest set from its hash-only page tables (paper vocabulary, MB)."""
    from pagecore.sharing import count_sharing
    from pagecore.sharing.counts import compact_vm_index

    hs, zs, vs = [], [], []
    for i in range(len(gs.guests)):
        _, h, z = gs.page_table(i)
        hs.append(h)
        zs.append(z)
        vs.append(np.full(len(h), i))
    names = [g.name for g in gs.guests]
    vm = compact_vm_index(np.concatenate(vs), len(names))  # share's dtype: one kernel signature
    d = count_sharing(np.concatenate(hs), np.concatenate(zs), vm, names, top_n=0).to_dict()
    mb = PAGE_SIZE / (1 << 20)
    return {
        "total_mb": d["total_mb"],
        "shared_mb": d["shared_mb"],
        "reclaimed_mb": d["reclaimed_mb"],
        "zero_mb": d["zero_mb"],
        "zero_reclaimed_mb": d["zero_saved_pages"] * mb,
    }


def fit(build, metric: str, target: float, lo: float, hi: float, tol: float = 0.05, steps: int = 40) -> float:
    """Bisect a parameter ``x`` in [lo, hi] so that ``measure(build(x))[metric]`` ≈ ``target``.

    ``build(x) -> GuestSet`` must make the metric non-decreasing in ``x``.
    """
    f_lo = measure(build(lo))[metric]
    f_hi = measure(build(hi))[metric]
    if not f_lo <= target <= f_hi:
        raise ValueError(f"target {metric}={target} outside [{f_lo:.1f}, {f_hi:.1f}] for x in [{lo}, {hi}]")
    for _ in range(steps):
        mid = (lo + hi) / 2
        v = measure(build(mid))[metric]
        if abs(v - target) <= tol:
            return mid
        lo, hi = (mid, hi) if v < target else (lo, mid)
    return (lo + hi) / 2
