"""Guest pages whose contents change over time: the input of the sharing scanners.

A :class:`PageHistory` is a set of guest pages (one per ``(vm, gpfn)``), the content each holds
at time 0, and a time-sorted list of writes ``(t, page, new content)``. Contents are dense ids
(``0..n_contents-1``) with one 64-bit hash each; two pages are identical iff their content ids
are equal, so a hash shared by two content ids is a *false match* (paper §4.3).

Build one from a page table (:meth:`PageHistory.from_pages`, static), from successive
snapshots of the same guests (:meth:`PageHistory.from_snapshots`, writes at snapshot times), from
a series of page tables on disk such as ``pagecore live --count N`` writes
(:func:`read_history`: each VM's reads in time order, a page whose content changed between
two reads written at the later read's time), or add a synthetic write trace
(:func:`with_random_writes`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from pagecore.errors import InputError
from pagecore.vocab import HOST_VIEW_COLUMNS, ksm_eligibility


@dataclass
class PageHistory:
    """Pages, their contents at t = 0 and later writes (see the module docstring).

    Attributes
    ----------
    vm : int64[n]
        VM index of each page (into ``vm_names``).
    gpfn : uint64[n]
        Guest frame number of each page.
    content : int64[n]
        Content id at t = 0.
    content_hash : uint64[n_contents]
        Hash of each content id.
    zero_content : int
        Content id of the all-zero page, -1 if none.
    t, page, new_content : float64[m], int64[m], int64[m]
        Writes, sorted by time: at ``t[i]`` page ``page[i]`` gets content ``new_content[i]``.
    """

    vm_names: list[str]
    vm: np.ndarray
    gpfn: np.ndarray
    content: np.ndarray
    content_hash: np.ndarray
    zero_content: int = -1
    t: np.ndarray | None = None
    page: np.ndarray | None = None
    new_content: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.content)
        if self.vm.shape != (n,) or self.gpfn.shape != (n,):
            raise ValueError("vm, gpfn and content must have one entry per page")
        if self.t is None:
            self.t = np.zeros(0, np.float64)
            self.page = np.zeros(0, np.int64)
            self.new_content = np.zeros(0, np.int64)
        if not (len(self.t) == len(self.page) == len(self.new_content)):
            raise ValueError("t, page and new_content must have equal length")
        if len(self.t) and np.any(np.diff(self.t) < 0):
            raise ValueError("writes must be sorted by time")

    def check_ids(self) -> None:
        """Raise ``ValueError`` unless every content id is in ``[0, n_contents)`` and every
        written page in ``[0, pages)`` (the scanners' kernels index arrays with them)."""
        nc, n = self.n_contents, self.pages
        for name, hi in (("content", nc), ("new_content", nc), ("page", n)):
            a = getattr(self, name)
            if len(a) and (int(a.min()) < 0 or int(a.max()) >= hi):
                raise ValueError(f"PageHistory.{name} must lie in [0, {hi}), got [{int(a.min())}, {int(a.max())}]")

    @property
    def pages(self) -> int:
        return len(self.content)

    @property
    def n_contents(self) -> int:
        return len(self.content_hash)

    @property
    def last_write_s(self) -> float:
        return float(self.t[-1]) if len(self.t) else 0.0

    def subset(self, keep) -> PageHistory:
        """Only the pages where ``keep`` is true (their writes too); content ids are unchanged."""
        keep = np.asarray(keep, np.bool_)
        if keep.shape != (self.pages,):
            raise ValueError(f"keep must have one flag per page ({self.pages}), got shape {keep.shape}")
        new_index = np.cumsum(keep) - 1
        ev = keep[self.page]
        return PageHistory(
            self.vm_names,
            self.vm[keep],
            self.gpfn[keep],
            self.content[keep],
            self.content_hash,
            self.zero_content,
            self.t[ev],
            new_index[self.page[ev]].astype(np.int64),
            self.new_content[ev],
        )

    @classmethod
    def from_pages(cls, hashes, zero, vm, vm_names, gpfn=None) -> PageHistory:
        """A static history (no writes) of one set of pages; equal hashes are equal contents."""
        hashes = np.asarray(hashes, np.uint64)
        zero = np.asarray(zero, bool)
        uniq, content = np.unique(hashes, return_inverse=True)
        zc = int(content[np.argmax(zero)]) if zero.any() else -1
        gpfn = np.arange(len(hashes), dtype=np.uint64) if gpfn is None else np.asarray(gpfn, np.uint64)
        return cls(list(vm_names), np.asarray(vm, np.int64), gpfn, content.astype(np.int64), uniq, zc)

    @classmethod
    def from_snapshots(cls, snapshots, times=None) -> PageHistory:
        """Successive snapshots of the same guests as a history.

        ``snapshots`` is a list of DataFrames (columns vm, gpfn, hash, zero); snapshot ``k``
        takes effect at ``times[k]`` (default ``k`` seconds... times[0] must be 0). A page
        missing from a later snapshot keeps its last content; pages are those of snapshot 0.
        """
        import pandas as pd

        if not snapshots:
            raise ValueError("need at least one snapshot")
        times = list(range(len(snapshots))) if times is None else list(times)
        if len(times) != len(snapshots) or times[0] != 0:
            raise ValueError("one time per snapshot, starting at 0")
        allh = np.concatenate([np.asarray(s["hash"], np.uint64) for s in snapshots])
        allz = np.concatenate([np.asarray(s["zero"], bool) for s in snapshots])
        uniq = np.unique(allh)
        zc = int(np.searchsorted(uniq, allh[np.argmax(allz)])) if allz.any() else -1
        s0 = snapshots[0]
        names = list(pd.unique(s0["vm"].astype(str)))
        key0 = pd.MultiIndex.from_arrays([s0["vm"].astype(str).to_numpy(), np.asarray(s0["gpfn"], np.uint64)])
        vm = pd.Index(names).get_indexer(s0["vm"].astype(str))
        content = np.searchsorted(uniq, np.asarray(s0["hash"], np.uint64)).astype(np.int64)
        cur = content.copy()
        ts, ps, cs = [], [], []
        for tk, snap in zip(times[1:], snapshots[1:], strict=True):
            key = pd.MultiIndex.from_arrays([snap["vm"].astype(str).to_numpy(), np.asarray(snap["gpfn"], np.uint64)])
            idx = key0.get_indexer(key)
            keep = idx >= 0
            idx = idx[keep]
            c = np.searchsorted(uniq, np.asarray(snap["hash"], np.uint64)[keep]).astype(np.int64)
            _record_changes(cur, idx, c, float(tk), ts, ps, cs)
        cat = np.concatenate
        return cls(
            names,
            vm.astype(np.int64),
            np.asarray(s0["gpfn"], np.uint64),
            content,
            uniq,
            zc,
            cat(ts) if ts else None,
            cat(ps).astype(np.int64) if ps else None,
            cat(cs).astype(np.int64) if cs else None,
        )


#: read times are kept to the microsecond (``info["read_times_s"]``): reads closer than this are
#: one read time (an --interval of 1e-7 s collapsed three reads into one time, and --lifetimes
#: then stopped with a traceback)
READ_TIME_RESOLUTION_S = 1e-6


def _host_eligible(path, n: int) -> np.ndarray:
    """Pages KSM can see in a live table: present in the host and not the host's zero page (see
    :func:`pagecore.experiments.analyze.host_view_mask`)."""
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["host_present", "host_zero_page"])
    if t.num_rows != n:
        raise InputError(path, f"{t.num_rows:,} host-view rows for {n:,} pages", hint="re-run `pagecore live`")
    present = t["host_present"].to_numpy(zero_copy_only=False).astype(bool)
    return present & ~t["host_zero_page"].to_numpy(zero_copy_only=False).astype(bool)


def read_history(paths, *, series: bool = False, interval: float | None = None, host_view: bool = True):
    """A :class:`PageHistory` from page tables on disk, and what it was built from.

    Parameters
    ----------
    paths : page tables (``pagecore hash`` or ``pagecore live``).
    series : bool
        ``False``: one set of pages (a static history). ``True``: the tables are successive
        reads of the same guests (``pagecore live --count N`` writes ``<guest>.NNNN.parquet``).
        Each VM's reads are put in time order; every VM must be in every read, with the same
        guest frames each time. The first read of each VM is its content at t = 0; a page whose
        content differs from the previous read is written at the later read's time.
    interval : float, optional
        Seconds between successive reads. Default: the read times recorded in the tables
        (``taken_at``, written by ``pagecore live``); needed for tables without them.
    host_view : bool
        Where every table has the host-view columns (:data:`pagecore.vocab.HOST_VIEW_COLUMNS`),
        keep only the pages KSM can see (present, not the host's zero page; in a series: in
        any read).

    Returns
    -------
    history : PageHistory
    info : dict
        ``ksm_eligibility`` (``all`` or ``host_view``), ``pages_not_eligible``, ``reads``,
        ``read_times_s`` (per read, seconds after the first), ``times_from`` (``taken_at``,
        ``interval`` or ``static``), ``writes`` and ``zero_unknown`` (the tables that do not mark
        zero pages, ``zero_known: false``: their zero pages are counted as ordinary contents).

    Raises
    ------
    InputError
        One line: tables that cannot be compared (hash algorithm, key, width, page size;
        :func:`pagecore.pages.tables.check_comparable`), a series whose reads do not hold the
        same VMs or frames, reads of one VM at the same time, mixed recorded and missing times.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    from pagecore.pages.tables import check_comparable, read_page_tables

    paths = list(paths)
    if not paths:
        raise InputError(None, "no page tables given")
    if interval is not None and not interval >= READ_TIME_RESOLUTION_S:  # NaN too
        raise InputError(
            None,
            f"--interval must be at least {READ_TIME_RESOLUTION_S:g} s (read times are kept to the microsecond), "
            f"got {interval}",
        )
    metas = check_comparable(paths)
    use_host = host_view and all(set(HOST_VIEW_COLUMNS) <= set(pq.ParquetFile(p).schema_arrow.names) for p in paths)
    eligibility = ksm_eligibility(HOST_VIEW_COLUMNS if use_host else ())
    cols = ["vm", "gpfn", "hash", "zero"]
    if not series:
        df = read_page_tables(paths, columns=cols).to_pandas()
        vm, names = df["vm"].astype(str).factorize()
        h = PageHistory.from_pages(df["hash"].to_numpy(), df["zero"].to_numpy(), vm, list(names), df["gpfn"].to_numpy())
        keep = None
        if use_host:
            sizes = [pq.ParquetFile(p).metadata.num_rows for p in paths]
            keep = np.concatenate([_host_eligible(p, n) for p, n in zip(paths, sizes, strict=True)])
        info = {"reads": 1, "read_times_s": [0.0], "times_from": "static"}
    else:
        frames = [read_page_tables([p], columns=cols).to_pandas() for p in paths]
        taken = [m.get("taken_at") for m in metas]
        if interval is None and any(t is None for t in taken):
            i = next(i for i, t in enumerate(taken) if t is None)
            raise InputError(
                paths[i], "no read time recorded (taken_at)", hint="pass --interval SECONDS between successive reads"
            )
        reads: dict[str, list[tuple[float, int]]] = {}
        for i, f in enumerate(frames):
            for v in pd.unique(f["vm"].astype(str)):
                k = len(reads.setdefault(v, []))
                reads[v].append((float(taken[i]) if interval is None else k * float(interval), i))
        counts = {v: len(r) for v, r in reads.items()}
        if len(set(counts.values())) > 1:
            lo, hi = min(counts, key=counts.get), max(counts, key=counts.get)
            raise InputError(
                paths[reads[lo][-1][1]],
                f"VM {lo!r} has {counts[lo]} reads, VM {hi!r} has {counts[hi]}: a series needs every VM in every read",
                hint="give the same number of `pagecore live --count N` reads of each guest",
            )
        t0 = min(t for r in reads.values() for t, _ in r)
        first, later = [], []
        for v, r in reads.items():
            r.sort()
            for (ta, ia), (tb, ib) in itertools.pairwise(r):
                if round(ta - t0, 6) == round(tb - t0, 6):  # one read time, as info's read times round them
                    raise InputError(paths[ib], f"VM {v!r} is read twice at the same time (also in {paths[ia]})")
            pick = [(t - t0, frames[i][frames[i]["vm"].astype(str) == v], i) for t, i in r]
            first.append(pick[0])
            later.extend((t, sub, i, v, pick[0][2]) for t, sub, i in pick[1:])
        s0 = pd.concat([f for _, f, _ in first], ignore_index=True)
        allh = np.concatenate([s0["hash"].to_numpy(np.uint64)] + [f["hash"].to_numpy(np.uint64) for _, f, *_ in later])
        allz = np.concatenate([s0["zero"].to_numpy(bool)] + [f["zero"].to_numpy(bool) for _, f, *_ in later])
        uniq = np.unique(allh)
        zc = int(np.searchsorted(uniq, allh[np.argmax(allz)])) if allz.any() else -1
        vm_str = s0["vm"].astype(str).to_numpy()
        names = list(dict.fromkeys(vm_str))
        key0 = pd.MultiIndex.from_arrays([vm_str, s0["gpfn"].to_numpy(np.uint64)])
        content = np.searchsorted(uniq, s0["hash"].to_numpy(np.uint64)).astype(np.int64)
        cur = content.copy()
        ts, ps, cs = [], [], []
        for t, f, i, v, i0 in sorted(later, key=lambda x: x[0]):
            idx = key0.get_indexer(pd.MultiIndex.from_arrays([f["vm"].astype(str).to_numpy(), f["gpfn"].to_numpy()]))
            if (idx < 0).any() or len(idx) != int((vm_str == v).sum()):
                raise InputError(
                    paths[i],
                    f"VM {v!r}: its guest frames differ from its first read ({paths[i0]})",
                    hint="a series is successive reads of the same guests (pagecore live --count N)",
                )
            c = np.searchsorted(uniq, f["hash"].to_numpy(np.uint64)).astype(np.int64)
            _record_changes(cur, idx, c, float(t), ts, ps, cs)
        cat = np.concatenate
        h = PageHistory(
            names,
            pd.Index(names).get_indexer(vm_str).astype(np.int64),
            s0["gpfn"].to_numpy(np.uint64),
            content,
            uniq,
            zc,
            cat(ts) if ts else None,
            cat(ps).astype(np.int64) if ps else None,
            cat(cs).astype(np.int64) if cs else None,
        )
        keep = None
        if use_host:
            keep = np.zeros(h.pages, bool)
            for v, r in reads.items():
                for _, i in r:
                    f = frames[i]
                    fvm = f["vm"].astype(str).to_numpy()
                    mine = fvm == v
                    el = _host_eligible(paths[i], len(f))[mine]
                    idx = key0.get_indexer(pd.MultiIndex.from_arrays([fvm[mine], f["gpfn"].to_numpy()[mine]]))
                    keep[idx[el]] = True
        times = sorted({round(t, 6) for t, *_ in later} | {round(t, 6) for t, _, _ in first})
        info = {
            "reads": next(iter(counts.values())),
            "read_times_s": times,
            "times_from": "taken_at" if interval is None else "interval",
        }
    info["ksm_eligibility"] = eligibility
    # imported traces (Memory Buddies) do not mark zero pages: theirs count as ordinary contents
    info["zero_unknown"] = [str(p) for p, m in zip(paths, metas, strict=True) if m.get("zero_known") is False]
    info["pages_not_eligible"] = 0 if keep is None else int((~keep).sum())
    if keep is not None:
        h = h.subset(keep)
    info["pages"] = h.pages
    info["writes"] = len(h.t)
    return h, info


def _record_changes(cur, idx, c, t: float, ts: list, ps: list, cs: list) -> None:
    """Pages ``idx`` read with contents ``c`` at time ``t``: those whose content differs from
    ``cur`` become writes (appended to ``ts``/``ps``/``cs``) and ``cur`` is updated."""
    ch = cur[idx] != c
    ps.append(idx[ch])
    cs.append(c[ch])
    ts.append(np.full(int(ch.sum()), t))
    cur[idx[ch]] = c[ch]


def with_random_writes(
    h: PageHistory,
    *,
    fraction: float,
    mean_interval_s: float,
    duration_s: float,
    zero_write_fraction: float = 0.0,
    seed: int = 0,
) -> PageHistory:
    """Add a synthetic write trace: a random ``fraction`` of the pages is rewritten as a Poisson
    process of mean interval ``mean_interval_s`` until ``duration_s``; each write gives the page a
    fresh, unique content (so a written page stops being a duplicate), except that a
    ``zero_write_fraction`` of the writes zero the page (a guest freeing and zeroing memory),
    which makes it a duplicate of the other zero pages."""
    if not 0.0 <= fraction <= 1.0 or mean_interval_s <= 0 or duration_s < 0:
        raise ValueError("fraction in [0, 1], mean_interval_s > 0, duration_s >= 0")
    if not 0.0 <= zero_write_fraction <= 1.0:
        raise ValueError(f"zero_write_fraction must be in [0, 1], got {zero_write_fraction}")
    rng = np.random.default_rng([seed, 0x5CA9])
    hot = np.flatnonzero(rng.random(h.pages) < fraction)
    ts, ps = [], []
    for p in hot:
        k = rng.poisson(duration_s / mean_interval_s)
        ts.append(np.sort(rng.uniform(0.0, duration_s, k)))
        ps.append(np.full(k, p, np.int64))
    t = np.concatenate([h.t, *ts]) if ts else h.t
    page = np.concatenate([h.page, *ps]) if ps else h.page
    m_new = len(t) - len(h.t)
    fresh = h.n_contents + np.arange(m_new, dtype=np.int64)
    new_hash = rng.integers(0, 2**63, m_new, dtype=np.int64).astype(np.uint64) | np.uint64(1 << 63)
    zc = h.zero_content
    chash = np.concatenate([h.content_hash, new_hash])
    if zero_write_fraction > 0 and zc < 0:  # no zero page yet: add its content id
        zc = len(chash)
        chash = np.concatenate([chash, np.zeros(1, np.uint64)])
    zw = rng.random(m_new) < zero_write_fraction
    fresh[zw] = zc
    nc = np.concatenate([h.new_content, fresh])
    order = np.argsort(t, kind="stable")
    return PageHistory(
        h.vm_names,
        h.vm,
        h.gpfn,
        h.content,
        chash,
        zc,
        t[order],
        page[order],
        nc[order],
    )
