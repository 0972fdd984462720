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
  1, 2, 4 then 8 visits at a time (``should_skip_rmap_item``), leaving the trees meanwhile;
* a write to a KSM page breaks copy-on-write; the counters still count the page until ``ksmd``
  visits it again (as in the kernel). A write to a zero-mapped page ends that mapping.

Counters: ``pages_shared`` (KSM pages), ``pages_sharing`` (further mappings), ``pages_unshared``
(unstable-tree items), ``pages_volatile`` (other rmap items), ``ksm_zero_pages``,
``general_profit`` = (pages_sharing + ksm_zero_pages)·page size − rmap items·64 B,
``pages_scanned``, ``pages_skipped``, ``full_scans``.

Time model: a wake-up at time t scans, the scan itself takes ``scan_us_per_page`` per visited
page (default 0: instantaneous), then ksmd sleeps. Writes with time ≤ t apply before the batch.
Pages KSM cannot see (never touched by the guest, not in the history) are simply absent.
After a static set converges, the counters equal
:func:`pagecore.sharing.count_sharing`'s ``ksm`` counters for the same pages (with
``smart_scan`` off; with it on ``pages_unshared``/``pages_volatile`` keep trading places).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pagecore import PAGE_SIZE
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

    def __post_init__(self):
        if self.pages_to_scan < 1:
            raise ValueError(f"pages_to_scan must be >= 1, got {self.pages_to_scan}")
        if self.sleep_millisecs < 0:
            raise ValueError(f"sleep_millisecs must be >= 0, got {self.sleep_millisecs}")
        if self.max_page_sharing < 2:
            raise ValueError(f"max_page_sharing must be >= 2 (kernel minimum), got {self.max_page_sharing}")


def _skip_age(age: int) -> int:
    if age <= 3:
        return 1
    if age <= 5:
        return 2
    if age <= 8:
        return 4
    return 8


@dataclass
class KsmResult:
    """Counters at the end (``final``), over time (``timeline``: one row per wake-up sample) and
    the time the saved pages first reached their final value (``seconds_to_converge``)."""

    final: dict
    timeline: pd.DataFrame
    seconds_to_converge: float
    settings: KsmSettings

    def to_dict(self) -> dict:
        return {**self.final, "seconds_to_converge": self.seconds_to_converge, "settings": asdict(self.settings)}


class KsmEmulator:
    """``ksmd`` over a page history; call :meth:`run` (see the module docstring)."""

    def __init__(self, history: PageHistory, settings: KsmSettings | None = None):
        self.h = history
        self.s = settings or KsmSettings()
        n = history.pages
        # address order: VM, then gpfn
        self.order = np.lexsort((history.gpfn, history.vm)).tolist()
        self.cid = history.content.tolist()
        self.state = [NONE] * n
        self.rmap = [False] * n
        self.oldsum = [-1] * n
        self.node = [-1] * n
        self.broken = [False] * n
        self.age = [0] * n
        self.skips = [0] * n
        self.node_cnt: list[int] = []
        self.chains: dict[int, list[int]] = {}
        self.unstable: dict[int, int] = {}
        self.c = dict.fromkeys(COUNTERS, 0)
        self.rmap_items = 0
        self.t = 0.0
        self._ev = 0
        self._cursor = 0

    # ------------------------------------------------------------------ tree maintenance
    def _remove_from_tree(self, p: int) -> None:
        st = self.state[p]
        if st == UNSTABLE:
            self.c["pages_unshared"] -= 1
        elif st == STABLE:
            nd = self.node[p]
            self.node_cnt[nd] -= 1
            if self.node_cnt[nd] == 0:
                self.c["pages_shared"] -= 1
            else:
                self.c["pages_sharing"] -= 1
            self.node[p] = -1
            self.broken[p] = False
        self.state[p] = NONE

    def _write(self, p: int, new: int) -> None:
        st = self.state[p]
        if st == STABLE:
            self.broken[p] = True  # COW break; counted until the next visit
        elif st == ZEROMAP:
            self.c["ksm_zero_pages"] -= 1
            self.state[p] = NONE
        self.cid[p] = new

    # ------------------------------------------------------------------ one page
    def _visit(self, p: int) -> None:
        s = self.s
        c = self.c
        c["pages_scanned"] += 1
        if not self.rmap[p]:
            self.rmap[p] = True
            self.rmap_items += 1
        st = self.state[p]
        if st == STABLE and not self.broken[p]:
            return  # a KSM page: stable_tree_search finds itself
        if s.smart_scan:
            age = self.age[p]
            if age < 255:
                self.age[p] = age + 1
            if age >= 3:
                if self.skips[p] == 0:
                    self.skips[p] = _skip_age(age)
                else:
                    c["pages_skipped"] += 1
                    self.skips[p] -= 1
                    self._remove_from_tree(p)
                    return
        self._remove_from_tree(p)
        cid = self.cid[p]
        chain = self.chains.get(cid)
        if chain:
            for nd in chain:
                k = self.node_cnt[nd]
                if 0 < k < s.max_page_sharing:
                    self.node_cnt[nd] = k + 1
                    self.state[p] = STABLE
                    self.node[p] = nd
                    c["pages_sharing"] += 1
                    return
        if self.oldsum[p] != cid:
            self.oldsum[p] = cid
            return
        if s.use_zero_pages and cid == self.h.zero_content:
            self.state[p] = ZEROMAP
            self.rmap[p] = False
            self.rmap_items -= 1
            c["ksm_zero_pages"] += 1
            return
        q = self.unstable.get(cid, -1)
        if q >= 0 and q != p and self.state[q] == UNSTABLE and self.cid[q] == cid:
            del self.unstable[cid]
            self._remove_from_tree(q)
            nd = len(self.node_cnt)
            self.node_cnt.append(2)
            if chain is None:
                chain = self.chains[cid] = []
            else:
                chain[:] = [x for x in chain if self.node_cnt[x] > 0]
            chain.append(nd)
            for r in (p, q):
                self.state[r] = STABLE
                self.node[r] = nd
            c["pages_shared"] += 1
            c["pages_sharing"] += 1
            return
        self.unstable[cid] = p
        self.state[p] = UNSTABLE
        c["pages_unshared"] += 1

    def snapshot(self) -> dict:
        c = dict(self.c)
        c["pages_volatile"] = self.rmap_items - c["pages_shared"] - c["pages_sharing"] - c["pages_unshared"]
        c["general_profit"] = (c["pages_sharing"] + c["ksm_zero_pages"]) * PAGE_SIZE - self.rmap_items * RMAP_ITEM_BYTES
        return c

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
        pages_shared, pages_sharing and ksm_zero_pages. Returns a :class:`KsmResult`; its
        timeline has one row per ``sample_s`` of emulated time and per full scan, columns
        ``t`` and the counters.
        """
        h, s = self.h, self.s
        n = h.pages
        sleep = s.sleep_millisecs / 1000.0
        ev_t, ev_p, ev_c = h.t.tolist(), h.page.tolist(), h.new_content.tolist()
        order = self.order
        rows: list[dict] = [{"t": self.t, **self.snapshot()}]
        last_sample = self.t
        settled = 0
        prev = None
        saved_hist: list[tuple[float, tuple]] = [(self.t, self._key())]
        while n:
            while self._ev < len(ev_t) and ev_t[self._ev] <= self.t:
                self._write(ev_p[self._ev], ev_c[self._ev])
                self._ev += 1
            visited = 0
            scan_end = False
            since_wrap = 0  # pages visited since the walk last wrapped (or this wake-up began)
            while visited < s.pages_to_scan:
                p = order[self._cursor]
                self._cursor += 1
                if self.state[p] != ZEROMAP:
                    self._visit(p)
                    visited += 1
                    since_wrap += 1
                if self._cursor == n:
                    self._cursor = 0
                    self.c["full_scans"] += 1
                    self.unstable.clear()
                    scan_end = True
                    if since_wrap == 0:
                        break  # nothing left to visit (every page is on the zero page)
                    since_wrap = 0
            self.t += visited * s.scan_us_per_page * 1e-6 + sleep
            if sleep == 0 and visited == 0:
                self.t += 1e-3
            key = self._key()
            if key != saved_hist[-1][1]:
                saved_hist.append((self.t, key))
            if scan_end or self.t - last_sample >= sample_s:
                rows.append({"t": self.t, **self.snapshot()})
                last_sample = self.t
            if scan_end and self._ev >= len(ev_t):
                settled = settled + 1 if key == prev else 0
                prev = key
                if settled >= settle_scans:
                    break
            if until_s is not None and self.t >= until_s:
                break
            if self.c["full_scans"] >= max_full_scans:
                break
        final = self.snapshot()
        rows.append({"t": self.t, **final})
        tl = pd.DataFrame(rows).drop_duplicates(subset=["t"], keep="last").reset_index(drop=True)
        return KsmResult(final, tl, float(saved_hist[-1][0]), s)

    def _key(self) -> tuple:
        c = self.c
        return (c["pages_shared"], c["pages_sharing"], c["ksm_zero_pages"])


def emulate_ksm(history: PageHistory, settings: KsmSettings | None = None, **run_kw) -> KsmResult:
    """Run the KSM emulator over ``history`` (see :class:`KsmEmulator.run`)."""
    return KsmEmulator(history, settings).run(**run_kw)
