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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pagecore import PAGE_SIZE
from pagecore.sharing.pagehistory import PageHistory

FRAME_BYTES = 16
HINT, SHARED = 0, 1


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
        if self.scan_rate_vm <= 0 or self.scan_rate_total <= 0:
            raise ValueError("scan rates must be > 0 pages/s")
        if self.tick_s <= 0:
            raise ValueError(f"tick_s must be > 0, got {self.tick_s}")
        if not 1 <= self.hint_hash_bits <= self.hash_bits <= 64:
            raise ValueError("need 1 <= hint_hash_bits <= hash_bits <= 64")
        if self.pages_per_bucket < 1 or self.refcount_bits < 1:
            raise ValueError("pages_per_bucket and refcount_bits must be >= 1")


@dataclass
class ScanResult:
    """Final state, timeline (one row per tick) and time to converge of a scanner run."""

    final: dict
    timeline: pd.DataFrame
    seconds_to_converge: float
    settings: ScannerSettings

    def to_dict(self) -> dict:
        return {**self.final, "seconds_to_converge": self.seconds_to_converge, "settings": asdict(self.settings)}


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
