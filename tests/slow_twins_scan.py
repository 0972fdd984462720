"""Slow, obviously-correct twins of the page-sharing scanners (issue 15, item 2).

These are the pure-Python KSM emulator and ESX page-sharing scanner exactly as
:mod:`pagecore.sharing.ksm` and :mod:`pagecore.sharing.scanner` held them before their inner loops moved
to Numba (moved here verbatim; only the imports changed). Dictionaries and lists, one page at a
time: the reference the kernels are compared with, counter for counter and row for row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pagecore import PAGE_SIZE
from pagecore.sharing.ksm import (
    COUNTERS,
    NONE,
    RMAP_ITEM_BYTES,
    STABLE,
    UNSTABLE,
    ZEROMAP,
    KsmResult,
    KsmSettings,
    ThpBacking,
    stale_below,
)
from pagecore.sharing.pagehistory import PageHistory
from pagecore.sharing.scanner import FRAME_BYTES, HINT, SHARED, ScannerSettings, ScanResult


# ====================================================================================== KSM
def _skip_age(age: int) -> int:
    if age <= 3:
        return 1
    if age <= 5:
        return 2
    if age <= 8:
        return 4
    return 8


class KsmEmulator:
    """``ksmd`` over a page history; call :meth:`run` (see the module docstring)."""

    def __init__(self, history: PageHistory, settings: KsmSettings | None = None, thp: ThpBacking | None = None):
        self.h = history
        self.s = settings or KsmSettings()
        n = history.pages
        # THP-backed pages (the stale zero node, see ThpBacking): huge page and all-zero flag per
        # page, the huge pages split so far, and per full scan the zero node's huge page and
        # whether it went stale
        self.stale_on = thp is not None and self.s.stale_zero_node
        self.thp_blk = [int(b) for b in thp.block] if self.stale_on else None
        self.thp_zero = [bool(z) for z in thp.zero] if self.stale_on else None
        self.split: set[int] = set()
        self.znode: int | None = None
        self.stale = False
        hashes = history.content_hash
        self.below = stale_below(hashes, self.s.stale_below_fraction).tolist() if self.stale_on else None
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
    def _split(self, p: int) -> None:
        """Merging page ``p`` splits its huge page; the zero node goes stale if it lived there."""
        b = self.thp_blk[p]
        if b >= 0:
            self.split.add(b)
            if b == self.znode:
                self.stale = True

    def _visit(self, p: int) -> bool:
        """cmp_and_merge_page; False if smart scan skipped the page (not a scan)."""
        s = self.s
        c = self.c
        c["pages_scanned"] += 1
        if not self.rmap[p]:
            self.rmap[p] = True
            self.rmap_items += 1
        st = self.state[p]
        if st == STABLE and not self.broken[p]:
            return True  # a KSM page: stable_tree_search finds itself
        if s.smart_scan:
            age = self.age[p]
            if age < 255:
                self.age[p] = age + 1
            if age >= 3:
                if self.skips[p] == 0:
                    self.skips[p] = _skip_age(age)
                else:
                    c["pages_skipped"] += 1
                    c["pages_scanned"] -= 1  # skipped before ksmd returns it: not scanned
                    self.skips[p] -= 1
                    self._remove_from_tree(p)
                    return False
        self._remove_from_tree(p)
        cid = self.cid[p]
        volatile = self.oldsum[p] != cid
        if volatile and s.volatility_first:  # 6.10+: checksum before the stable tree
            self.oldsum[p] = cid
            return True
        chain = self.chains.get(cid)
        if chain:
            for nd in chain:
                k = self.node_cnt[nd]
                if 0 < k < s.max_page_sharing:
                    self.node_cnt[nd] = k + 1
                    self.state[p] = STABLE
                    self.node[p] = nd
                    c["pages_sharing"] += 1
                    if self.stale_on:
                        self._split(p)
                    return True
        if volatile:
            self.oldsum[p] = cid
            return True
        if s.use_zero_pages and cid == self.h.zero_content:
            self.state[p] = ZEROMAP
            self.rmap[p] = False
            self.rmap_items -= 1
            c["ksm_zero_pages"] += 1
            return True
        if self.stale_on:
            b = self.thp_blk[p]
            if self.thp_zero[p]:
                if self.znode is None and b not in self.split:
                    self.znode = b  # this scan's zero node (later all-zero pieces match it, never merge)
            elif self.stale and self.below[cid]:
                return True  # the search reaches the stale node and gives up: not inserted
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
            if self.stale_on:
                self._split(p)
                self._split(q)
            return True
        self.unstable[cid] = p
        self.state[p] = UNSTABLE
        c["pages_unshared"] += 1
        return True

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
        sleep = s.sleep_s
        ev_t, ev_p, ev_c = h.t.tolist(), h.page.tolist(), h.new_content.tolist()
        order = self.order
        rows: list[dict] = [{"t": self.t, **self.snapshot()}]
        last_sample = self.t
        settled = 0
        prev = None
        saved_hist: list[tuple[float, tuple]] = [(self.t, self._key())]
        full_at_write = 0  # full_scans when the last write so far was applied
        while n:
            while self._ev < len(ev_t) and ev_t[self._ev] <= self.t:
                self._write(ev_p[self._ev], ev_c[self._ev])
                self._ev += 1
                full_at_write = self.c["full_scans"]
            visited = 0
            scan_end = False
            since_wrap = 0  # pages visited since the walk last wrapped (or this wake-up began)
            while visited < s.pages_to_scan:
                p = order[self._cursor]
                self._cursor += 1
                if self.state[p] != ZEROMAP:
                    if self._visit(p):
                        visited += 1
                    since_wrap += 1
                if self._cursor == n:
                    self._cursor = 0
                    self.c["full_scans"] += 1
                    self.unstable.clear()
                    self.znode, self.stale = None, False
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
            done_writes = self._ev >= len(ev_t)
            since = self.c["full_scans"] - (full_at_write if done_writes else 0)
            if since >= max_full_scans and (done_writes or sleep + s.scan_us_per_page == 0):
                break
        final = self.snapshot()
        rows.append({"t": self.t, **final})
        tl = pd.DataFrame(rows).drop_duplicates(subset=["t"], keep="last").reset_index(drop=True)
        done = n == 0 or settled >= settle_scans  # no pages: nothing to settle
        return KsmResult(final, tl, float(saved_hist[-1][0]), s, done)

    def _key(self) -> tuple:
        c = self.c
        return (c["pages_shared"], c["pages_sharing"], c["ksm_zero_pages"])


def emulate_ksm(
    history: PageHistory, settings: KsmSettings | None = None, thp: ThpBacking | None = None, **run_kw
) -> KsmResult:
    """Run the KSM emulator over ``history`` (see :class:`KsmEmulator.run`)."""
    return KsmEmulator(history, settings, thp).run(**run_kw)


# ====================================================================================== ESX
class EsxScanner:
    """The page-sharing scanner over a page history; call :meth:`run`."""

    def __init__(self, history: PageHistory, settings: ScannerSettings | None = None):
        self.h = history
        s = self.s = settings or ScannerSettings()
        n = history.pages
        mask = (1 << s.hash_bits) - 1
        self.hash = [int(x) & mask for x in history.content_hash.tolist()]
        self.tmask = (1 << s.hint_hash_bits) - 1
        self.nb = max(1, -(-n // s.pages_per_bucket))
        self.buckets: list[list[list]] = [[] for _ in range(self.nb)]
        self.cid = history.content.tolist()
        self.frame_of: list[list | None] = [None] * n  # shared frame mapping the page
        self.hint_of: list[list | None] = [None] * n  # the page's own hint frame
        self.ineligible = [False] * n
        self.rng = np.random.default_rng([s.seed, 0xE5C])
        nvm = len(history.vm_names)
        vm = history.vm
        self.vm_pages = [np.flatnonzero(vm == v) for v in range(nvm)]
        self.queue: list[list[int]] = [[] for _ in range(nvm)]
        self.passes = [0] * nvm
        self.credit = [0.0] * nvm
        self.c = {
            "pages_scanned": 0,
            "pages_hashed": 0,
            "bytes_compared": 0,
            "chain_links": 0,
            "false_matches": 0,
            "stale_hints": 0,
            "cow_breaks": 0,
            "shared_pages": 0,
            "reclaimed_pages": 0,
            "shared_frames": 0,
            "hint_frames": 0,
            "overflow_frames": 0,
        }
        self.t = 0.0
        self._ev = 0

    # frames are lists: [kind, hash-or-truncated-hash, page-or-content, refcount, bucket]
    def _unlink(self, f: list) -> None:
        self.buckets[f[4]].remove(f)

    def _drop_hint(self, p: int) -> None:
        f = self.hint_of[p]
        if f is not None:
            self._unlink(f)
            self.hint_of[p] = None
            self.c["hint_frames"] -= 1

    def _ref(self, f: list, d: int) -> None:
        cap = (1 << self.s.refcount_bits) - 1
        before = f[3]
        f[3] += d
        self.c["overflow_frames"] += (f[3] > cap) - (before > cap)

    def _map(self, p: int, f: list) -> None:
        self.frame_of[p] = f
        self._ref(f, 1)
        self.c["shared_pages"] += 1
        if f[3] >= 2:
            self.c["reclaimed_pages"] += 1

    def _write(self, p: int, new: int) -> None:
        f = self.frame_of[p]
        if f is not None:  # copy-on-write break: a private copy for p
            self.frame_of[p] = None
            self._ref(f, -1)
            self.c["shared_pages"] -= 1
            self.c["cow_breaks"] += 1
            if f[3] >= 1:
                self.c["reclaimed_pages"] -= 1
            else:
                self._unlink(f)
                self.c["shared_frames"] -= 1
        self.cid[p] = new
        self.ineligible[p] = False

    def _scan_page(self, p: int) -> None:
        """Hash page ``p`` and share it or leave a hint (paper §4.2)."""
        c = self.c
        c["pages_scanned"] += 1
        if self.frame_of[p] is not None or self.ineligible[p]:
            return
        self._drop_hint(p)
        cid = self.cid[p]
        hv = self.hash[cid]
        c["pages_hashed"] += 1
        b = hv % self.nb
        chain = self.buckets[b]
        tr = hv & self.tmask
        for f in list(chain):
            c["chain_links"] += 1
            if f[0] == SHARED:
                if f[1] != hv:
                    continue
                c["bytes_compared"] += PAGE_SIZE
                if f[2] == cid:
                    self._map(p, f)
                else:
                    self.ineligible[p] = True
                    c["false_matches"] += 1
                return
            if f[1] != tr:
                continue
            q = f[2]
            hq = self.hash[self.cid[q]]  # rehash the hinted page
            c["pages_hashed"] += 1
            if hq & self.tmask != tr or self.frame_of[q] is not None:
                self._drop_hint(q)  # the hinted page changed since: a stale hint
                c["stale_hints"] += 1
                continue
            if hq != hv:
                continue  # only the truncated hashes collide
            c["bytes_compared"] += PAGE_SIZE
            if self.cid[q] != cid:
                self.ineligible[p] = True
                c["false_matches"] += 1
                return
            self._drop_hint(q)
            nf = [SHARED, hv, cid, 0, b]
            chain.append(nf)
            c["shared_frames"] += 1
            self._map(q, nf)
            self._map(p, nf)
            return
        hf = [HINT, tr, p, 0, b]
        chain.append(hf)
        self.hint_of[p] = hf
        c["hint_frames"] += 1

    def share_before_swap(self, p: int) -> bool:
        """Scan page ``p`` now, outside the rate caps (§4.3); True if it is shared afterwards."""
        self._scan_page(p)
        return self.frame_of[p] is not None

    def table_bytes(self) -> int:
        c = self.c
        frames = c["shared_frames"] + c["hint_frames"]
        return frames * FRAME_BYTES + c["overflow_frames"] * self.s.overflow_entry_bytes + self.nb * self.s.bucket_bytes

    def snapshot(self) -> dict:
        out = dict(self.c)
        out["ineligible_pages"] = sum(self.ineligible)
        out["bytes_hashed"] = out["pages_hashed"] * PAGE_SIZE
        out["table_bytes"] = self.table_bytes()
        out["table_pct_of_memory"] = 100.0 * out["table_bytes"] / max(1, self.h.pages * PAGE_SIZE)
        out["min_passes"] = min(self.passes) if self.passes else 0
        return out

    def _next_page(self, v: int) -> int:
        q = self.queue[v]
        if not q:
            q.extend(self.rng.permutation(self.vm_pages[v]).tolist()[::-1])
        p = q.pop()
        if not q:
            self.passes[v] += 1
        return p

    def run(self, *, until_s: float | None = None, settle_passes: int = 1, max_s: float = 1e7) -> ScanResult:
        """Scan until settled or ``until_s``.

        Settled: after the last write every VM has completed ``settle_passes`` further passes
        (one pass finds all sharing of a static set). Timeline: one row per tick.
        """
        h, s = self.h, self.s
        ev_t, ev_p, ev_c = h.t.tolist(), h.page.tolist(), h.new_content.tolist()
        active = [v for v, pg in enumerate(self.vm_pages) if len(pg)]
        rows = [{"t": 0.0, **self.snapshot()}]
        hist = [(0.0, self.c["reclaimed_pages"])]
        goal = None
        per_vm = min(s.scan_rate_vm, s.scan_rate_total / max(1, len(active))) * s.tick_s
        while active:
            while self._ev < len(ev_t) and ev_t[self._ev] <= self.t:
                self._write(ev_p[self._ev], ev_c[self._ev])
                self._ev += 1
            if goal is None and self._ev >= len(ev_t):
                goal = [self.passes[v] + settle_passes + (1 if self.queue[v] else 0) for v in range(len(self.passes))]
            for v in active:
                self.credit[v] += per_vm
                k = int(self.credit[v])
                self.credit[v] -= k
                for _ in range(k):
                    self._scan_page(self._next_page(v))
            self.t += s.tick_s
            rows.append({"t": self.t, **self.snapshot()})
            if self.c["reclaimed_pages"] != hist[-1][1]:
                hist.append((self.t, self.c["reclaimed_pages"]))
            if goal is not None and all(self.passes[v] >= goal[v] for v in active):
                break
            if (until_s is not None and self.t >= until_s) or self.t >= max_s:
                break
        final = self.snapshot()
        return ScanResult(final, pd.DataFrame(rows), float(hist[-1][0]), s)


def emulate_scanner(history: PageHistory, settings: ScannerSettings | None = None, **run_kw) -> ScanResult:
    """Run the ESX page-sharing scanner over ``history`` (see :meth:`EsxScanner.run`)."""
    return EsxScanner(history, settings).run(**run_kw)
