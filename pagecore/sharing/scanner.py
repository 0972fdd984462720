"""The ESX Server page-sharing scanner (paper §4.2–4.3, Figure 3), over time.

Replays the background scanner over a :class:`~pagecore.sharing.pagehistory.PageHistory`:

* one **global hash table** with chaining (``buckets`` chains; the paper gives no sizing,
  UNCONFIRMED, so one bucket per ``pages_per_bucket`` guest pages);
* **16-byte frames**: a *shared frame* (64-bit hash, MPN, 16-bit reference count, chain link)
  for every shared machine page, and a *hint frame* (hash truncated to ``hint_hash_bits``, VM,
  PPN) for every scanned page that matched nothing; reference counts above 2^16 − 1 take an
  entry in an **overflow table**;
* pages are scanned in **random order** (a fresh seeded permutation of each VM's pages per pass)
  under a **per-VM** and a **system-wide** rate cap (``scan_rate_vm``, ``scan_rate_total``;
  defaults 50 and 200 pages/s are ESX 2.x's ``Mem.ShareScanVM``/``Mem.ShareScanTotal``, the
  paper gives no numbers); each VM gets ``min(scan_rate_vm, scan_rate_total / VMs)``;
* a hash hit on a shared frame is confirmed by a full comparison and the page is remapped
  copy-on-write (reference count + 1); a hit on a hint **rehashes** the hinted page: a changed
  hash removes the stale hint, an unchanged one is compared in full and both pages are shared;
  a comparison that fails is a **false match** and makes the scanned page **ineligible**;
* a write to a shared page breaks copy-on-write (reference count − 1; the frame and its machine
  page go when the count reaches 0); a write to a hinted page leaves a stale hint;
* :meth:`EsxScanner.share_before_swap` scans one page at once, outside the rate caps, as ESX
  does before paging a page out.

Outputs over time: shared pages (mapped to shared frames) and reclaimed pages (Σ refcount − 1,
the paper's vocabulary), hash-table memory (frames, overflow entries and bucket heads, also as a
percentage of guest memory; paper: < 0.5 %), and a CPU-cost proxy (pages hashed, bytes hashed,
bytes compared, chain links followed). A page already shared or ineligible costs one scan slot
but no hashing. After one full pass over a static set every duplicate has been found, and
shared/reclaimed pages equal :func:`pagecore.sharing.count_sharing`'s.

Implementation (issue 15): the scanner runs in Numba kernels; the list-of-lists scanner it
replaced is the slow twin in ``tests/slow_twins_scan.py``, and tests compare the two counter for
counter and timeline row for row. Layers as in STYLE.md: the ``@njit`` workers
:func:`_scan_pages` (a batch of pages) and :func:`_write_page` change the page records, the
frame pool and a counter vector; the driver :func:`_run` owns the tick loop and writes one
timeline row per tick into preallocated buffers; :class:`EsxScanner` / :func:`emulate_scanner`
are the public wrappers.
The random order is still NumPy's: the driver returns to Python whenever a VM starts a pass, the
wrapper draws that VM's permutation from the same seeded generator, in the same order as
before (NumPy's shuffle redone bit for bit in Numba, :mod:`pagecore.sharing.pcg64`), and the
driver resumes where it stopped. The pages of a tick are scanned in one kernel
call with every step written out (a Numba call that takes arrays pays reference-count updates
per call, more than a page's scan costs). What a scan reads about a page (hash, content, shared
frame, hint, ineligible) is one 16-byte record; frames are 16-byte records (key, payload whose
sign is the kind, chain link) in a pool of one slot per page (a page maps at most one shared frame
or owns one hint, never both, so the pool never runs out), with the reference counts of shared
frames in a separate array read only on a hit. Each bucket's chain is a singly linked list in
insertion order with a tail pointer, so a chain is walked exactly as the list version did; a frame
is unlinked by finding its predecessor from the chain head (chains hold one or two frames on
average), or from the walk that found it. A scan is a chain of dependent reads (page record ->
bucket -> frame -> hinted page's record), so the batch loop prefetches the records, buckets and
first frames of the pages 16-32 ahead (``llvm.prefetch``; hints only).

Memory, beyond the :class:`~pagecore.sim.pagehistory.PageHistory` itself (24 B per page and
8 B per content): **48 B per page** — page record 16, frame pool 16 + reference count 4, scan
order 8 (the VM's page list and its current permutation, int32), bucket heads and tails 4 (8 B
per bucket, one bucket per ``pages_per_bucket`` = 2 pages) — plus 8 B per content id (its hash
cut to ``hash_bits``) and 120 B per tick of timeline. Page and content ids must stay below 2^31.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from numba import njit

from pagecore import PAGE_SIZE
from pagecore._intrinsics import prefetch_read
from pagecore._jit import INLINE, SERIAL
from pagecore.sharing.pagehistory import PageHistory
from pagecore.sharing.pcg64 import permutation_into

FRAME_BYTES = 16
HINT, SHARED = 0, 1

#: counter names, in the order of the counter vector and of the timeline columns
COUNTERS = (
    "pages_scanned",
    "pages_hashed",
    "bytes_compared",
    "chain_links",
    "false_matches",
    "stale_hints",
    "cow_breaks",
    "shared_pages",
    "reclaimed_pages",
    "shared_frames",
    "hint_frames",
    "overflow_frames",
)
(
    C_SCANNED,
    C_HASHED,
    C_COMPARED,
    C_LINKS,
    C_FALSE,
    C_STALE,
    C_COW,
    C_SHARED_PAGES,
    C_RECLAIMED,
    C_SHARED_FRAMES,
    C_HINT_FRAMES,
    C_OVERFLOW,
    C_INELIGIBLE,
    C_FREE,  # head of the free list of the frame pool (-1: empty)
    C_HWM,  # frame slots ever used: slots from here on are fresh (never initialised)
) = range(15)
NC = 15
_ROW_COLS = 14  # timeline rows: C_SCANNED..C_INELIGIBLE, then min_passes

# loop state of the driver (int64 slots) ...
I_EV, I_PHASE, I_VI, I_KLEFT, I_GOAL_SET, I_NROWS, I_NEED_VM, I_LAST_RECLAIMED = range(8)
NI = 8
# ... and float64 slots
F_T, F_CONV = range(2)
NF = 2
# driver return codes
DONE, NEED_ROWS, NEED_PERM = 0, 1, 2
#: emulated seconds after which :meth:`EsxScanner.run` stops a run that has not settled
MAX_S = 1e7


@dataclass(frozen=True)
class ScannerSettings:
    """Parameters of the page-sharing scanner (see the module docstring for sources)."""

    scan_rate_vm: float = 50.0  # pages/s per VM (ESX 2.x Mem.ShareScanVM)
    scan_rate_total: float = 200.0  # pages/s system-wide (ESX 2.x Mem.ShareScanTotal)
    tick_s: float = 1.0  # time step of the rate caps and of the timeline
    hint_hash_bits: int = 32  # hash bits kept in a hint frame (UNCONFIRMED; Figure 3 shows low bits)
    hash_bits: int = 64  # bits of the page hash used (fewer bits = more false matches)
    pages_per_bucket: int = 2  # hash-table sizing (UNCONFIRMED)
    bucket_bytes: int = 4  # one chain-head pointer per bucket (32-bit ESX)
    refcount_bits: int = 16  # in-frame reference count; larger counts use the overflow table
    overflow_entry_bytes: int = 16
    seed: int = 0

    def __post_init__(self):
        if not (0 < self.scan_rate_vm < math.inf and 0 < self.scan_rate_total < math.inf):  # NaN too
            raise ValueError(
                f"scan rates must be finite and > 0 pages/s, got {self.scan_rate_vm} and {self.scan_rate_total}"
            )
        if not 0 < self.tick_s < math.inf:
            raise ValueError(f"tick_s must be > 0, got {self.tick_s}")
        if not 1 <= self.hint_hash_bits <= self.hash_bits <= 64:
            raise ValueError(
                f"need 1 <= hint_hash_bits <= hash_bits <= 64, got hint_hash_bits {self.hint_hash_bits} "
                f"and hash_bits {self.hash_bits}"
            )
        if self.pages_per_bucket < 1 or self.refcount_bits < 1:
            raise ValueError("pages_per_bucket and refcount_bits must be >= 1")


@dataclass
class ScanResult:
    """Final state, timeline (one row per tick) and time to converge of a scanner run."""

    final: dict
    timeline: pd.DataFrame
    seconds_to_converge: float
    settings: ScannerSettings
    #: every VM completed the settle passes after the last write (False: stopped by ``until_s``
    #: or ``max_s`` first, so the counters are not the converged ones)
    settled: bool = True

    def to_dict(self) -> dict:
        return {
            **self.final,
            "seconds_to_converge": self.seconds_to_converge,
            "settled": self.settled,
            "settings": asdict(self.settings),
        }


# ---------------------------------------------------------------------------------- kernels
#: Per-page record (16 bytes): the hash of its content (cut to ``hash_bits``), its content id and
#: one link: ``f + 1`` (> 0) for the shared frame ``f`` mapping it, ``-(g + 1)`` for its own hint
#: frame ``g``, :data:`INELIGIBLE` after a false match, 0 for none (a page maps a shared frame, owns
#: a hint or is ineligible, never two of them). One record per page: what a scan reads about a
#: page is in one cache line.
PAGE_DTYPE = np.dtype([("hash", np.uint64), ("cid", np.int32), ("link", np.int32)], align=True)
INELIGIBLE = np.int32(-(2**31))
#: Frame record (pool slot, 16 bytes): key (the page hash cut to ``hash_bits``, for a hint as
#: well: the scan compares its ``hint_hash_bits`` low bits, so the bucket of every frame is
#: ``key % buckets``), payload (content id ``x`` of a shared frame; ``-(p + 1)`` for the hint of
#: page ``p``: the sign is the kind) and the chain link. Free slots are chained through ``next``.
#: Reference counts of shared frames live in a separate int32 array (read only on a hit).
FRAME_DTYPE = np.dtype([("key", np.uint64), ("pay", np.int32), ("next", np.int32)], align=True)
HEAD, TAIL = 0, 1  # columns of the bucket array int32[buckets, 2]
PREFETCH = 16  # pages ahead whose record (2 x PREFETCH) and bucket (PREFETCH) are prefetched
_RING = 2 * PREFETCH  # a power of two


# The scan's reads are a chain (page -> bucket -> frame -> page); prefetching the next pages'
# records and buckets overlaps the chains of several pages.
_prefetch = prefetch_read


@njit(**INLINE)
def _unlink(bk, fr, b, g, pr):
    """Take frame ``g`` out of chain ``b`` given its predecessor ``pr`` (-1: ``g`` is the head)."""
    nx = fr[g]["next"]
    if pr >= 0:
        fr[pr]["next"] = nx
    else:
        bk[b, HEAD] = nx
    if nx < 0:
        bk[b, TAIL] = pr


@njit(**INLINE)
def _pred(bk, fr, b, g):
    """The frame before ``g`` in chain ``b`` (-1: ``g`` is the head). Chains are singly linked:
    with one bucket per two pages they hold one or two frames on average."""
    pr = -1
    f = bk[b, HEAD]
    while f != g:
        pr = f
        f = fr[f]["next"]
    return pr


@njit(**INLINE)
def _append(bk, fr, b, nf):
    """Put frame ``nf`` at the end of chain ``b`` (chains keep insertion order)."""
    fr[nf]["next"] = -1
    last = bk[b, TAIL]
    if last >= 0:
        fr[last]["next"] = nf
    else:
        bk[b, HEAD] = nf
    bk[b, TAIL] = nf


@njit(**SERIAL)
def _write_page(p, new, pg, hsh, bk, fr, fref, nb, cap, c):
    """The guest writes content ``new`` into page ``p``."""
    lk = pg[p]["link"]
    if lk > 0:  # copy-on-write break: a private copy for p
        f = lk - 1
        pg[p]["link"] = 0
        before = fref[f]
        fref[f] = before - 1
        c[C_OVERFLOW] += (1 if before - 1 > cap else 0) - (1 if before > cap else 0)
        c[C_SHARED_PAGES] -= 1
        c[C_COW] += 1
        if before - 1 >= 1:
            c[C_RECLAIMED] -= 1
        else:  # the last mapping: the frame goes (unlinked, back on the free list)
            b = np.int64(fr[f]["key"] % nb)
            _unlink(bk, fr, b, f, _pred(bk, fr, b, f))
            fr[f]["next"] = c[C_FREE]
            c[C_FREE] = f
            c[C_SHARED_FRAMES] -= 1
    elif lk == INELIGIBLE:
        pg[p]["link"] = 0
        c[C_INELIGIBLE] -= 1
    # (a hint stays: it is stale now)
    pg[p]["cid"] = new
    pg[p]["hash"] = hsh[new]


@njit(**SERIAL)
def _scan_pages(pages, npages, nahead, ring, pg, bk, fr, fref, nb, tmask, cap, c):
    """Scan ``pages[:npages]`` in order: hash each and share it or leave a hint (paper §4.2).

    ``pages[npages:npages + nahead]`` are the pages expected to be scanned next (the next
    tick's): only prefetched, so the next call's first pages find their records, buckets and
    first frames in cache (a guess: a wrong one costs a little time, never a result). ``ring``
    is scratch (int64[_RING]).

    One call per batch, with every step written out in the loop (small helpers are inlined at
    Numba IR level): a Numba call that takes arrays costs reference-count updates on each of
    them, which per page would cost more than the scan.
    """
    free = c[C_FREE]
    hwm = c[C_HWM]
    # the busiest counters live in locals (written back at the end)
    n_scanned = c[C_SCANNED]
    n_hashed = c[C_HASHED]
    n_compared = c[C_COMPARED]
    n_links = c[C_LINKS]
    n_hints = c[C_HINT_FRAMES]
    # software pipeline of prefetches (hints only): the record of page i + 2P, the bucket of page
    # i + P (its index kept in a ring, so the scan of page i reuses it) and the first frame of
    # the chain of page i + P/2 (prefetching the hinted page's record as well was slower)
    nall = npages + nahead
    for i in range(min(nall, 2 * PREFETCH)):
        _prefetch(pg, pages[i])
    for i in range(-PREFETCH, nall):
        j = i + 2 * PREFETCH
        if j < nall:
            _prefetch(pg, pages[j])
        j = i + PREFETCH
        if j < nall:
            pa = pages[j]
            lk = pg[pa]["link"]
            if lk <= 0 and lk != INELIGIBLE:
                ba = np.int64(pg[pa]["hash"] % nb)
                ring[j & (_RING - 1)] = ba
                _prefetch(bk, ba)
            else:
                ring[j & (_RING - 1)] = -1
        j = i + PREFETCH // 2
        if 0 <= j < nall:
            ba = ring[j & (_RING - 1)]
            if ba >= 0 and bk[ba, HEAD] >= 0:
                _prefetch(fr, bk[ba, HEAD])
        if i < 0 or i >= npages:
            continue
        p = pages[i]
        n_scanned += 1
        lk = pg[p]["link"]
        if lk > 0 or lk == INELIGIBLE:
            continue  # shared or ineligible: a scan slot, no hashing
        hv = pg[p]["hash"]
        b = ring[i & (_RING - 1)]  # = hv % nb, computed for the prefetch
        if lk < 0:  # drop p's own hint g (unlink it; its bucket is b unless p was written since)
            g = -lk - 1
            kg = fr[g]["key"]
            bg = b if kg == hv else np.int64(kg % nb)
            _unlink(bk, fr, bg, g, _pred(bk, fr, bg, g))
            fr[g]["next"] = free
            free = g
            pg[p]["link"] = 0
            n_hints -= 1
        x = pg[p]["cid"]
        n_hashed += 1
        tr = hv & tmask
        done = False
        prev = -1  # the frame before f in chain b
        f = bk[b, HEAD]
        while f >= 0:
            nxt = fr[f]["next"]  # read first: a stale hint f is unlinked below
            n_links += 1
            pay = fr[f]["pay"]
            if pay >= 0:  # a shared frame
                if fr[f]["key"] != hv:
                    prev = f
                    f = nxt
                    continue
                n_compared += PAGE_SIZE
                if pay == x:  # map p to the shared frame (copy-on-write)
                    pg[p]["link"] = f + 1
                    r = fref[f]
                    fref[f] = r + 1
                    c[C_OVERFLOW] += (1 if r + 1 > cap else 0) - (1 if r > cap else 0)
                    c[C_SHARED_PAGES] += 1
                    if r + 1 >= 2:
                        c[C_RECLAIMED] += 1
                else:  # a false match
                    pg[p]["link"] = INELIGIBLE
                    c[C_INELIGIBLE] += 1
                    c[C_FALSE] += 1
                done = True
                break
            if (fr[f]["key"] & tmask) != tr:
                prev = f
                f = nxt
                continue
            q = -pay - 1
            hq = pg[q]["hash"]  # rehash the hinted page
            n_hashed += 1
            lq = pg[q]["link"]
            if (hq & tmask) != tr or lq > 0:
                if lq < 0 and lq != INELIGIBLE:  # the hinted page changed since: drop its stale hint (unlink g)
                    g = -lq - 1
                    if g == f:
                        _unlink(bk, fr, b, g, prev)
                    else:
                        bg = np.int64(fr[g]["key"] % nb)
                        _unlink(bk, fr, bg, g, _pred(bk, fr, bg, g))
                        prev = f
                    fr[g]["next"] = free
                    free = g
                    pg[q]["link"] = 0
                    n_hints -= 1
                else:
                    prev = f
                c[C_STALE] += 1
                f = nxt
                continue
            if hq != hv:
                prev = f
                f = nxt
                continue  # only the truncated hashes collide
            n_compared += PAGE_SIZE
            if pg[q]["cid"] != x:  # a false match
                pg[p]["link"] = INELIGIBLE
                c[C_INELIGIBLE] += 1
                c[C_FALSE] += 1
                done = True
                break
            if lq < 0 and lq != INELIGIBLE:  # drop q's hint (unlink g) ...
                g = -lq - 1
                if g == f:
                    _unlink(bk, fr, b, g, prev)
                else:
                    bg = np.int64(fr[g]["key"] % nb)
                    _unlink(bk, fr, bg, g, _pred(bk, fr, bg, g))
                fr[g]["next"] = free
                free = g
                n_hints -= 1
            if free >= 0:  # ... and share q and p on a new shared frame (append nf to chain b)
                nf = free
                free = fr[nf]["next"]
            else:
                nf = hwm
                hwm += 1
            fr[nf]["key"] = hv
            fr[nf]["pay"] = x
            _append(bk, fr, b, nf)
            c[C_SHARED_FRAMES] += 1
            pg[q]["link"] = nf + 1
            pg[p]["link"] = nf + 1
            fref[nf] = 2
            c[C_OVERFLOW] += 1 if 2 > cap else 0  # q: 0 -> 1, p: 1 -> 2 mappings (cap >= 1)
            c[C_SHARED_PAGES] += 2
            c[C_RECLAIMED] += 1
            done = True
            break
        if not done:  # no match: a hint frame for p (append nf to chain b)
            if free >= 0:
                nf = free
                free = fr[nf]["next"]
            else:
                nf = hwm
                hwm += 1
            fr[nf]["key"] = hv
            fr[nf]["pay"] = -p - 1
            _append(bk, fr, b, nf)
            pg[p]["link"] = -nf - 1
            n_hints += 1
    c[C_FREE] = free
    c[C_HWM] = hwm
    c[C_SCANNED] = n_scanned
    c[C_HASHED] = n_hashed
    c[C_COMPARED] = n_compared
    c[C_LINKS] = n_links
    c[C_HINT_FRAMES] = n_hints


@njit(**SERIAL)
def _init_state(content, hsh, pg):
    """Pages hold their content (and its hash), no frame and no hint. Frame slots need no
    initialisation: a slot is written in full when it is first taken (``C_HWM``)."""
    for p in range(pg.shape[0]):
        x = content[p]
        pg[p]["cid"] = x
        pg[p]["hash"] = hsh[x]
        pg[p]["link"] = 0


@njit(**SERIAL)
def _sorted(a):
    for i in range(1, a.shape[0]):
        if a[i] < a[i - 1]:
            return False
    return True


@njit(**SERIAL)
def _fill_ahead(batch, nbatch, perm, vstart, vlen, vpos, credit, active, per_vm):
    """Put the pages the next tick will most likely scan first (each active VM's next
    ``credit + per_vm`` pages of its current order, up to ``2 * PREFETCH``) after
    ``batch[:nbatch]``, for prefetching only; returns how many."""
    k = 0
    room = min(2 * PREFETCH, batch.shape[0] - nbatch)
    for i in range(active.shape[0]):
        v = active[i]
        take = min(int(credit[v] + per_vm), vlen[v] - vpos[v])
        base = vstart[v] + vpos[v]
        for j in range(take):
            if k == room:
                return k
            batch[nbatch + k] = perm[base + j]
            k += 1
    return k


@njit(**SERIAL)
def _min_passes(passes):
    if passes.shape[0] == 0:
        return 0
    return passes.min()


@njit(**SERIAL)
def _run(
    pg,
    hsh,
    bk,
    fr,
    fref,
    nb,
    tmask,
    cap,
    c,
    ev_t,
    ev_p,
    ev_c,
    perm,
    vstart,
    vlen,
    vpos,
    passes,
    credit,
    active,
    goal,
    batch,
    ring,
    per_vm,
    tick_s,
    settle_passes,
    until_s,
    max_s,
    ist,
    fst,
    rows_t,
    rows_c,
):
    """The tick loop; returns DONE, NEED_ROWS (row buffers full) or NEED_PERM (VM
    ``ist[I_NEED_VM]`` starts a pass: the caller fills its permutation into ``perm``, sets
    ``vpos`` to 0 and calls again; all loop state lives in ``ist``/``fst``).

    The pages of a tick are gathered into ``batch`` (VM by VM, each in its random order) and
    scanned by one :func:`_scan_pages` call; the order of visits is the same as scanning each
    page as it is drawn, since scanning never changes the orders.
    """
    m = ev_t.shape[0]
    na = active.shape[0]
    nvm = passes.shape[0]
    cap_b = batch.shape[0] - 2 * PREFETCH  # room for the next tick's first pages (prefetch only)
    while na > 0:
        if ist[I_PHASE] == 0:  # a tick begins
            if ist[I_NROWS] >= rows_t.shape[0]:
                return NEED_ROWS
            t = fst[F_T]
            ev = ist[I_EV]
            while ev < m and ev_t[ev] <= t:
                _write_page(ev_p[ev], ev_c[ev], pg, hsh, bk, fr, fref, nb, cap, c)
                ev += 1
            ist[I_EV] = ev
            if ist[I_GOAL_SET] == 0 and ev >= m:
                for v in range(nvm):
                    goal[v] = passes[v] + settle_passes + (1 if vpos[v] < vlen[v] else 0)
                ist[I_GOAL_SET] = 1
            ist[I_PHASE] = 1
            ist[I_VI] = 0
            ist[I_KLEFT] = -1
        # np.int64(0), not 0, here and below: a literal 0 reaching a call types that argument as
        # Literal[int](0), and Numba compiles _scan_pages once more for it on a fresh clone
        nbatch = np.int64(0)
        while ist[I_VI] < na:
            v = active[ist[I_VI]]
            if ist[I_KLEFT] < 0:
                credit[v] += per_vm
                k = int(credit[v])
                credit[v] -= k
                ist[I_KLEFT] = k
            kleft = ist[I_KLEFT]
            s0 = vstart[v]
            ln = vlen[v]
            pos = vpos[v]
            while kleft > 0:
                if pos == ln or nbatch == cap_b:
                    _scan_pages(batch, nbatch, np.int64(0), ring, pg, bk, fr, fref, nb, tmask, cap, c)
                    nbatch = np.int64(0)
                    if pos == ln:  # the queue is empty: a new pass in a fresh random order
                        vpos[v] = pos
                        ist[I_KLEFT] = kleft
                        ist[I_NEED_VM] = v
                        return NEED_PERM
                batch[nbatch] = perm[s0 + pos]
                nbatch += 1
                pos += 1
                if pos == ln:
                    passes[v] += 1
                kleft -= 1
            vpos[v] = pos
            ist[I_VI] += 1
            ist[I_KLEFT] = -1
        nahead = _fill_ahead(batch, nbatch, perm, vstart, vlen, vpos, credit, active, per_vm)
        _scan_pages(batch, nbatch, nahead, ring, pg, bk, fr, fref, nb, tmask, cap, c)
        t = fst[F_T] + tick_s
        fst[F_T] = t
        ist[I_PHASE] = 0
        r = ist[I_NROWS]
        rows_t[r] = t
        for j in range(_ROW_COLS - 1):
            rows_c[r, j] = c[j]
        rows_c[r, _ROW_COLS - 1] = _min_passes(passes)
        ist[I_NROWS] = r + 1
        if c[C_RECLAIMED] != ist[I_LAST_RECLAIMED]:
            ist[I_LAST_RECLAIMED] = c[C_RECLAIMED]
            fst[F_CONV] = t
        if ist[I_GOAL_SET] != 0:
            settled = True
            for i in range(na):
                if passes[active[i]] < goal[active[i]]:
                    settled = False
                    break
            if settled:
                return DONE
        if t >= until_s or t >= max_s:
            return DONE
    return DONE


# ---------------------------------------------------------------------------------- wrapper
class EsxScanner:
    """The page-sharing scanner over a page history; call :meth:`run`."""

    def __init__(self, history: PageHistory, settings: ScannerSettings | None = None):
        self.h = history
        s = self.s = settings or ScannerSettings()
        n = history.pages
        if n > 2**31 - 1:
            raise ValueError(f"the scanner handles up to 2^31 - 1 pages, got {n:,}")
        history.check_ids()
        mask = np.uint64((1 << s.hash_bits) - 1)
        self.hash = np.ascontiguousarray(history.content_hash, np.uint64)  # read only: no copy when it fits
        if s.hash_bits < 64:
            self.hash = self.hash & mask
        self.tmask = np.uint64((1 << s.hint_hash_bits) - 1)
        self.nb = max(1, -(-n // s.pages_per_bucket))
        self.cap = min((1 << s.refcount_bits) - 1, 2**31 - 1)  # counts never exceed the pages
        self.pg = np.empty(n, PAGE_DTYPE)
        self.bk = np.full((self.nb, 2), -1, np.int32)  # chain head and tail per bucket
        self.fr = np.empty(max(n, 1), FRAME_DTYPE)
        self.fref = np.empty(max(n, 1), np.int32)  # reference counts of shared frames
        _init_state(np.ascontiguousarray(history.content, np.int64), self.hash, self.pg)
        self.rng = np.random.default_rng([s.seed, 0xE5C])
        nvm = len(history.vm_names)
        vm = np.asarray(history.vm, np.int64)
        # the pages of each VM, in index order
        self.vm_pages = np.arange(n, dtype=np.int32) if _sorted(vm) else np.argsort(vm, kind="stable").astype(np.int32)
        self.vlen = np.bincount(vm, minlength=nvm).astype(np.int64)[:nvm] if n else np.zeros(nvm, np.int64)
        self.vstart = np.concatenate([[0], np.cumsum(self.vlen)[:-1]]).astype(np.int64) if nvm else self.vlen.copy()
        self.perm = np.empty(n, np.int32)
        self.vpos = self.vlen.copy()  # every queue starts empty
        self.passes = np.zeros(nvm, np.int64)
        self.credit = np.zeros(nvm, np.float64)
        self.c = _CounterView(np.zeros(NC, np.int64))
        self.c.a[C_FREE] = -1  # free list empty; slots are taken from C_HWM up
        self.ist = np.zeros(NI, np.int64)
        self.fst = np.zeros(NF, np.float64)

    @property
    def t(self) -> float:
        return float(self.fst[F_T])

    def _write(self, p: int, new: int) -> None:
        """The guest writes content ``new`` into page ``p``."""
        if not (0 <= p < self.h.pages and 0 <= new < self.h.n_contents):
            raise ValueError(f"page {p} or content {new} out of range")
        _write_page(p, new, self.pg, self.hash, self.bk, self.fr, self.fref, np.uint64(self.nb), self.cap, self.c.a)

    def _scan_page(self, p: int) -> None:
        """Hash page ``p`` and share it or leave a hint (paper §4.2)."""
        if not 0 <= p < self.h.pages:
            raise ValueError(f"page {p} out of range")
        ring = np.empty(_RING, np.int64)
        _scan_pages(
            np.array([p], np.int32), 1, 0, ring, self.pg, self.bk, self.fr, self.fref, np.uint64(self.nb), self.tmask,
            self.cap,
            self.c.a,
        )  # fmt: skip

    def page_frames(self) -> np.ndarray:
        """The shared frame each page maps (int64 per page, -1: none)."""
        lk = self.pg["link"].astype(np.int64)
        return np.where(lk > 0, lk - 1, -1)

    def share_before_swap(self, p: int) -> bool:
        """Scan page ``p`` now, outside the rate caps (§4.3); True if it is shared afterwards."""
        self._scan_page(p)
        return bool(self.pg[p]["link"] > 0)

    def table_bytes(self) -> int:
        a = self.c.a
        frames = int(a[C_SHARED_FRAMES] + a[C_HINT_FRAMES])
        return frames * FRAME_BYTES + int(a[C_OVERFLOW]) * self.s.overflow_entry_bytes + self.nb * self.s.bucket_bytes

    def snapshot(self) -> dict:
        out = dict(self.c)
        out["ineligible_pages"] = int(self.c.a[C_INELIGIBLE])
        out["bytes_hashed"] = out["pages_hashed"] * PAGE_SIZE
        out["table_bytes"] = self.table_bytes()
        out["table_pct_of_memory"] = 100.0 * out["table_bytes"] / max(1, self.h.pages * PAGE_SIZE)
        out["min_passes"] = int(_min_passes(self.passes))
        return out

    def _per_vm(self, active: int) -> float:
        """Pages each of ``active`` scanning VMs may scan per tick (both rate caps)."""
        s = self.s
        return min(s.scan_rate_vm, s.scan_rate_total / max(1, active)) * s.tick_s

    def check_can_settle(self, *, settle_passes: int = 1, max_s: float = MAX_S) -> None:
        """Raise ``ValueError`` when :meth:`run` cannot settle by ``max_s`` even at best (the
        largest VM's ``settle_passes`` passes after the last write at its rate cap): at
        ``--rate-vm 1e-300`` the run ticked to ``max_s`` for seconds, growing a timeline of
        10^7 rows, and reported nothing shared, converged at 0 s, exit 0."""
        if not (self.vlen > 0).any():
            return
        per_vm = self._per_vm(int((self.vlen > 0).sum()))
        vmax = int(self.vlen.max())
        need_s = self.h.last_write_s + settle_passes * vmax / per_vm * self.s.tick_s
        if need_s > max_s:
            raise ValueError(
                f"at {per_vm / self.s.tick_s:.3g} pages/s per VM, {settle_passes} pass(es) over a VM of {vmax:,} "
                f"pages end at {need_s:.3g} s at the earliest, past the {max_s:.3g} s the emulation runs: "
                "raise the scan rates"
            )

    def run(self, *, until_s: float | None = None, settle_passes: int = 1, max_s: float = MAX_S) -> ScanResult:
        """Scan until settled or ``until_s``.

        Settled: after the last write every VM has completed ``settle_passes`` further passes
        (one pass finds all sharing of a static set). Timeline: one row per tick.
        ``max_s`` stops a run that has not settled (``ScanResult.settled`` is then False;
        :meth:`check_can_settle` refuses, before a run, settings that cannot settle by then).
        """
        h, s = self.h, self.s
        ev_t = np.ascontiguousarray(h.t, np.float64)
        ev_p = np.ascontiguousarray(h.page, np.int64)
        ev_c = np.ascontiguousarray(h.new_content, np.int64)
        active = np.flatnonzero(self.vlen > 0).astype(np.int64)
        per_vm = self._per_vm(len(active))
        ist, fst, a = self.ist, self.fst, self.c.a
        ist[I_PHASE] = 0
        ist[I_GOAL_SET] = 0
        ist[I_NROWS] = 1
        ist[I_LAST_RECLAIMED] = a[C_RECLAIMED]
        fst[F_CONV] = 0.0
        goal = np.zeros(len(self.passes), np.int64)
        cap = 1024
        rows_t = np.empty(cap, np.float64)
        rows_c = np.empty((cap, _ROW_COLS), np.int64)
        rows_t[0] = 0.0
        rows_c[0, : _ROW_COLS - 1] = a[: _ROW_COLS - 1]
        rows_c[0, _ROW_COLS - 1] = _min_passes(self.passes)
        until = np.inf if until_s is None else float(until_s)
        nb = np.uint64(self.nb)
        batch = np.empty(4096 + 2 * PREFETCH, np.int32)
        ring = np.empty(_RING, np.int64)
        while True:
            rc = _run(
                self.pg, self.hash, self.bk, self.fr, self.fref, nb, self.tmask, self.cap, a, ev_t, ev_p, ev_c,
                self.perm, self.vstart, self.vlen, self.vpos, self.passes, self.credit, active, goal, batch, ring,
                float(per_vm), float(s.tick_s), int(settle_passes), until, float(max_s), ist, fst, rows_t, rows_c,
            )  # fmt: skip
            if rc == DONE:
                break
            if rc == NEED_PERM:
                v = int(ist[I_NEED_VM])
                lo, hi = self.vstart[v], self.vstart[v] + self.vlen[v]
                permutation_into(self.rng, self.vm_pages[lo:hi], self.perm[lo:hi])  # = rng.permutation
                self.vpos[v] = 0
            else:  # NEED_ROWS
                cap *= 4
                rows_t = np.concatenate([rows_t, np.empty(cap - len(rows_t), np.float64)])
                rows_c = np.concatenate([rows_c, np.empty((cap - len(rows_c), _ROW_COLS), np.int64)])
        r = int(ist[I_NROWS])
        tl = self._timeline(rows_t[:r], rows_c[:r])
        settled = bool(ist[I_GOAL_SET]) and bool(np.all(self.passes[active] >= goal[active]))
        return ScanResult(self.snapshot(), tl, float(fst[F_CONV]), s, settled)

    def _timeline(self, t: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
        s = self.s
        cols = {"t": t}
        for j, name in enumerate(COUNTERS):
            cols[name] = rows[:, j]
        cols["ineligible_pages"] = rows[:, C_INELIGIBLE]
        cols["bytes_hashed"] = rows[:, C_HASHED] * PAGE_SIZE
        frames = rows[:, C_SHARED_FRAMES] + rows[:, C_HINT_FRAMES]
        tb = frames * FRAME_BYTES + rows[:, C_OVERFLOW] * s.overflow_entry_bytes + self.nb * s.bucket_bytes
        cols["table_bytes"] = tb
        cols["table_pct_of_memory"] = 100.0 * tb / max(1, self.h.pages * PAGE_SIZE)
        cols["min_passes"] = rows[:, _ROW_COLS - 1]
        return pd.DataFrame(cols)


class _CounterView:
    """The counter vector read as the dict of :data:`COUNTERS` (``scanner.c["shared_pages"]``)."""

    def __init__(self, a: np.ndarray):
        self.a = a

    def __getitem__(self, key: str) -> int:
        return int(self.a[COUNTERS.index(key)])

    def keys(self):
        return COUNTERS

    def __iter__(self):
        return iter(COUNTERS)


def emulate_scanner(history: PageHistory, settings: ScannerSettings | None = None, **run_kw) -> ScanResult:
    """Run the ESX page-sharing scanner over ``history`` (see :meth:`EsxScanner.run`)."""
    return EsxScanner(history, settings).run(**run_kw)
