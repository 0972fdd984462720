"""Free page reporting (virtio-balloon) predicted from a page table that says which guest pages are free.

The cooperative answer to the paper's transparency (issue 20): instead of the host guessing, the
guest tells it which memory is free and the host discards it. This module predicts, per VM, what
the host discards and when, from a page table with the :data:`pagecore.vocab.GUEST_FREE_COLUMN`
(``guest_free``: pages the guest's own buddy allocator holds free) and the kernel's reporting
parameters. With no ``guest_free`` column it refuses (:class:`pagecore.errors.InputError`); it
never guesses which pages are free.

What Linux reports (``mm/page_reporting.c``, ``include/linux/page_reporting.h``, Linux 5.7+;
read against the 6.1 sources Debian 12 ships)
----------------------------------------------------------------------------------------------
* Only free buddy blocks of order >= ``page_reporting_order`` are reported. The module parameter
  ``page_reporting_order`` is set when the driver registers to the driver's order or else
  ``pageblock_order`` (``page_reporting_register``: ``prdev->order ? : pageblock_order``);
  virtio-balloon sets no order on x86-64, and ``pageblock_order`` is ``HUGETLB_PAGE_ORDER`` = 9,
  i.e. 2 MiB chunks of 512 pages. Blocks of every order from there up to the largest buddy order
  (``MAX_ORDER - 1`` = 10 on 6.1) are reported whole, so a 2 MiB-aligned chunk is discarded if
  and only if all its 512 pages are free: :func:`reportable_mask`.
* A freed block of that order schedules the reporting worker ``PAGE_REPORTING_DELAY`` = ``2 * HZ``
  (2 s) later; a pass that could not finish re-arms itself for another 2 s.
* A pass hands the device ``PAGE_REPORTING_CAPACITY`` = 32 blocks per call and makes at most
  ``budget + 1`` calls per free list, ``budget = DIV_ROUND_UP(nr_free, 32 * 16)``
  (``page_reporting_cycle``: "a sixteenth of the current list", "all pages on an idle system in
  about 30 seconds").
* A zone is skipped unless its free pages exceed ``low_wmark + (32 << order)``
  (``page_reporting_process_zone``): 64 MiB above the low watermark at order 9, so the 16 MiB
  ``DMA`` zone of an x86-64 guest is never reported, and a guest with less than ~64 MiB free in a
  zone reports nothing there.
* Reported pages stay on the guest's free lists (flag ``PG_reported``); when the guest allocates
  one again, the host faults a fresh page in. Not modelled: migratetypes (every free block is
  taken to be on one list), the scatterlist carried between lists, the time a pass itself takes,
  and the host's THP granularity on refaults.

Synthetic guests
----------------
:func:`synthetic_guest_free` derives ``guest_free`` from the content model (documented there):
``rule="zero"`` marks the model's zero pages free where the model placed them (a fragmented
guest, the lower bound), ``rule="top"`` puts the same amount of free memory at the top of
guest-physical memory in whole blocks (a guest whose free memory the buddy allocator holds in
large blocks, the upper bound).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pagecore.errors import InputError
from pagecore.vocab import GUEST_FREE_COLUMN

#: x86-64 zone boundaries in 4 KiB frames: DMA below 16 MiB, DMA32 below 4 GiB, Normal above.
X86_64_ZONES = (("DMA", 0), ("DMA32", 4096), ("Normal", 1 << 20))


@dataclass(frozen=True)
class ReportingParams:
    """Free page reporting as Linux does it (defaults: x86-64, Linux 6.1; see the module docstring).

    Parameters
    ----------
    order : int
        ``page_reporting_order``: smallest reported block, log2 pages (9 = 2 MiB, ``pageblock_order``).
    max_order : int
        Largest buddy block order (``MAX_ORDER - 1`` = 10 on 6.1, 4 MiB).
    delay_s : float
        ``PAGE_REPORTING_DELAY`` = ``2 * HZ``: from a free (or an unfinished pass) to the next pass.
    capacity : int
        ``PAGE_REPORTING_CAPACITY``: blocks per report call.
    budget_divisor : int
        Calls per list per pass are ``ceil(nr_free / (capacity * budget_divisor)) + 1``.
    zones : tuple of (name, first gpfn)
        Zone boundaries, ascending (:data:`X86_64_ZONES`).
    low_wmark_pages : int or mapping
        Each zone's low watermark in pages (``low`` in the guest's ``/proc/zoneinfo``); one number
        for every zone or ``{zone name: pages}``. 0 leaves only the ``32 << order`` margin.
    """

    order: int = 9
    max_order: int = 10
    delay_s: float = 2.0
    capacity: int = 32
    budget_divisor: int = 16
    zones: tuple = X86_64_ZONES
    low_wmark_pages: int | Mapping[str, int] = field(default=0)

    def __post_init__(self):
        if not 0 <= self.order <= self.max_order:
            raise ValueError(f"order must be in [0, max_order={self.max_order}], got {self.order}")
        if self.delay_s < 0 or self.capacity < 1 or self.budget_divisor < 1:
            raise ValueError("delay_s must be >= 0, capacity and budget_divisor >= 1")

    @property
    def chunk_pages(self) -> int:
        return 1 << self.order

    def low(self, zone: str) -> int:
        if isinstance(self.low_wmark_pages, Mapping):
            return int(self.low_wmark_pages.get(zone, 0))
        return int(self.low_wmark_pages)

    def zone_of(self, gpfn: np.ndarray) -> np.ndarray:
        """Zone index of each frame."""
        starts = np.array([s for _, s in self.zones], np.uint64)
        return np.searchsorted(starts, np.asarray(gpfn, np.uint64), side="right") - 1


def _require_free(table: pd.DataFrame, where) -> None:
    if GUEST_FREE_COLUMN not in table.columns:
        raise InputError(
            where,
            f"page table has no {GUEST_FREE_COLUMN!r} column (which pages the guest holds free)",
            hint="free page reporting needs the guest's own free-page list: pagecore qemu freereport "
            "for real guests, pagecore.experiments.cooperative.synthetic_guest_free for synthetic ones",
        )
    for col in ("vm", "gpfn"):
        if col not in table.columns:
            raise InputError(where, f"page table has no {col!r} column", expected="columns vm, gpfn, guest_free")


def _chunks(gpfn: np.ndarray, free: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunk id of each page and whether that chunk is fully free (all 2**order frames present and free)."""
    chunk = np.asarray(gpfn, np.uint64) >> np.uint64(order)
    ids, inv = np.unique(chunk, return_inverse=True)
    n_free = np.bincount(inv, weights=np.asarray(free, bool), minlength=len(ids))
    n_all = np.bincount(inv, minlength=len(ids))
    full = (n_free == (1 << order)) & (n_all == (1 << order))
    return chunk, full[inv]


def _zone_ok(gpfn, free, params: ReportingParams) -> np.ndarray:
    """Per page: its zone passes ``page_reporting_process_zone``'s watermark check."""
    zone = params.zone_of(gpfn)
    zfree = np.bincount(zone, weights=np.asarray(free, bool), minlength=len(params.zones))
    need = np.array([params.low(name) + (params.capacity << params.order) for name, _ in params.zones])
    return (zfree > need)[zone]


def reportable_mask(table: pd.DataFrame, params: ReportingParams | None = None, *, where=None) -> np.ndarray:
    """Which rows of ``table`` the guest reports and the host discards (given time to finish).

    A page is reported iff its whole ``2**order``-page aligned chunk is in the table and free
    (``guest_free``) and its zone has more free pages than ``low_wmark + (capacity << order)``.

    Parameters
    ----------
    table : DataFrame
        Page table with ``vm``, ``gpfn`` and ``guest_free`` (one row per guest page).
    params : ReportingParams, optional
        Defaults to Linux's x86-64 defaults.
    where : str, optional
        Name of the input, for error messages.

    Returns
    -------
    ndarray of bool, one per row of ``table``, in row order.
    """
    params = params or ReportingParams()
    _require_free(table, where)
    out = np.zeros(len(table), bool)
    for _, idx in table.groupby("vm", sort=False, observed=True).indices.items():
        gpfn = table["gpfn"].to_numpy()[idx]
        free = table[GUEST_FREE_COLUMN].to_numpy(bool)[idx]
        _, full = _chunks(gpfn, free, params.order)
        out[idx] = full & _zone_ok(gpfn, free, params)
    return out


def _backed(table: pd.DataFrame) -> np.ndarray:
    """Pages the host backs before reporting: ``host_present`` when the table has it, else every page."""
    if "host_present" in table.columns:
        return table["host_present"].to_numpy(bool)
    return np.ones(len(table), bool)


def free_report(table: pd.DataFrame, params: ReportingParams | None = None, *, where=None) -> pd.DataFrame:
    """Per VM: what free page reporting discards once the reporting worker has finished.

    Returns
    -------
    DataFrame, one row per VM, columns
        ``vm``; ``pages`` (rows); ``guest_free`` (free pages); ``free_chunks`` (fully free aligned
        chunks of ``2**order`` pages); ``reported`` (pages in reported chunks, after the zone
        watermark check); ``backed_before`` (pages the host backs: ``host_present`` if the
        table has it, else all); ``discarded`` (backed pages in reported chunks: the
        :data:`pagecore.vocab.MECHANISMS` ``free_report`` saving, in pages); ``backed_after``;
        ``stranded_free`` (free pages not reported: partial chunks, or a zone under the watermark).
    """
    params = params or ReportingParams()
    rep = reportable_mask(table, params, where=where)
    backed = _backed(table)
    free = table[GUEST_FREE_COLUMN].to_numpy(bool)
    rows = []
    for vm, idx in table.groupby("vm", sort=False, observed=True).indices.items():
        _, full = _chunks(table["gpfn"].to_numpy()[idx], free[idx], params.order)
        r, b = rep[idx], backed[idx]
        rows.append(
            {
                "vm": vm,
                "pages": len(idx),
                "guest_free": int(free[idx].sum()),
                "free_chunks": int(full.sum()) >> params.order,
                "reported": int(r.sum()),
                "backed_before": int(b.sum()),
                "discarded": int((r & b).sum()),
                "backed_after": int((b & ~r).sum()),
                "stranded_free": int((free[idx] & ~r).sum()),
            }
        )
    return pd.DataFrame(rows)


def _blocks(chunks: np.ndarray, order: int, max_order: int) -> list[tuple[int, int]]:
    """Split sorted fully-free chunk ids into maximal aligned buddy blocks: ``(first chunk, order)``."""
    free = set(int(c) for c in chunks)
    out = []
    done = set()
    for c in sorted(free):
        if c in done:
            continue
        o = order
        while o < max_order:
            span = 1 << (o + 1 - order)
            if c % span or any((c + k) not in free for k in range(span)):
                break
            o += 1
        out.append((c, o))
        done.update(range(c, c + (1 << (o - order))))
    return out


def reclaim_timeline(
    table: pd.DataFrame,
    params: ReportingParams | None = None,
    *,
    t_free: float = 0.0,
    reuse: pd.DataFrame | None = None,
    where=None,
) -> pd.DataFrame:
    """Host memory over time when the guest's free memory (the table's ``guest_free``) was freed at ``t_free``.

    The reporting worker runs ``delay_s`` after ``t_free`` and again every ``delay_s`` while a
    pass left blocks unreported (budget, see the module docstring); each pass reports, per zone
    that passes the watermark check and per block order, at most ``(budget + 1) * capacity`` of
    the unreported blocks. ``reuse`` rows ``(t, vm, gpfn)`` are pages the guest allocates again at
    ``t``: a reported page faults back in (backed again) and its chunk is no longer free; a chunk
    reused before its report is never reported.

    Returns
    -------
    DataFrame with columns ``t`` (s), ``vm``, ``event`` (``start``, ``report``, ``reuse``),
    ``reported`` (pages currently discarded), ``backed`` (pages the host backs), ``pass_no``;
    one row per VM per event, sorted by ``t``.
    """
    params = params or ReportingParams()
    _require_free(table, where)
    mask = reportable_mask(table, params, where=where)
    backed_all = _backed(table)
    free_all = table[GUEST_FREE_COLUMN].to_numpy(bool)
    out = []
    for vm, idx in table.groupby("vm", sort=False, observed=True).indices.items():
        gpfn = table["gpfn"].to_numpy()[idx].astype(np.uint64)
        events = []
        if reuse is not None and len(reuse):
            r = reuse[reuse["vm"] == vm]
            events = sorted(zip(r["t"].astype(float), r["gpfn"].astype(np.uint64).tolist(), strict=True))
        out += _vm_timeline(vm, gpfn, backed_all[idx], free_all[idx], mask[idx], params, t_free, events)
    df = pd.DataFrame(out, columns=["t", "vm", "event", "reported", "backed", "pass_no"])
    return df.sort_values(["t", "vm"], kind="stable").reset_index(drop=True)


def _vm_timeline(vm, gpfn, backed_pages, free_pages, mask, params: ReportingParams, t_free: float, events) -> list:
    """The timeline rows of one VM (see :func:`reclaim_timeline`)."""
    cp = params.chunk_pages
    out = []
    backed_set = set(gpfn[backed_pages].tolist())
    free_set = set(gpfn[free_pages].tolist())
    chunk_ids = np.unique(gpfn[mask] >> np.uint64(params.order))
    zones = params.zone_of(chunk_ids << np.uint64(params.order)).tolist() if len(chunk_ids) else []
    zone_of_chunk = dict(zip(chunk_ids.tolist(), zones, strict=True))
    pending = _blocks(chunk_ids, params.order, params.max_order)  # free-list order: ascending frames
    reported_pages: set[int] = set()
    broken: set[int] = set()  # chunks the guest allocated from again
    reported_blocks: list[tuple[int, int]] = []
    backed = len(backed_set)
    out.append((t_free, vm, "start", 0, backed, 0))
    ei = 0
    pass_no = 0

    def reuse_until(t_until, pass_no):
        nonlocal backed, ei
        while ei < len(events) and events[ei][0] <= t_until:
            t, g = events[ei]
            ei += 1
            if g not in free_set:
                continue  # already allocated: nothing changes
            free_set.discard(g)
            broken.add(g >> params.order)
            if g in reported_pages:  # the host faults a fresh page in
                reported_pages.discard(g)
                backed_set.add(g)
                backed += 1
            out.append((t, vm, "reuse", len(reported_pages), backed, pass_no))

    t_pass = t_free + params.delay_s if pending else None
    while t_pass is not None:
        reuse_until(t_pass, pass_no)
        pass_no += 1
        # blocks the guest allocated from are gone from the free lists
        # (a block the guest allocated from is split: its untouched chunks stay free, one order lower)
        pending = [
            nb
            for b in pending
            for nb in (
                [b]
                if not any(c in broken for c in _span(b, params.order))
                else [(c, params.order) for c in _span(b, params.order) if c not in broken]
            )
        ]
        again = False
        for z in sorted({zone_of_chunk[b[0]] for b in pending}):
            for o in range(params.order, params.max_order + 1):
                lst = [b for b in pending if b[1] == o and zone_of_chunk[b[0]] == z]
                if not lst:
                    continue
                # area->nr_free counts reported blocks too
                nr_free = len(lst) + sum(
                    1 for b in reported_blocks if b[1] == o and zone_of_chunk[b[0]] == z and b[0] not in broken
                )
                limit = (-(-nr_free // (params.capacity * params.budget_divisor)) + 1) * params.capacity
                for b in lst[:limit]:
                    for c in _span(b, params.order):
                        for g in range(c * cp, (c + 1) * cp):
                            reported_pages.add(g)
                            if g in backed_set:
                                backed_set.discard(g)
                                backed -= 1
                reported_blocks.extend(lst[:limit])
                done = set(lst[:limit])
                pending = [b for b in pending if b not in done]
                again |= len(lst) > limit
        out.append((t_pass, vm, "report", len(reported_pages), backed, pass_no))
        t_pass = t_pass + params.delay_s if (again and pending) else None
    reuse_until(np.inf, pass_no)
    return out


def _span(block: tuple[int, int], order: int) -> range:
    """Chunk ids a buddy block ``(first chunk, block order)`` covers."""
    return range(block[0], block[0] + (1 << (block[1] - order)))


#: How :func:`synthetic_guest_free` places a synthetic guest's free memory.
SYNTHETIC_RULES = ("zero", "top")


def synthetic_guest_free(
    gpfn: np.ndarray, zero: np.ndarray, *, rule: str = "zero", free_fraction: float | None = None
) -> np.ndarray:
    """The ``guest_free`` column of a synthetic guest, from its content model.

    The content models (:class:`pagecore.synth.fig04.Fig04Model`, :class:`pagecore.synth.guests.GuestSet`)
    describe their ``zero`` class as the guest's free memory, zeroed; they say nothing else about
    which frames are free. Two rules, giving the two ends of the range:

    ``"zero"``
        The free pages are exactly the zero pages, where the model placed them (a per-VM random
        permutation of frames). Content-consistent, but scattered: almost no 2 MiB chunk is
        wholly free, so reporting wins ~nothing. The **lower bound** (a fragmented guest).
    ``"top"``
        The same number of free pages (or ``free_fraction`` of the guest's pages) are the
        highest-numbered frames: free memory held in whole buddy blocks, as in a guest that has
        not yet touched the top of its memory. Only the boundary chunk is partial. The **upper
        bound**. The pages keep their content-model contents (Linux leaves freed pages dirty).

    Parameters
    ----------
    gpfn, zero : ndarray
        One guest's page table columns (``zero`` as the content model wrote it).
    rule : {"zero", "top"}
    free_fraction : float, optional
        For ``"top"``: fraction of the guest's pages that are free (default: the zero fraction).

    Returns
    -------
    ndarray of bool, aligned with ``gpfn``.
    """
    if rule not in SYNTHETIC_RULES:
        raise ValueError(f"rule must be one of {SYNTHETIC_RULES}, got {rule!r}")
    gpfn = np.asarray(gpfn, np.uint64)
    zero = np.asarray(zero, bool)
    if rule == "zero":
        if free_fraction is not None:
            raise ValueError("free_fraction only applies to rule='top'")
        return zero.copy()
    frac = zero.mean() if free_fraction is None else float(free_fraction)
    if not 0.0 <= frac <= 1.0:
        raise ValueError(f"free_fraction must be in [0, 1], got {frac}")
    k = round(frac * len(gpfn))
    out = np.zeros(len(gpfn), bool)
    if k:
        out[np.argsort(gpfn, kind="stable")[len(gpfn) - k :]] = True
    return out
