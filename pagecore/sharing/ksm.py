"""An emulator of Linux KSM (kernel samepage merging), counter for counter.

It replays ``ksmd`` over a :class:`~pagecore.sharing.pagehistory.PageHistory` and reports the
``/sys/kernel/mm/ksm`` counters over time, so "how fast does KSM find this sharing, and when
has it settled?" can be answered before turning it on. Semantics follow ``mm/ksm.c``
(``ksm_do_scan``, ``cmp_and_merge_page``; see ``shared/reference/formats-ksm-esxi.md``):

* pages are walked in address order (VM, then gpfn), ``pages_to_scan`` per wake-up, then
  ``ksmd`` sleeps ``sleep_millisecs``; the end of a walk is one ``full_scans``;
* a visited page is first looked up in the **stable tree** (already merged KSM pages, keyed by
  content) and merged into a KSM page with fewer than ``max_page_sharing`` mappings;
* otherwise its checksum must equal the one from its previous visit (**volatility filter**; a
  page's first visit only records it), then, with ``use_zero_pages``, an all-zero page is mapped
  to the kernel zero page (``ksm_zero_pages``; its rmap item goes away);
* otherwise it is looked up in the **unstable tree** (rebuilt every full scan): a match merges
  both pages into a new KSM page (a new *dup* of a stable-node chain once the others are full);
  no match inserts it (``pages_unshared``);
* ``smart_scan`` skips pages that keep failing to merge: from their 4th visit on they are skipped
  1, 2, 4 then 8 visits at a time (``should_skip_rmap_item``), leaving the trees meanwhile; a
  skipped page is not returned by ``scan_get_next_rmap_item``, so it counts neither in
  ``pages_scanned`` nor against ``pages_to_scan``;
* since 6.10 a page that is not a KSM page has its checksum checked before the stable-tree
  lookup (``KsmSettings.volatility_first``);
* on THP-backed guest RAM (a :class:`ThpBacking`), the **stale zero node** of 6.12+ makes
  unstable-tree searches give up for the rest of a full scan (see :class:`ThpBacking`);
* a write to a KSM page breaks copy-on-write; the counters still count the page until ``ksmd``
  visits it again (as in the kernel). A write to a zero-mapped page ends that mapping.

Counters: ``pages_shared`` (KSM pages), ``pages_sharing`` (further mappings), ``pages_unshared``
(unstable-tree items), ``pages_volatile`` (other rmap items), ``ksm_zero_pages``,
``general_profit`` = (pages_sharing + ksm_zero_pages)·page size − rmap items·64 B,
``pages_scanned``, ``pages_skipped``, ``full_scans``.

Time model: a wake-up at time t scans, the scan itself takes ``scan_us_per_page`` per visited
page (default 0: instantaneous), then ksmd sleeps (``sleep_millisecs``, in whole jiffies when
``KsmSettings.hz`` is set). Writes with time ≤ t apply before the batch.
Pages KSM cannot see (never touched by the guest, not in the history) are simply absent.
After a static set converges, the counters equal
:func:`pagecore.sharing.count_sharing`'s ``ksm`` counters for the same pages (with
``smart_scan`` off; with it on ``pages_unshared``/``pages_volatile`` keep trading places).

Implementation (issue 15): the replay runs in Numba kernels; the dictionary-and-list emulator
it replaced is the slow twin in ``tests/slow_twins_scan.py``, and tests compare the two counter
for counter and timeline row for row. Layers as in STYLE.md: the driver :func:`_run` owns the
wake-up loop, visits pages (``cmp_and_merge_page`` written out in the loop: a Numba call that
takes arrays pays reference-count updates per call, more than a visit costs) and writes timeline
rows into preallocated buffers (it returns to Python when they are full, and resumes);
:func:`_write_page` applies a write; :class:`KsmEmulator` / :func:`emulate_ksm` are the public
wrappers.

* Pages are relabelled to their position in address order, and contents renumbered in the
  order the walk first meets them, so the walk reads the per-page arrays sequentially and the
  per-content arrays almost so. Outputs do not depend on either numbering.
* The **stable tree** is, per content, the chain of its KSM pages (*dups*) in creation order,
  with a pointer to the first one that may still take a mapping (those before it are full or
  empty): ``stable_tree_search`` is O(1) amortised instead of a walk of the whole chain. The
  first non-full dup in creation order is taken, exactly as before; a dup that loses a mapping
  moves the pointer back to itself if it is earlier.
* The **unstable tree** is one slot per content, emptied at the end of every full scan.

Memory, beyond the :class:`~pagecore.sim.pagehistory.PageHistory` itself (24 B per page and
8 B per content): **17 B per page** (content 4, old checksum 4, KSM-page node 4,
state/rmap/broken/age/skip 1 each) + **12 B per content met** (unstable slot, chain tail, first
candidate) + 4 B per content id of the history (the renumbering) + **12 B per KSM page** made (at
most (pages + writes) / 2; the buffer is reserved but only touched as KSM pages are made) + 8 B
per write; 16 B more per page when the history is not in address order (page tables are). A
64 VM × 4 GiB host of Figure 4-like guests (67 M pages, 19.5 M contents) takes about 1.5 GB for
the emulator beside 1.8 GB of history. Page and content ids must stay below 2^31.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from numba import njit

from pagecore import PAGE_SIZE
from pagecore._jit import INLINE, SERIAL
from pagecore.sharing.pagehistory import PageHistory

RMAP_ITEM_BYTES = 64  # sizeof(struct ksm_rmap_item) on 64-bit

NONE, UNSTABLE, STABLE, ZEROMAP = 0, 1, 2, 3

COUNTERS = (
    "full_scans",
    "pages_scanned",
    "pages_skipped",
    "pages_shared",
    "pages_sharing",
    "pages_unshared",
    "pages_volatile",
    "ksm_zero_pages",
    "general_profit",
)

# counter slots of the kernels (int64[NC]); pages_volatile and general_profit are derived
C_FULL, C_SCANNED, C_SKIPPED, C_SHARED, C_SHARING, C_UNSHARED, C_ZERO, C_RMAP, C_NODES = range(9)
NC = 9
_ROW_COLS = 8  # timeline rows store slots C_FULL..C_RMAP

# loop state of the driver: int64 slots ...
I_EV, I_CURSOR, I_NROWS, I_SETTLED, I_PREV_OK, I_PREV0, I_PREV1, I_PREV2, I_LAST0, I_LAST1, I_LAST2 = range(11)
I_FULL_AT_WRITE = 11  # full_scans when the last write so far was applied
I_ZNODE, I_STALE = 12, 13  # THP: huge page of this scan's zero node (-1: none), and whether it went stale
NI = 14
# ... and float64 slots
F_T, F_LAST_SAMPLE, F_CONV = range(3)
NF = 3
# parameters
P_PTS, P_MPS, P_UZP, P_SMART, P_ZERO, P_SETTLE, P_MAXSCANS, P_VOLFIRST, P_STALE = range(9)
Q_SLEEP, Q_SCAN_US, Q_SAMPLE, Q_UNTIL = range(4)
# driver return codes
DONE, NEED_ROWS = 0, 1

_INDEX_LIMIT = 2**31 - 1
#: largest values of the sysfs knobs' C types (``unsigned int``, ``int``)
UINT_MAX, INT_MAX = 2**32 - 1, 2**31 - 1
#: wake-ups of ``ksmd`` :meth:`KsmEmulator.run` replays up to the last write at most: the run
#: time and the timeline (up to one row per wake-up) grow with them, whatever the pages. A day
#: at the default 20 ms is 4.3 M; ``ksm --series --interval 1e300`` grew to 19 GB.
MAX_WAKEUPS = 10**7


@dataclass(frozen=True)
class KsmSettings:
    """The sysfs knobs the emulator honours (kernel defaults)."""

    pages_to_scan: int = 100
    sleep_millisecs: int = 20
    max_page_sharing: int = 256
    use_zero_pages: bool = False
    smart_scan: bool = True
    #: CPU time per visited page, added to each wake-up (0 = scanning takes no time)
    scan_us_per_page: float = 0.0
    #: kernel tick rate: ksmd sleeps ``msecs_to_jiffies(sleep_millisecs)`` jiffies, i.e. the
    #: sleep rounded up to whole ticks (``ksm_thread``; HZ=250: 10 ms -> 12 ms). 0 = no rounding.
    hz: int = 0
    #: a page that is not a KSM page has its checksum checked *before* the stable-tree lookup
    #: (Linux >= 6.10, "mm/ksm: don't waste time searching stable tree for fast changing
    #: page"): a page whose content changed since its last visit (or a first visit) records
    #: the checksum and is not merged into an existing KSM page until its next visit. False:
    #: the older order (stable tree first).
    volatility_first: bool = True
    #: THP-backed guest RAM only (a :class:`ThpBacking` given to the emulator): the stale
    #: unstable-tree node of Linux >= 6.12 (see :class:`ThpBacking`). False: ignore it.
    stale_zero_node: bool = True
    #: fraction of contents whose unstable-tree search path crosses the stale node (those
    #: ordered below the tree's root; about half of the keys)
    stale_below_fraction: float = 0.5

    def __post_init__(self):
        # upper bounds: the kernel's sysfs types (pages_to_scan and sleep_millisecs are parsed with
        # kstrtouint, max_page_sharing with kstrtoint); larger values overflowed the kernels' int64
        if not 1 <= self.pages_to_scan <= UINT_MAX:
            raise ValueError(
                f"pages_to_scan must be in [1, {UINT_MAX:,}] (sysfs unsigned int), got {self.pages_to_scan:,}"
            )
        if not 0 <= self.sleep_millisecs <= UINT_MAX:
            raise ValueError(
                f"sleep_millisecs must be in [0, {UINT_MAX:,}] (sysfs unsigned int), got {self.sleep_millisecs:,}"
            )
        if not 2 <= self.max_page_sharing <= INT_MAX:
            raise ValueError(
                f"max_page_sharing must be in [2, {INT_MAX:,}] (kernel minimum 2), got {self.max_page_sharing:,}"
            )
        if self.hz < 0:
            raise ValueError(f"hz must be >= 0 (0: no rounding to jiffies), got {self.hz}")
        if not 0.0 <= self.stale_below_fraction <= 1.0:
            raise ValueError(f"stale_below_fraction must be in [0, 1], got {self.stale_below_fraction}")

    @property
    def sleep_s(self) -> float:
        """The time ksmd sleeps between wake-ups: ``sleep_millisecs`` rounded up to whole
        jiffies when ``hz`` is set (``msecs_to_jiffies``)."""
        if self.hz <= 0:
            return self.sleep_millisecs / 1000.0
        return -(-self.sleep_millisecs * self.hz // 1000) / self.hz


@dataclass(frozen=True)
class ThpBacking:
    """Which pages of a history are backed by transparent huge pages on the host.

    ``block``: int64 per history page, the id of its 2 MiB huge page (-1: a 4 KiB page);
    ``zero``: bool per history page, an all-zero 4 KiB piece of a huge page (the check's
    :func:`pagecore.qemu.ksmcheck.walk_history` gives such pieces contents of their own: they
    are walked but never merged).

    Given to :class:`KsmEmulator`, it turns on the **stale zero node** of Linux >= 6.12 with
    ``use_zero_pages`` off (``KsmSettings.stale_zero_node``), measured on 6.18 by
    ``pagecore qemu ksmcheck``: per full scan, the first all-zero piece of a huge page that
    reaches the unstable tree is inserted (its key, all zeros, sorts first; later all-zero pieces
    match it and never merge). When a page of that huge page merges (``try_to_merge_one_page``
    splits a large folio before merging), the split maps its all-zero pieces to the shared zero
    page (``split_huge_page`` remapping zero-filled subpages, 6.12+), so the node no longer
    points to a mergeable page. An all-zero piece in a huge page split earlier is on the zero
    page and never becomes the node. ``unstable_tree_search_insert`` then gives
    up on every search that reaches it (``tree_page = get_mergeable_page(tree_rmap_item); if
    (!tree_page) return NULL;`` in mm/ksm.c, 6.18): the page is neither merged nor inserted, for
    the rest of the full scan (the tree is rebuilt at the next one). Searches that reach it are
    those for keys ordered below the root's (the zero node lies on the leftmost path): the
    emulator has no byte order of contents, so a fixed pseudo-random ``stale_below_fraction`` of
    the contents (by their hash, :func:`stale_below`) stand for them, and all-zero pieces
    Stable-tree lookups are not affected. Not modelled: the kernel's deferred-split shrinker
    for underused huge pages (6.12+) can split the node's huge page at a time the emulator
    cannot know (a likely reason why one boot of the same guests deferred 17 % of the merges
    and another 37 %).
    """

    block: np.ndarray
    zero: np.ndarray

    def __post_init__(self):
        b, z = np.asarray(self.block), np.asarray(self.zero)
        if b.shape != z.shape or b.ndim != 1:
            raise ValueError("ThpBacking: block and zero must be 1-D arrays of one value per page")
        if np.any(z & (b < 0)):
            raise ValueError("ThpBacking: an all-zero THP piece must have a block id >= 0")


def stale_below(content_hash: np.ndarray, fraction: float) -> np.ndarray:
    """Which contents count as ordered below the unstable tree's root (bool per content): a
    fixed pseudo-random ``fraction`` of them, by a SplitMix64 finalizer of their hash (so the
    choice does not depend on content numbering)."""
    with np.errstate(over="ignore"):
        x = np.asarray(content_hash, np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53) < fraction


# ---------------------------------------------------------------------------------- kernels
@njit(**INLINE)
def _skip_age(age):
    if age <= 3:
        return 1
    if age <= 5:
        return 2
    if age <= 8:
        return 4
    return 8


@njit(**SERIAL)
def _write_page(p, new, cid, state, broken, c):
    """The guest writes content ``new`` into page ``p``."""
    st = state[p]
    if st == STABLE:
        broken[p] = 1  # COW break; counted until the next visit
    elif st == ZEROMAP:
        c[C_ZERO] -= 1
        state[p] = NONE
    cid[p] = new


@njit(**SERIAL)
def _run(
    cid,
    state,
    rmap,
    oldsum,
    node,
    broken,
    age,
    skips,
    node_cnt,
    node_next,
    node_cid,
    unstable,
    cand,
    tail,
    thp_blk,
    thp_zero,
    split,
    below,
    c,
    ev_t,
    ev_p,
    ev_c,
    pi,
    pf,
    ist,
    fst,
    rows_t,
    rows_c,
):
    """The wake-up loop of ``ksmd``; returns DONE, or NEED_ROWS when the row buffers are full
    (the caller grows them and calls again: all loop state lives in ``ist``/``fst``).

    The visit of a page (``cmp_and_merge_page``) is written out in the loop rather than called:
    a Numba call that takes arrays costs reference-count updates on each of them, per page.
    """
    n = state.shape[0]
    m = ev_t.shape[0]
    pts = pi[P_PTS]
    mps = pi[P_MPS]
    uzp = pi[P_UZP] != 0
    smart = pi[P_SMART] != 0
    zc = pi[P_ZERO]
    volfirst = pi[P_VOLFIRST] != 0
    stale_on = pi[P_STALE] != 0
    sleep = pf[Q_SLEEP]
    scan_us = pf[Q_SCAN_US]
    sample_s = pf[Q_SAMPLE]
    until_s = pf[Q_UNTIL]
    while n > 0:
        if ist[I_NROWS] >= rows_t.shape[0]:
            return NEED_ROWS
        t = fst[F_T]
        ev = ist[I_EV]
        while ev < m and ev_t[ev] <= t:
            _write_page(ev_p[ev], ev_c[ev], cid, state, broken, c)
            ev += 1
            ist[I_FULL_AT_WRITE] = c[C_FULL]
        ist[I_EV] = ev
        visited = 0
        scan_end = False
        since_wrap = 0  # pages visited or skipped since the walk last wrapped (or this wake-up began)
        cur = ist[I_CURSOR]
        while visited < pts:
            p = cur
            cur += 1
            st = state[p]
            if st != ZEROMAP:
                visited += 1
                since_wrap += 1
                # ---- cmp_and_merge_page(p)
                c[C_SCANNED] += 1
                if rmap[p] == 0:
                    rmap[p] = 1
                    c[C_RMAP] += 1
                if st != STABLE or broken[p] != 0:  # else a KSM page: stable_tree_search finds itself
                    skip = False
                    if smart:
                        a = age[p]
                        if a < 255:
                            age[p] = a + 1
                        if a >= 3:
                            if skips[p] == 0:
                                skips[p] = _skip_age(a)
                            else:
                                c[C_SKIPPED] += 1
                                skips[p] -= 1
                                skip = True
                    # remove_rmap_item_from_tree(p)
                    if st == UNSTABLE:
                        c[C_UNSHARED] -= 1
                    elif st == STABLE:
                        nd = node[p]
                        k = node_cnt[nd] - 1
                        node_cnt[nd] = k
                        if k == 0:
                            c[C_SHARED] -= 1
                        else:
                            c[C_SHARING] -= 1
                            x = node_cid[nd]  # the dup may take a mapping again: first candidate?
                            if cand[x] < 0 or nd < cand[x]:
                                cand[x] = nd
                        node[p] = -1
                        broken[p] = 0
                    state[p] = NONE
                    if skip:  # should_skip_rmap_item: skipped before it is returned, not a scan
                        visited -= 1
                        c[C_SCANNED] -= 1
                    else:
                        x = cid[p]
                        vol = oldsum[p] != x
                        merged = False
                        if vol and volfirst:  # 6.10+: the checksum first (for a page that is not a KSM page)
                            oldsum[p] = x
                        else:
                            # stable tree: the first dup of the chain (creation order) with 0 < mappings < max
                            nd = cand[x]
                            while nd >= 0:
                                k = node_cnt[nd]
                                if 0 < k < mps:
                                    node_cnt[nd] = k + 1
                                    state[p] = STABLE
                                    node[p] = nd
                                    c[C_SHARING] += 1
                                    merged = True
                                    break
                                nd = node_next[nd]
                                cand[x] = nd  # dups before the first candidate are full or empty
                        if merged:
                            if stale_on:  # merging p splits its huge page
                                b = thp_blk[p]
                                if b >= 0:
                                    split[b] = 1
                                    if b == ist[I_ZNODE]:
                                        ist[I_STALE] = 1
                        elif vol:
                            if not volfirst:  # volatility filter: the checksum must not have changed
                                oldsum[p] = x
                        elif uzp and x == zc:
                            state[p] = ZEROMAP
                            rmap[p] = 0
                            c[C_RMAP] -= 1
                            c[C_ZERO] += 1
                        else:
                            # unstable_tree_search_insert
                            blocked = False
                            if stale_on:
                                if thp_zero[p] != 0:
                                    if ist[I_ZNODE] < 0 and split[thp_blk[p]] == 0:
                                        ist[I_ZNODE] = thp_blk[p]  # the scan's zero node
                                elif ist[I_STALE] != 0 and below[x] != 0:
                                    blocked = True  # the search reaches the stale node: gives up
                            q = unstable[x]
                            if blocked:
                                pass  # neither merged nor inserted (stays volatile)
                            elif q >= 0 and q != p and state[q] == UNSTABLE and cid[q] == x:
                                unstable[x] = -1
                                c[C_UNSHARED] -= 1  # q leaves the unstable tree ...
                                nd = c[C_NODES]  # ... and joins p on a new KSM page (dup)
                                c[C_NODES] = nd + 1
                                node_cnt[nd] = 2
                                node_cid[nd] = x
                                node_next[nd] = -1
                                last = tail[x]
                                if last >= 0:
                                    node_next[last] = nd
                                tail[x] = nd
                                if cand[x] < 0:
                                    cand[x] = nd
                                state[p] = STABLE
                                node[p] = nd
                                state[q] = STABLE
                                node[q] = nd
                                c[C_SHARED] += 1
                                c[C_SHARING] += 1
                                if stale_on:  # the merge splits both pages' huge pages
                                    b = thp_blk[p]
                                    b2 = thp_blk[q]
                                    if b >= 0:
                                        split[b] = 1
                                    if b2 >= 0:
                                        split[b2] = 1
                                    zn = ist[I_ZNODE]
                                    if zn >= 0 and (b == zn or b2 == zn):
                                        ist[I_STALE] = 1
                            else:
                                unstable[x] = p
                                state[p] = UNSTABLE
                                c[C_UNSHARED] += 1
                # ---- end of cmp_and_merge_page
            if cur == n:
                cur = 0
                c[C_FULL] += 1
                unstable[:] = -1
                ist[I_ZNODE] = -1
                ist[I_STALE] = 0
                scan_end = True
                if since_wrap == 0:
                    break  # nothing left to visit (every page is on the zero page)
                since_wrap = 0
        ist[I_CURSOR] = cur
        t += visited * scan_us * 1e-6 + sleep
        if sleep == 0 and visited == 0:
            t += 1e-3
        fst[F_T] = t
        k0, k1, k2 = c[C_SHARED], c[C_SHARING], c[C_ZERO]
        if k0 != ist[I_LAST0] or k1 != ist[I_LAST1] or k2 != ist[I_LAST2]:
            ist[I_LAST0], ist[I_LAST1], ist[I_LAST2] = k0, k1, k2
            fst[F_CONV] = t
        if scan_end or t - fst[F_LAST_SAMPLE] >= sample_s:
            r = ist[I_NROWS]
            rows_t[r] = t
            for j in range(_ROW_COLS):
                rows_c[r, j] = c[j]
            ist[I_NROWS] = r + 1
            fst[F_LAST_SAMPLE] = t
        if scan_end and ev >= m:
            same = ist[I_PREV_OK] != 0 and k0 == ist[I_PREV0] and k1 == ist[I_PREV1] and k2 == ist[I_PREV2]
            ist[I_SETTLED] = ist[I_SETTLED] + 1 if same else 0
            ist[I_PREV0], ist[I_PREV1], ist[I_PREV2] = k0, k1, k2
            ist[I_PREV_OK] = 1
            if ist[I_SETTLED] >= pi[P_SETTLE]:
                return DONE
        if t >= until_s:
            return DONE
        # a safety stop counted from the last write, so pending writes are always replayed; when
        # time cannot advance (no sleep, no scan cost) it counts from the start
        if c[C_FULL] - (ist[I_FULL_AT_WRITE] if ev >= m else 0) >= pi[P_MAXSCANS] and (ev >= m or sleep + scan_us == 0):
            return DONE
    return DONE


@njit(**SERIAL)
def _address_sorted(vm, gpfn):
    """True if pages are already in address order (VM, then gpfn)."""
    for i in range(1, vm.shape[0]):
        if vm[i] < vm[i - 1] or (vm[i] == vm[i - 1] and gpfn[i] < gpfn[i - 1]):
            return False
    return True


@njit(**SERIAL)
def _first_seen_ids(content, order, ev_c, newid, out_cid, out_ev):
    """Renumber contents in the order the walk first meets them (pages in ``order``, or in
    index order if ``order`` is empty, then the writes): a page's content id then grows with
    its address unless it repeats an earlier one, so the per-content arrays are read almost
    sequentially. Returns the number of ids given."""
    identity = order.shape[0] == 0
    nxt = 0
    for i in range(out_cid.shape[0]):
        x = content[i] if identity else content[order[i]]
        y = newid[x]
        if y < 0:
            y = nxt
            newid[x] = y
            nxt += 1
        out_cid[i] = y
    for e in range(ev_c.shape[0]):
        x = ev_c[e]
        y = newid[x]
        if y < 0:
            y = nxt
            newid[x] = y
            nxt += 1
        out_ev[e] = y
    return nxt


# ---------------------------------------------------------------------------------- wrapper
@dataclass
class KsmResult:
    """Counters at the end (``final``), over time (``timeline``: one row per wake-up sample) and
    the time the saved pages first reached their final value (``seconds_to_converge``)."""

    final: dict
    timeline: pd.DataFrame
    seconds_to_converge: float
    settings: KsmSettings
    #: the counters settled (``settle_scans`` equal full scans after the last write); False: the
    #: run stopped at ``until_s`` or ``max_full_scans`` first, so the counters and
    #: ``seconds_to_converge`` are not the converged ones
    settled: bool = True

    def to_dict(self) -> dict:
        return {
            **self.final,
            "seconds_to_converge": self.seconds_to_converge,
            "settled": self.settled,
            "settings": asdict(self.settings),
        }


class KsmEmulator:
    """``ksmd`` over a page history; call :meth:`run` (see the module docstring)."""

    def __init__(self, history: PageHistory, settings: KsmSettings | None = None, thp: ThpBacking | None = None):
        self.h = history
        self.s = settings or KsmSettings()
        n = history.pages
        if n > _INDEX_LIMIT or history.n_contents > _INDEX_LIMIT:
            raise ValueError(f"the KSM emulator handles up to 2^31 - 1 pages and contents, got {n:,} pages")
        content = np.ascontiguousarray(history.content, np.int64)
        vm = np.ascontiguousarray(history.vm, np.int64)
        gpfn = np.ascontiguousarray(history.gpfn, np.uint64)
        ev_c = np.ascontiguousarray(history.new_content, np.int64)
        history.check_ids()
        m = len(ev_c)
        # pages are relabelled to their position in address order (VM, then gpfn) ...
        if _address_sorted(vm, gpfn):
            self._pos = None
            order = np.zeros(0, np.int64)
        else:
            order = np.lexsort((gpfn, vm))
            self._pos = np.empty(n, np.int64)
            self._pos[order] = np.arange(n, dtype=np.int64)
        # ... and contents to the order the walk first meets them
        self._newid = np.full(max(history.n_contents, 1), -1, np.int32)
        self.cid = np.empty(n, np.int32)
        self._ev_c = np.empty(m, np.int64)
        self._n_ids = int(_first_seen_ids(content, order, ev_c, self._newid, self.cid, self._ev_c))
        zc = history.zero_content
        self._zero = int(self._newid[zc]) if zc >= 0 else -1
        self.state = np.zeros(n, np.uint8)
        self.rmap = np.zeros(n, np.uint8)
        self.oldsum = np.full(n, -1, np.int32)
        self.node = np.full(n, -1, np.int32)
        self.broken = np.zeros(n, np.uint8)
        self.age = np.zeros(n, np.uint8)
        self.skips = np.zeros(n, np.uint8)
        nc = max(self._n_ids, 1)
        self.unstable = np.full(nc, -1, np.int32)
        self.cand = np.full(nc, -1, np.int32)
        self.tail = np.full(nc, -1, np.int32)
        self._writes = m
        self._reserve_nodes()
        self.c = np.zeros(NC, np.int64)
        self.ist = np.zeros(NI, np.int64)
        self.fst = np.zeros(NF, np.float64)
        self._thp_setup(thp, order)

    @property
    def t(self) -> float:
        return float(self.fst[F_T])

    def _thp_setup(self, thp: ThpBacking | None, order: np.ndarray) -> None:
        """Per-page huge-page ids and all-zero flags in walk order, a split flag per huge page
        and the "ordered below the root" flag per (renumbered) content (:class:`ThpBacking`)."""
        n = self.h.pages
        self._stale_on = thp is not None and self.s.stale_zero_node
        self.ist[I_ZNODE] = -1
        if not self._stale_on:
            self.thp_blk = np.full(1, -1, np.int32)
            self.thp_zero = np.zeros(1, np.uint8)
            self.split = np.zeros(1, np.uint8)
            self.below = np.zeros(1, np.uint8)
            return
        blk = np.asarray(thp.block, np.int64)
        zero = np.asarray(thp.zero, bool)
        if len(blk) != n:
            raise ValueError(f"ThpBacking has {len(blk):,} pages, the history {n:,}")
        if len(order):
            blk, zero = blk[order], zero[order]
        # huge-page ids renumbered densely
        _, dense = np.unique(blk, return_inverse=True)
        dense = dense.astype(np.int32) - (1 if (blk < 0).any() else 0)
        self.thp_blk = np.where(blk >= 0, dense, -1).astype(np.int32)
        self.thp_zero = zero.astype(np.uint8)
        self.split = np.zeros(max(int(self.thp_blk.max(initial=-1)) + 1, 1), np.uint8)
        below_orig = stale_below(self.h.content_hash, self.s.stale_below_fraction)
        self.below = np.zeros(len(self.unstable), np.uint8)
        ids = self._newid[: len(below_orig)]
        met = ids >= 0
        self.below[ids[met]] = below_orig[met]

    def _reserve_nodes(self) -> None:
        """Room for every KSM page that can ever exist: each one takes two pages into the
        stable tree, and a page leaves it only after a write, so at most (pages + writes) / 2."""
        need = (self.h.pages + self._writes) // 2 + 1
        old = getattr(self, "node_cnt", None)
        if old is not None and len(old) >= need:
            return
        arrs = [np.empty(need, np.int32) for _ in range(3)]
        if old is not None:
            k = len(old)
            for new, cur in zip(arrs, (self.node_cnt, self.node_next, self.node_cid), strict=True):
                new[:k] = cur
        self.node_cnt, self.node_next, self.node_cid = arrs

    def _write(self, p: int, new: int) -> None:
        """The guest writes content ``new`` (a content id of the history) into page ``p``
        (an index into the history)."""
        if not (0 <= p < self.h.pages and 0 <= new < self.h.n_contents):
            raise ValueError(f"page {p} or content {new} out of range")
        y = int(self._newid[new])
        if y < 0:  # a content the walk has not met yet
            y = self._newid[new] = self._n_ids
            self._n_ids += 1
            if new == self.h.zero_content:
                self._zero = y
            if y >= len(self.unstable):
                grow = np.full(len(self.unstable), -1, np.int32)
                per_content = (self.unstable, self.cand, self.tail)
                self.unstable, self.cand, self.tail = (np.concatenate([a, grow]) for a in per_content)
                if self._stale_on:
                    self.below = np.concatenate([self.below, np.zeros(len(grow), np.uint8)])
            if self._stale_on:
                self.below[y] = stale_below(self.h.content_hash[new : new + 1], self.s.stale_below_fraction)[0]
        self._writes += 1
        self._reserve_nodes()
        q = p if self._pos is None else int(self._pos[p])
        _write_page(q, y, self.cid, self.state, self.broken, self.c)

    def snapshot(self) -> dict:
        return _counters(self.c)

    def check_can_run(self, *, until_s: float | None = None, max_wakeups: int = MAX_WAKEUPS) -> None:
        """Raise ``ValueError`` when replaying the writes (up to ``until_s``) takes more than
        ``max_wakeups`` wake-ups of ``ksmd``: each one takes at least ``sleep_millisecs``, and
        the run's time and timeline grow with their number. ``ksm --series --interval 1e300``
        grew to 19 GB of memory before it was killed."""
        span = self.h.last_write_s if until_s is None else min(self.h.last_write_s, until_s)
        span -= self.t
        step = self.s.sleep_s
        if step <= 0 or not span > 0:  # no sleep: max_full_scans bounds the run
            return
        wakeups = span / step
        if wakeups > max_wakeups:
            raise ValueError(
                f"the last change comes {span:.3g} s into the run: KSM waking every {step * 1000:g} ms takes "
                f"{wakeups:.3g} wake-ups to get there, past the {max_wakeups:.3g} the emulation runs; "
                "use a shorter --interval (or a larger --sleep-ms)"
            )

    # ------------------------------------------------------------------ time loop
    def run(
        self,
        *,
        until_s: float | None = None,
        settle_scans: int = 2,
        max_full_scans: int = 10_000,
        sample_s: float = 1.0,
    ) -> KsmResult:
        """Run ``ksmd`` until the counters settle or ``until_s``.

        Settled: after the last write, ``settle_scans`` consecutive full scans ended with equal
        pages_shared, pages_sharing and ksm_zero_pages. ``max_full_scans`` stops a run that does
        not settle, counted after the last write (every write is replayed first), or from the
        start when emulated time cannot advance (``sleep_millisecs`` and ``scan_us_per_page`` 0).
        Returns a :class:`KsmResult`; its timeline has one row per ``sample_s`` of emulated time
        and per full scan, columns ``t`` and the counters. Raises ``ValueError`` when the writes
        take more than :data:`MAX_WAKEUPS` wake-ups to replay (:meth:`check_can_run`).
        """
        self.check_can_run(until_s=until_s)
        h, s = self.h, self.s
        ev_t = np.ascontiguousarray(h.t, np.float64)
        ev_p = np.ascontiguousarray(h.page, np.int64)
        if self._pos is not None:
            ev_p = self._pos[ev_p]
        ev_c = self._ev_c
        pi = np.array(
            [
                s.pages_to_scan,
                s.max_page_sharing,
                int(s.use_zero_pages),
                int(s.smart_scan),
                self._zero,
                settle_scans,
                max_full_scans,
                int(s.volatility_first),
                int(self._stale_on),
            ],
            np.int64,
        )
        pf = np.array(
            [s.sleep_s, s.scan_us_per_page, sample_s, np.inf if until_s is None else until_s],
            np.float64,
        )
        ist, fst, c = self.ist, self.fst, self.c
        # a run starts afresh: sample clock, settle count and the convergence history
        ist[I_NROWS] = 1
        ist[I_SETTLED] = 0
        ist[I_PREV_OK] = 0
        ist[I_LAST0], ist[I_LAST1], ist[I_LAST2] = c[C_SHARED], c[C_SHARING], c[C_ZERO]
        fst[F_LAST_SAMPLE] = fst[F_T]
        fst[F_CONV] = fst[F_T]
        cap = 1024
        rows_t = np.empty(cap, np.float64)
        rows_c = np.empty((cap, _ROW_COLS), np.int64)
        rows_t[0] = fst[F_T]
        rows_c[0] = c[:_ROW_COLS]
        while True:
            rc = _run(
                self.cid, self.state, self.rmap, self.oldsum, self.node, self.broken, self.age, self.skips,
                self.node_cnt, self.node_next, self.node_cid, self.unstable, self.cand, self.tail,
                self.thp_blk, self.thp_zero, self.split, self.below, c,
                ev_t, ev_p, ev_c, pi, pf, ist, fst, rows_t, rows_c,
            )  # fmt: skip
            if rc == DONE:
                break
            cap *= 2  # NEED_ROWS (twice, not four times: a long run's unused rows were gigabytes)
            rows_t = np.concatenate([rows_t, np.empty(cap - len(rows_t), np.float64)])
            rows_c = np.concatenate([rows_c, np.empty((cap - len(rows_c), _ROW_COLS), np.int64)])
        r = int(ist[I_NROWS])
        final = self.snapshot()
        tl = _timeline(np.append(rows_t[:r], fst[F_T]), np.vstack([rows_c[:r], c[None, :_ROW_COLS]]))
        tl = tl.drop_duplicates(subset=["t"], keep="last").reset_index(drop=True)
        settled = h.pages == 0 or ist[I_SETTLED] >= settle_scans  # no pages: nothing to settle
        return KsmResult(final, tl, float(fst[F_CONV]), s, bool(settled))


def _counters(c: np.ndarray) -> dict:
    """The sysfs counters (Python ints, in :data:`COUNTERS` order) from a counter vector."""
    shared, sharing, unshared, rmap = int(c[C_SHARED]), int(c[C_SHARING]), int(c[C_UNSHARED]), int(c[C_RMAP])
    zero = int(c[C_ZERO])
    return {
        "full_scans": int(c[C_FULL]),
        "pages_scanned": int(c[C_SCANNED]),
        "pages_skipped": int(c[C_SKIPPED]),
        "pages_shared": shared,
        "pages_sharing": sharing,
        "pages_unshared": unshared,
        "pages_volatile": rmap - shared - sharing - unshared,
        "ksm_zero_pages": zero,
        "general_profit": (sharing + zero) * PAGE_SIZE - rmap * RMAP_ITEM_BYTES,
    }


def _timeline(t: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
    """Timeline rows (slots C_FULL..C_RMAP) as the ``t`` + :data:`COUNTERS` DataFrame."""
    shared, sharing, unshared = rows[:, C_SHARED], rows[:, C_SHARING], rows[:, C_UNSHARED]
    zero, rmap = rows[:, C_ZERO], rows[:, C_RMAP]
    return pd.DataFrame(
        {
            "t": t,
            "full_scans": rows[:, C_FULL],
            "pages_scanned": rows[:, C_SCANNED],
            "pages_skipped": rows[:, C_SKIPPED],
            "pages_shared": shared,
            "pages_sharing": sharing,
            "pages_unshared": unshared,
            "pages_volatile": rmap - shared - sharing - unshared,
            "ksm_zero_pages": zero,
            "general_profit": (sharing + zero) * PAGE_SIZE - rmap * RMAP_ITEM_BYTES,
        }
    )


def emulate_ksm(
    history: PageHistory, settings: KsmSettings | None = None, thp: ThpBacking | None = None, **run_kw
) -> KsmResult:
    """Run the KSM emulator over ``history`` (see :class:`KsmEmulator.run`; ``thp``: which pages
    are backed by huge pages on the host, see :class:`ThpBacking`)."""
    return KsmEmulator(history, settings, thp).run(**run_kw)
