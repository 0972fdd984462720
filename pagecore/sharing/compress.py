"""What compressing memory managers keep of a set of pages, counted from per-page sizes.

Inputs are per-page facts from :mod:`pagecore.pages.compress` (compressed size per algorithm,
zero and same-filled flags, content hash, VM). Each model counts what one mechanism would
store after these pages were handed to it, with every threshold a named parameter whose
source is cited beside it.

zram (:func:`zram_mm_stat`)
    What ``/sys/block/zramN/mm_stat`` shows after every page is written once to a fresh
    device (Linux 6.18, drivers/block/zram/zram_drv.c ``zram_write_page``,
    Documentation/admin-guide/blockdev/zram.rst): same-filled pages (one repeated
    ``unsigned long``) are flagged and take no memory (``same_pages``); a page whose
    compressed length is ``>= huge_class_size`` (zsmalloc's first huge class minus
    ``ZS_HANDLE_SIZE - 1``) is stored uncompressed as ``PAGE_SIZE`` bytes (``huge_pages``);
    every other page is a zsmalloc object of its compressed length. ``compr_data_size`` sums
    the stored lengths; ``mem_used_total`` is the pages of all zspages zsmalloc allocated.
zsmalloc (:func:`zsmalloc_classes`, Linux 6.3+ mm/zsmalloc.c, CONFIG_ZSMALLOC_CHAIN_SIZE = 8;
checked against this machine's 6.18 kernel: ``mem_used_total`` exact for lz4, lzo and lzo-rle)
    ``zs_malloc`` adds ``ZS_HANDLE_SIZE`` (8) to the length and picks class
    ``ceil((len + 8 - 32) / 16)`` (``ZS_MIN_ALLOC_SIZE`` 32, ``ZS_SIZE_CLASS_DELTA`` 16,
    capped at the last class of ``PAGE_SIZE``). A class of size s uses zspages of
    ``calculate_zspage_chain_size(s)`` pages: 1 if s is a power of two, else the chain of 1..8
    pages with the least ``(i·4096) mod s`` waste (first minimum); it holds
    ``chain·4096 // s`` objects. Adjacent classes with the same (pages, objects) are merged into
    the larger. Written in order to a fresh pool, a class with k objects uses
    ``ceil(k / objs) · pages`` pages (no frees, so no fragmentation).
zswap (:func:`zswap_pool`)
    Linux mm/zswap.c (6.x): a page swapped out is compressed and stored in a zsmalloc pool;
    ``zswap_reject_compress_poor`` counts pages that do not compress to at most
    ``PAGE_SIZE`` (compression fails or ``zs_malloc`` refuses a length > ``PAGE_SIZE``,
    Linux 5.x-6.x: ``incompressible="reject"``, the default). The 2025 patch "mm: zswap: store
    incompressible page as-is" stores pages of length >= ``PAGE_SIZE`` uncompressed when
    writeback is enabled (``incompressible="store"``; which release first ships it is
    UNCONFIRMED here — this machine's 6.18 kernel was not checked, zswap being off).
    All-zero pages are kept out of zswap by the swap layer's zero map (Linux 6.12+,
    ``zero_pages="swap"``); before 6.12 zswap stored same-filled pages as a word
    (``zero_pages="same_filled"``). The pool limit is ``max_pool_percent`` (default
    20 %, Documentation/admin-guide/mm/zswap.rst) of host memory.
ESXi memory compression (:func:`esxi_compression`)
    vSphere Resource Management guide, "Memory Compression": when a page would be swapped,
    ESXi compresses it; a page that compresses to 2 KB or less is kept in the VM's
    compression cache, otherwise it is swapped. Compressed pages are stored in fixed slots
    of half or a quarter of a page (``ESXI_SLOTS``; the half/quarter layout follows VMware's
    "Understanding Memory Resource Management in VMware vSphere" white paper). The cache is
    capped at ``Mem.MemZipMaxPct`` (default 10 %) of the VM's memory.
Reclamation ladder (:func:`reclamation_ladder`)
    Per VM set, in the order a host applies them: zero pages → intra-VM sharing → inter-VM
    sharing (the part salting removes) → compression of what remains → what remains for
    ballooning or swap. Sharing steps come from :func:`pagecore.sharing.count_sharing`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from pagecore import PAGE_SIZE
from pagecore.sharing.counts import compact_vm_index, count_sharing
from pagecore.sharing.salting import salt_domains

# ------------------------------------------------------------------ zsmalloc (Linux 6.18)
#: sizeof(unsigned long) on 64-bit: the handle zs_malloc adds to every object (mm/zsmalloc.c).
ZS_HANDLE_SIZE = 8
#: MAX(32, chain << PAGE_SHIFT >> OBJ_INDEX_BITS) = 32 on x86-64 (mm/zsmalloc.c ZS_MIN_ALLOC_SIZE).
ZS_MIN_ALLOC_SIZE = 32
#: Class spacing (mm/zsmalloc.c ZS_SIZE_CLASS_DELTA: PAGE_SIZE >> CLASS_BITS(8) = 16 with 4 KiB
#: pages; newer trees fix it at 16 for every page size).
ZS_SIZE_CLASS_DELTA = 16
#: Pages per zspage at most (CONFIG_ZSMALLOC_CHAIN_SIZE, default 8 since Linux 6.3; 4 before).
ZS_CHAIN_SIZE = 8


@dataclass(frozen=True)
class ZsClasses:
    """zsmalloc's size classes for one configuration.

    ``size``, ``pages``, ``objs``: int64[nclasses] per class index (merged classes repeat the
    values of the class they merged into); ``owner``: the index whose counters a class shares;
    ``huge_class_size``: zram stores a page uncompressed when its length is at least this.
    """

    size: np.ndarray
    pages: np.ndarray
    objs: np.ndarray
    owner: np.ndarray
    huge_class_size: int
    page_size: int
    handle_size: int
    min_alloc: int
    delta: int

    def index(self, length: np.ndarray) -> np.ndarray:
        """Class index of objects of ``length`` bytes (before the handle is added)."""
        s = np.asarray(length, np.int64) + self.handle_size
        idx = np.where(s > self.min_alloc, -((self.min_alloc - s) // self.delta), 0)
        return np.minimum(idx, len(self.size) - 1)


def chain_size(class_size: int, page_size: int = PAGE_SIZE, max_chain: int = ZS_CHAIN_SIZE) -> int:
    """``calculate_zspage_chain_size`` (Linux 6.3+ mm/zsmalloc.c): pages per zspage."""
    if class_size & (class_size - 1) == 0:
        return 1
    best, waste = 1, None
    for i in range(1, max_chain + 1):
        w = (i * page_size) % class_size
        if waste is None or w < waste:
            best, waste = i, w
    return best


@functools.lru_cache(maxsize=16)
def zsmalloc_classes(
    page_size: int = PAGE_SIZE,
    max_chain: int = ZS_CHAIN_SIZE,
    handle_size: int = ZS_HANDLE_SIZE,
    min_alloc: int = ZS_MIN_ALLOC_SIZE,
    delta: int = ZS_SIZE_CLASS_DELTA,
) -> ZsClasses:
    """Build zsmalloc's class table as ``zs_create_pool`` does (largest class first).

    Cached per configuration; the arrays of the result are shared and read-only."""
    n = -(-(page_size - min_alloc) // delta) + 1
    size = np.zeros(n, np.int64)
    pages = np.zeros(n, np.int64)
    objs = np.zeros(n, np.int64)
    owner = np.zeros(n, np.int64)
    huge = 0
    prev = -1
    for i in range(n - 1, -1, -1):
        s = min(min_alloc + i * delta, page_size)
        ppz = chain_size(s, page_size, max_chain)
        opz = ppz * page_size // s
        if ppz != 1 and opz != 1 and not huge:
            # first class (from the top) that is not huge: zram's huge_class_size
            huge = s - (handle_size - 1)
        if prev >= 0 and pages[prev] == ppz and objs[prev] == opz:
            size[i], pages[i], objs[i], owner[i] = size[prev], ppz, opz, prev
            continue
        size[i], pages[i], objs[i], owner[i] = s, ppz, opz, i
        prev = i
    for a in (size, pages, objs, owner):
        a.flags.writeable = False  # the result is cached and shared
    return ZsClasses(size, pages, objs, owner, int(huge), page_size, handle_size, min_alloc, delta)


def zsmalloc_pages(lengths: np.ndarray, classes: ZsClasses | None = None) -> int:
    """Pages a fresh zsmalloc pool allocates to hold objects of ``lengths`` bytes (no frees)."""
    classes = classes or zsmalloc_classes()
    lengths = np.asarray(lengths, np.int64)
    if lengths.size == 0:
        return 0
    owner = classes.owner[classes.index(lengths)]
    counts = np.bincount(owner, minlength=len(classes.size))
    used = np.flatnonzero(counts)
    return int((-(-counts[used] // classes.objs[used]) * classes.pages[used]).sum())


# ------------------------------------------------------------------ zram
def zram_mm_stat(
    csize: np.ndarray, same: np.ndarray, classes: ZsClasses | None = None, page_size: int = PAGE_SIZE
) -> dict:
    """``mm_stat`` of a fresh zram device after each page is written once.

    Parameters
    ----------
    csize : int[n]
        Compressed length of each page under the device's algorithm.
    same : bool[n]
        zram's same-filled test (:func:`pagecore.pages.compress.same_filled`).

    Returns
    -------
    dict
        ``orig_data_size``, ``compr_data_size``, ``mem_used_total`` (bytes), ``same_pages``,
        ``huge_pages``, ``pages_stored``, ``huge_class_size``.
    """
    classes = classes or zsmalloc_classes(page_size)
    csize = np.asarray(csize, np.int64)
    same = np.asarray(same, np.bool_)
    stored = csize[~same]
    huge = stored >= classes.huge_class_size
    lengths = np.where(huge, page_size, stored)
    return {
        "orig_data_size": int(csize.size) * page_size,
        "compr_data_size": int(lengths.sum()),
        "mem_used_total": zsmalloc_pages(lengths, classes) * page_size,
        "same_pages": int(same.sum()),
        "huge_pages": int(huge.sum()),
        "pages_stored": int(csize.size),
        "huge_class_size": classes.huge_class_size,
    }


# ------------------------------------------------------------------ zswap
#: Documentation/admin-guide/mm/zswap.rst: max_pool_percent default 20 (% of RAM).
ZSWAP_MAX_POOL_PERCENT = 20


def zswap_pool(
    csize: np.ndarray,
    zero: np.ndarray,
    same: np.ndarray,
    *,
    host_bytes: int | None = None,
    max_pool_percent: float = ZSWAP_MAX_POOL_PERCENT,
    incompressible: str = "reject",
    zero_pages: str = "swap",
    classes: ZsClasses | None = None,
    page_size: int = PAGE_SIZE,
) -> dict:
    """zswap's verdict on every page if all were swapped out once, in order.

    Parameters
    ----------
    incompressible : {"reject", "store"}
        ``"reject"``: a page whose compressed length exceeds ``PAGE_SIZE`` is rejected
        (``reject_compress_poor``: the compressor fails or ``zs_malloc`` returns -ENOSPC for
        len > ZS_MAX_ALLOC_SIZE). ``"store"``: pages with length ≥ ``PAGE_SIZE`` are stored
        uncompressed (the 2025 "store incompressible page as-is" patch, writeback enabled).
    zero_pages : {"swap", "same_filled", "none"}
        ``"swap"``: all-zero pages never reach zswap (swap zeromap, Linux 6.12+);
        ``"same_filled"``: same-filled pages are kept as one word (Linux 4.14-6.11);
        ``"none"``: every page is compressed.
    host_bytes : int, optional
        Host RAM; with it, pages beyond ``max_pool_percent`` of it are rejected (pool limit).

    Returns
    -------
    dict
        ``pages``, ``accepted`` (compressed into the pool), ``same_filled``/``zero`` (kept without
        pool memory), ``rejected_compress_poor``, ``rejected_pool_limit``, ``pool_bytes``
        (zsmalloc pages × page size), ``stored_bytes`` (sum of stored lengths).
    """
    if incompressible not in ("reject", "store"):
        raise ValueError(f"incompressible must be 'reject' or 'store', got {incompressible!r}")
    if zero_pages not in ("swap", "same_filled", "none"):
        raise ValueError(f"zero_pages must be 'swap', 'same_filled' or 'none', got {zero_pages!r}")
    classes = classes or zsmalloc_classes(page_size)
    csize = np.asarray(csize, np.int64)
    zero = np.asarray(zero, np.bool_)
    same = np.asarray(same, np.bool_)
    if zero_pages == "swap":
        free = zero
    elif zero_pages == "same_filled":
        free = same
    else:
        free = np.zeros_like(zero)
    cand = csize[~free]
    if incompressible == "reject":
        poor = cand > page_size
        lengths = cand[~poor]
    else:
        poor = np.zeros(cand.shape, np.bool_)
        lengths = np.where(cand >= page_size, page_size, cand)
    limit_rej = 0
    if host_bytes is not None:
        cap = math.floor(host_bytes * max_pool_percent / 100)
        # the pool grows object by object; count how many fit (class-rounded, in order)
        per_obj = _object_cost(lengths, classes) if lengths.size else np.zeros(0)
        fits = np.cumsum(per_obj) <= cap
        limit_rej = int((~fits).sum())
        lengths = lengths[fits]
    return {
        "pages": int(csize.size),
        "zero_or_same_filled": int(free.sum()),
        "accepted": int(lengths.size),
        "rejected_compress_poor": int(poor.sum()),
        "rejected_pool_limit": limit_rej,
        "stored_bytes": int(lengths.sum()),
        "pool_bytes": zsmalloc_pages(lengths, classes) * page_size,
        "incompressible": incompressible,
        "zero_pages": zero_pages,
    }


def _object_cost(lengths: np.ndarray, classes: ZsClasses) -> np.ndarray:
    """Bytes of zspage memory per object (class pages / objects), for pool-limit accounting."""
    idx = classes.owner[classes.index(lengths)]
    return classes.pages[idx] * classes.page_size / classes.objs[idx]


# ------------------------------------------------------------------ ESXi
#: vSphere Resource Management: a page is kept compressed only if it compresses to <= 2 KB.
ESXI_MAX_COMPRESSED = 2048
#: Slot sizes a compressed page occupies (half and quarter page; VMware vSphere memory
#: management white paper); a page goes to the smallest slot that holds it.
ESXI_SLOTS = (1024, 2048)
#: Mem.MemZipMaxPct default: the compression cache is at most 10 % of the VM's memory.
ESXI_MEMZIP_MAX_PCT = 10.0


def esxi_compression(
    csize: np.ndarray,
    vm_bytes: int,
    *,
    max_pct: float = ESXI_MEMZIP_MAX_PCT,
    max_compressed: int = ESXI_MAX_COMPRESSED,
    slots: tuple[int, ...] = ESXI_SLOTS,
    page_size: int = PAGE_SIZE,
) -> dict:
    """ESXi's memory compression of pages chosen for swapping, in order, for one VM.

    Each page that compresses to ``<= max_compressed`` bytes takes the smallest slot of
    ``slots`` that holds it, while the cache (slot bytes) stays within ``max_pct`` % of
    ``vm_bytes``; other pages are swapped.

    Returns
    -------
    dict
        ``pages``, ``compressed``, ``swapped`` (of which ``swapped_cache_full``),
        ``slots_<size>``, ``cache_bytes``, ``saved_bytes`` (page bytes minus cache bytes of the
        compressed pages), ``cache_limit_bytes``.
    """
    csize = np.asarray(csize, np.int64)
    slots = tuple(sorted(slots))
    slot = np.full(csize.shape, 0, np.int64)
    for s in reversed(slots):
        slot[csize <= s] = s
    ok = (csize <= max_compressed) & (slot > 0)
    cap = math.floor(vm_bytes * max_pct / 100)
    cost = np.where(ok, slot, 0)
    fits = ok & (np.cumsum(cost) <= cap)
    out = {
        "pages": int(csize.size),
        "compressed": int(fits.sum()),
        "swapped": int(csize.size - fits.sum()),
        "swapped_cache_full": int((ok & ~fits).sum()),
        "cache_bytes": int(slot[fits].sum()),
        "cache_limit_bytes": cap,
    }
    for s in slots:
        out[f"slots_{s}"] = int((fits & (slot == s)).sum())
    out["saved_bytes"] = out["compressed"] * page_size - out["cache_bytes"]
    return out


# ------------------------------------------------------------------ ladder
def vm_codes_sorted(vm) -> tuple[np.ndarray, list[str]]:
    """(code int64[n], names) of a VM column, names sorted, without converting every row to a
    string when the column is categorical (as :func:`pagecore.pages.compress.page_sizes` makes it)."""
    import pandas as pd

    if isinstance(vm.dtype, pd.CategoricalDtype):
        return sorted_vm_codes(vm.cat.codes.to_numpy(np.int64), [str(c) for c in vm.cat.categories])
    codes, names = pd.factorize(vm.astype(str), sort=True)
    return codes.astype(np.int64), list(names)


def sorted_vm_codes(codes: np.ndarray, names) -> tuple[np.ndarray, list[str]]:
    """:func:`vm_codes_sorted` for a VM column given as ``codes`` (int[n]) into ``names``:
    the codes renumbered so that the names are sorted and only the names that occur remain
    (as ``pandas.factorize(..., sort=True)`` of the strings gives them)."""
    cats = [str(c) for c in names]
    codes = np.asarray(codes, np.int64)
    if codes.size and (codes < 0).any():
        raise ValueError("the vm column has missing values")
    names = sorted(set(cats))
    if not cats:
        return codes, names
    rank = np.array([names.index(c) for c in cats], np.int64)
    if not (len(names) == len(cats) and (rank == np.arange(len(cats))).all()):
        codes = rank[codes]
    if len(names) == 1:  # one name: it occurs if any row does
        return codes, names if codes.size else []
    used = np.flatnonzero(np.bincount(codes, minlength=len(names)))  # as pd.factorize: only names that occur
    if len(used) < len(names):
        remap = np.full(len(names), -1, np.int64)
        remap[used] = np.arange(len(used))
        codes, names = remap[codes], [names[i] for i in used]
    return codes, names


def _first_per_domain(hashes: np.ndarray, dom: np.ndarray, sel: np.ndarray, one_domain: bool) -> np.ndarray:
    """Indices (ascending) of the first page of each (domain, hash) among the pages ``sel``."""
    from pagecore.pages.compress import ContentTable

    idx = np.flatnonzero(sel)
    if one_domain:
        return idx[ContentTable(2 * len(idx)).claim(hashes[idx])[1]]
    firsts = []
    for d in np.unique(dom[idx]):
        part = idx[dom[idx] == d]
        firsts.append(part[ContentTable(2 * len(part)).claim(hashes[part])[1]])
    return np.sort(np.concatenate(firsts)) if firsts else idx[:0]


def reclamation_ladder(frame, algorithm: str, *, compression: str = "esxi", **options):
    """What each technique wins back, applied in order to one set of VMs.

    Steps (pages saved at each, and pages still resident after it):

    1. ``zero pages``: every all-zero page maps to one shared zero page (saves zeros − 1), one
       per sharing domain under salting (``salting removes`` includes the zero pages so lost).
    2. ``intra-VM sharing``: copies of a non-zero content within one VM share one page.
    3. ``inter-VM sharing``: contents also present in other VMs share across VMs; under
       ``Mem.ShareForceSalting = salting`` (:mod:`.salting`) only VMs with equal salt do, and
       the row ``salting removes`` gives the inter-VM saving lost.
    4. ``compression``: of the pages left (one per content per sharing domain, plus VMs'
       unshared pages), those ESXi would keep compressed (``compression="esxi"``, per VM with
       the cache cap of ``max_pct`` % of the VM's memory) or zram would store
       (``compression="zram"``: saves page bytes minus zsmalloc memory).
    5. ``remains``: what is left for ballooning or host swapping.

    Parameters
    ----------
    frame : pandas.DataFrame
        :class:`pagecore.pages.compress.PageSizes` ``.frame`` (vm, hash, zero, same_filled,
        ``csize_<algorithm>``).
    options
        ``vm_pages``, ``salting``, ``salts``, ``max_pct``, ``page_size``, ``as_records``: as
        :func:`ladder_from_arrays`, which does the work on the frame's columns.

    Returns
    -------
    pandas.DataFrame
        Columns ``step``, ``saved_pages``, ``resident_pages``, ``saved_mb``, ``resident_mb``
        (with ``as_records``: the same rows as a list of dicts, without building a frame).
    """
    col = f"csize_{algorithm}"
    vm_codes, vm_names = vm_codes_sorted(frame["vm"])
    return ladder_from_arrays(
        vm_codes,
        vm_names,
        frame["hash"].to_numpy(np.uint64),
        frame["zero"].to_numpy(np.bool_),
        frame[col].to_numpy(np.int64),
        frame["same_filled"].to_numpy(np.bool_) if compression == "zram" else None,
        algorithm=algorithm,
        compression=compression,
        **options,
    )


def ladder_from_arrays(
    vm_codes: np.ndarray,
    vm_names: list[str],
    hashes: np.ndarray,
    zero: np.ndarray,
    sizes: np.ndarray,
    same: np.ndarray | None = None,
    *,
    algorithm: str,
    vm_pages: dict | None = None,
    salting: int = 0,
    salts: dict | None = None,
    compression: str = "esxi",
    max_pct: float = ESXI_MEMZIP_MAX_PCT,
    page_size: int = PAGE_SIZE,
    as_records: bool = False,
):
    """:func:`reclamation_ladder` on the frame's columns as arrays: ``vm_codes``/``vm_names``
    as :func:`vm_codes_sorted` (or :func:`sorted_vm_codes`) returns them, the page hashes, zero
    flags, compressed sizes under ``algorithm`` and (for ``compression="zram"``) same-filled
    flags."""
    import pandas as pd

    vm_codes = np.asarray(vm_codes, np.int64)
    hashes = np.asarray(hashes, np.uint64)
    zero = np.asarray(zero, np.bool_)
    total = len(hashes)
    nz = ~zero
    rows = []
    dom = salt_domains(vm_names, salting, salts)[vm_codes]
    one_domain = dom.size == 0 or bool((dom == dom[0]).all())
    # zero pages: one shared zero page per sharing domain (as `share --salting` and the esxi
    # policy of `host` count them); what salting takes of it is in "salting removes"
    n_zero = int(zero.sum())
    zero_free = max(n_zero - 1, 0)
    zero_saved = n_zero - int(np.unique(dom[zero]).size)
    rows.append(("zero pages", zero_saved))
    # sharing among non-zero pages: within VMs only, then across (salted) domains
    if nz.any():
        h_nz, z_nz = hashes[nz], zero[nz]
        v_nz = compact_vm_index(vm_codes[nz], len(vm_names))  # share's dtype: one kernel signature
        c_all = count_sharing(h_nz, z_nz, v_nz, vm_names, top_n=0).to_dict()
        intra = c_all["intra_vm_saved_pages"]
        inter_free = c_all["inter_vm_saved_pages"]
        if one_domain:  # one sharing domain: the salted count is the unsalted one
            inter = inter_free
        else:
            c_salt = count_sharing(h_nz, z_nz, v_nz, vm_names, salt=dom[nz], top_n=0)
            inter = c_salt.to_dict()["inter_vm_saved_pages"]
    else:
        intra = inter_free = inter = 0
    rows.append(("intra-VM sharing", intra))
    rows.append((f"inter-VM sharing (salting {salting})", inter))
    # one resident page per (domain, content) among non-zero pages: the first seen
    idx_nz = _first_per_domain(hashes, dom, nz, one_domain)
    sizes = np.asarray(sizes, np.int64)[idx_nz]
    if compression == "esxi":
        saved_c = 0
        vm_counts = np.bincount(vm_codes, minlength=len(vm_names))
        vm_res = vm_codes[idx_nz]
        for v, name in enumerate(vm_names):
            sel = vm_res == v
            vb = (vm_pages or {}).get(name, int(vm_counts[v])) * page_size
            r = esxi_compression(sizes[sel], vb, max_pct=max_pct, page_size=page_size)
            saved_c += r["saved_bytes"]
    elif compression == "zram":
        if same is None:
            raise ValueError("compression='zram' needs the same-filled flags")
        st = zram_mm_stat(sizes, np.asarray(same, np.bool_)[idx_nz], page_size=page_size)
        saved_c = max(st["orig_data_size"] - st["mem_used_total"], 0)
    else:
        raise ValueError(f"compression must be 'esxi' or 'zram', got {compression!r}")
    rows.append((f"compression ({compression}, {algorithm})", saved_c / page_size))
    out = []
    resident = float(total)
    for step, saved in rows:
        resident -= saved
        out.append((step, float(saved), resident))
    out.append(("remains for ballooning / swap", 0.0, resident))
    lost = inter_free - inter + zero_free - zero_saved
    out.append(("salting removes (inter-VM sharing lost)", float(lost), float("nan")))
    mib = page_size / 2**20
    records = [
        {"step": step, "saved_pages": saved, "resident_pages": res, "saved_mb": saved * mib, "resident_mb": res * mib}
        for step, saved, res in out
    ]
    return records if as_records else pd.DataFrame(records)


# ------------------------------------------------------------------ estimates
#: Fewest sampled pages an estimate is made from: with fewer, :func:`estimate_zram` refuses
#: (``pagecore compress --sample`` says to sample more or run exactly). Five pages leave every
#: interval most of the possible range; none at all (``--sample 1e-9``) leaves nothing to scale.
MIN_SAMPLE_PAGES = 5
#: Below this many sampled pages the intervals rest on too few pages for their normal
#: approximation to be trusted: the report carries :func:`sample_warning` (a loud line).
RELIABLE_SAMPLE_PAGES = 100
#: What a sampled report says of its numbers.
ESTIMATE_NOTE = (
    "estimates from a page sample: totals scaled from the sampled pages' mean (ratio estimator), "
    "95 % Agresti-Coull intervals (z^2/2 pseudo-pages at each bound of a page's value), clamped to "
    "what the unsampled pages could add; sharing and the ladder need every page"
)


def sample_warning(sampled: int, population: int) -> str | None:
    """The warning a sampled report carries when it rests on fewer than
    :data:`RELIABLE_SAMPLE_PAGES` pages (None when it does not, or every page was sampled)."""
    if sampled >= min(RELIABLE_SAMPLE_PAGES, population):
        return None
    return (
        f"UNRELIABLE: the estimates rest on {sampled:,} sampled pages of {population:,} (fewer than "
        f"{RELIABLE_SAMPLE_PAGES}); their intervals are wide and approximate: give a larger --sample "
        "or run without --sample for the exact counts"
    )


def ci_total(
    values: np.ndarray, fraction: float, population: int, z: float = 1.96, *, bound: float
) -> tuple[float, float, float]:
    """Estimate of a population total from a Bernoulli(``fraction``) sample of its pages, with
    an interval of about 95 % (``z`` 1.96), both within what is possible.

    ``values`` are the sampled pages' values, each in [0, ``bound``]; ``population`` is N, the
    number of pages sampled from. Given its size n, a Bernoulli sample is a simple random
    sample of n of the N pages, so the total is estimated as N · mean (the ratio estimator;
    Horvitz-Thompson's Σ / fraction, used before, is unbounded when n misses its expectation:
    one page sampled at 1e-9 gave 4 TB for a 2 MiB guest). The interval is Agresti-Coull's,
    generalised to values in [0, bound]: z²/2 pseudo-pages at 0 and at ``bound`` join the
    sample, and its mean ± z·sd/√ñ (finite-population corrected) is scaled by N. For 0/1 values
    (page counts) it is the Agresti-Coull interval of a proportion; it never shrinks to a point
    when the sample merely missed rare pages (the normal interval said ``[0, 0]`` same pages).
    Every bound is clamped to [Σ sample, Σ sample + (N − n) · bound]: the sampled pages are
    known, each unsampled one adds between 0 and ``bound``.

    ``fraction`` only says how the sample was drawn: the estimate conditions on n.

    Returns (estimate, low, high); exact (all three the sum) when every page was sampled.
    """
    values = np.asarray(values, np.float64)
    n, big_n = int(values.size), int(population)
    total = float(values.sum())
    if n > big_n:
        raise ValueError(f"{n} sampled values from a population of {big_n}")
    if n == big_n:
        return total, total, total
    if n == 0:
        raise ValueError("no sampled values to estimate from")
    lo_hard, hi_hard = total, total + (big_n - n) * float(bound)
    est = big_n * total / n
    w = z * z / 2
    nt = n + 2 * w
    mt = (total + w * bound) / nt
    var = max((float((values**2).sum()) + w * bound * bound) / nt - mt * mt, 0.0)
    half = z * math.sqrt(var * (1 - n / big_n) / nt)
    low = min(max(big_n * (mt - half), lo_hard), est)
    high = max(min(big_n * (mt + half), hi_hard), est)
    return est, low, high


def estimate_zram(csize: np.ndarray, same: np.ndarray, fraction: float, population: int, z: float = 1.96) -> dict:
    """``mm_stat`` estimates with confidence intervals from a page sample.

    Per sampled page, its contribution to each counter: orig 4096; compr its stored length
    (0 to ``PAGE_SIZE``); same/huge 0/1; mem_used its class's zspage bytes per object (at most
    ``PAGE_SIZE``). Each total and its interval come from :func:`ci_total`, so every estimate and
    bound lies in what the N = ``population`` pages could give (page counts in [0, N], bytes in
    [0, N · 4096]). ``mem_used_total`` adds zsmalloc's rounding to whole zspages: the estimate
    rounds each class's scaled object count up; the interval goes from the linear total's low end
    (and at least the memory of the sampled pages alone) to its high end plus the most the
    rounding can add (``objs − 1`` objects' share in every class, about 554 pages with 4 KiB
    pages). When every page was sampled the counters are exact (:func:`zram_mm_stat`).

    Raises
    ------
    pagecore.errors.ConfigError
        Fewer than :data:`MIN_SAMPLE_PAGES` pages sampled (and not all of them): too few to
        estimate from.
    """
    from pagecore.errors import ConfigError

    classes = zsmalloc_classes()
    csize = np.asarray(csize, np.int64)
    same = np.asarray(same, np.bool_)
    n, big_n = int(csize.size), int(population)
    orig = {"estimate": big_n * PAGE_SIZE, "low": big_n * PAGE_SIZE, "high": big_n * PAGE_SIZE}
    if n == big_n:  # every page: the counters themselves
        st = zram_mm_stat(csize, same, classes)
        out = {k: {"estimate": st[k], "low": st[k], "high": st[k]} for k in _ESTIMATED}
        out["orig_data_size"] = orig
        return out
    if n < MIN_SAMPLE_PAGES:
        raise ConfigError(
            f"--sample chose {n:,} of {big_n:,} pages, fewer than {MIN_SAMPLE_PAGES} to estimate from: "
            f"give a larger --sample (e.g. --sample {min(RELIABLE_SAMPLE_PAGES, big_n)} pages) "
            "or run without --sample for the exact counts"
        )
    huge = (~same) & (csize >= classes.huge_class_size)
    length = np.where(same, 0, np.where(huge, PAGE_SIZE, csize))
    mem = np.where(same, 0.0, _object_cost(np.maximum(length, 1), classes))
    owners = np.unique(classes.owner)
    cost = classes.pages[owners] * classes.page_size / classes.objs[owners]
    out = {}
    for name, v, bound in (
        ("compr_data_size", length, PAGE_SIZE),
        ("mem_used_total", mem, float(cost.max())),
        ("same_pages", same.astype(np.float64), 1.0),
        ("huge_pages", huge.astype(np.float64), 1.0),
    ):
        est, lo, hi = ci_total(v, fraction, big_n, z, bound=bound)
        out[name] = {"estimate": est, "low": lo, "high": hi}
    # zspages are allocated whole: scale each class's object count, then round up per class
    stored = length[~same]
    m = out["mem_used_total"]
    rounding = float(((classes.objs[owners] - 1) * cost).sum())  # the most whole zspages add
    low = max(m["low"], float(zsmalloc_pages(stored, classes) * PAGE_SIZE))  # the sampled pages alone
    high = m["high"] + rounding
    plug = 0.0
    if stored.size:
        owner = classes.owner[classes.index(np.maximum(stored, 1))]
        k = np.bincount(owner, minlength=len(classes.size)) * (big_n / n)
        used = np.flatnonzero(k)
        plug = float((np.ceil(k[used] / classes.objs[used]) * classes.pages[used]).sum() * PAGE_SIZE)
    out["mem_used_total"] = {"estimate": min(max(plug, low), high), "low": low, "high": high}
    out["orig_data_size"] = orig
    return out


#: The counters :func:`estimate_zram` estimates from a sample (``orig_data_size`` is known).
_ESTIMATED = ("compr_data_size", "mem_used_total", "same_pages", "huge_pages")
