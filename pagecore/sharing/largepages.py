"""Large pages hide sharing: savings per 2 MiB region and the curve of breaking them.

A host that backs guest memory with 2 MiB pages (ESXi since 3.5 on hardware MMU
virtualization; Linux THP) cannot share or zero-map a 4 KiB page inside a large page until
it breaks that large page into 512 small ones (ESXi does so when memory is short, the
"clear" state of vSphere 6+; KSM splits THPs it merges into). This module counts, for each
2 MiB-aligned guest-physical region of each VM (``REGION_PAGES`` = 512 gpfns), how much of
the sharing and zero-page savings lies inside it, and how the savings grow as regions are
broken, most profitable first.

Savings model (exact definition)
--------------------------------
Let B be the set of broken regions. Only pages inside B are small pages and can be shared:

* each **zero page** in B saves one page (it is mapped to the host's zero page, which exists
  anyway — so the all-broken total is ``zero_pages``, one more than the paper vocabulary's
  ``zero_saved_pages = zeros − 1``);
* a **non-zero content** c with ``b_c`` copies in B saves ``max(b_c − 1, 0)`` pages: one copy
  stays as the shared page. A copy inside an unbroken large page cannot serve as the shared
  page (it is not a separate small page), so it neither saves nor lets others save.
  Contents are (sharing domain, hash): with ESXi salting (:mod:`.salting`) only pages of one
  domain share.

Breaking all regions gives zero pages + Σ_c (copies_c − 1), the paper's sharing savings.

Per region r (all regions broken): ``zero`` (its zero pages), ``alone`` (savings if only r
were broken: zeros + Σ_c max(k_{c,r} − 1, 0)) and ``attributed`` (its share of the total:
zeros + Σ_c k_{c,r}·(n_c − 1)/n_c, the esxtop SHRDSVD split, summing to the total).

Greedy curve: starting from no broken region, repeatedly break the region with the largest
marginal gain ``zero_r + Σ_{c in r} (k_{c,r} − [b_c = 0])`` (ties: the lowest (vm, region));
gains only grow as other regions break, so a max segment tree over the gains is updated as
contents become present. The curve is greedy, not optimal (choosing k regions to maximize
savings is a coverage-type problem); ``tests/test_largepages.py`` compares it with
brute-force greedy and with the optimum on tiny inputs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pagecore._jit import SERIAL

#: 2 MiB / 4 KiB: small pages per x86-64 large page (PMD).
REGION_PAGES = 512


@njit(**SERIAL)
def _seg_update(tree, size, i, value):
    j = i + size
    tree[j] = value
    j >>= 1
    while j >= 1:
        a = tree[2 * j]
        b = tree[2 * j + 1]
        tree[j] = a if a >= b else b
        j >>= 1


@njit(**SERIAL)
def _seg_argmax(tree, size):
    j = 1
    while j < size:
        if tree[2 * j] >= tree[2 * j + 1]:
            j = 2 * j
        else:
            j = 2 * j + 1
    return j - size


@njit(**SERIAL)
def _greedy(zero_r, reg_ptr, reg_content, reg_k, con_ptr, con_region, order_out, gain_out):
    """Greedy breaking order. CSR: region → (content, k); content → regions."""
    nreg = zero_r.shape[0]
    ncon = con_ptr.shape[0] - 1
    present = np.zeros(ncon, np.bool_)
    broken = np.zeros(nreg, np.bool_)
    gain = np.empty(nreg, np.int64)
    for r in range(nreg):
        g = zero_r[r]
        for p in range(reg_ptr[r], reg_ptr[r + 1]):
            g += reg_k[p] - 1
        gain[r] = g
    size = 1
    while size < max(nreg, 1):
        size *= 2
    # keys: gain * 2^32 - r  so ties pick the lowest region index
    tree = np.full(2 * size, np.iinfo(np.int64).min, np.int64)
    for r in range(nreg):
        _seg_update(tree, size, r, gain[r] * 4294967296 - r)
    for step in range(nreg):
        r = _seg_argmax(tree, size)
        order_out[step] = r
        gain_out[step] = gain[r]
        broken[r] = True
        _seg_update(tree, size, r, np.iinfo(np.int64).min)
        for p in range(reg_ptr[r], reg_ptr[r + 1]):
            c = reg_content[p]
            if not present[c]:
                present[c] = True
                for q in range(con_ptr[c], con_ptr[c + 1]):
                    o = con_region[q]
                    if not broken[o]:
                        gain[o] += 1
                        _seg_update(tree, size, o, gain[o] * 4294967296 - o)


#: bits of a region number in the (vm, region) key; the VM code takes the bits above
_REGION_BITS = 40


def _content_ids(domain: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Dense ids of the (domain, hash) pairs, numbered in (domain, signed hash) order."""
    n = len(h)
    if n == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort((h, domain)) if domain.any() else np.argsort(h, kind="stable")
    ds, hs = domain[order], h[order]
    new = np.ones(n, np.bool_)
    new[1:] = (hs[1:] != hs[:-1]) | (ds[1:] != ds[:-1])
    ids = np.empty(n, np.int64)
    ids[order] = np.cumsum(new) - 1
    return ids


def _vm_codes(vm) -> tuple[np.ndarray, list[str]]:
    """VM codes (in sorted-name order) and names; integer VM indices are taken as they are."""
    import pandas as pd

    a = np.asarray(vm)
    if a.dtype.kind in "iu":
        names, codes = np.unique(a, return_inverse=True)
        return codes.reshape(-1).astype(np.int64), [str(x) for x in names]
    codes, names = pd.factorize(pd.Series(a).astype(str), sort=True)
    return codes.astype(np.int64), list(names)


def _structure(vm_codes, gpfn, hashes, zero, domain, region_pages):
    """Regions, contents and their (region, content) incidence."""
    region_of_page = (gpfn // np.uint64(region_pages)).astype(np.int64)
    if len(region_of_page) and int(region_of_page.max()) >= 1 << _REGION_BITS:
        raise ValueError(f"guest frame numbers must stay below 2^{_REGION_BITS} regions")
    # one int64 key per (vm, region): its sort order is the (vm, region) order (1-D sorts are fast)
    key = (vm_codes.astype(np.int64) << _REGION_BITS) | region_of_page
    ukey, reg_idx = np.unique(key, return_inverse=True)
    reg_idx = reg_idx.reshape(-1)
    regions = np.stack([ukey >> _REGION_BITS, ukey & ((1 << _REGION_BITS) - 1)], axis=1)
    nreg = len(regions)
    zero_r = np.bincount(reg_idx[zero], minlength=nreg).astype(np.int64)
    nz = ~zero
    con_idx = _content_ids(domain[nz].astype(np.int64), hashes[nz].view(np.int64))
    ncon = int(con_idx.max()) + 1 if len(con_idx) else 0
    pair = reg_idx[nz].astype(np.int64) * max(ncon, 1) + con_idx
    upair, k = np.unique(pair, return_counts=True)
    p_reg = upair // max(ncon, 1)
    p_con = upair % max(ncon, 1)
    reg_ptr = np.zeros(nreg + 1, np.int64)
    reg_ptr[1:] = np.cumsum(np.bincount(p_reg, minlength=nreg))
    o = np.argsort(p_con, kind="stable")
    con_ptr = np.zeros(ncon + 1, np.int64)
    con_ptr[1:] = np.cumsum(np.bincount(p_con, minlength=ncon))
    copies = np.bincount(con_idx, minlength=ncon).astype(np.int64)
    return regions, reg_idx, zero_r, reg_ptr, p_con.astype(np.int64), k.astype(np.int64), con_ptr, p_reg[o], copies


def large_page_savings(
    vm,
    gpfn: np.ndarray,
    hashes: np.ndarray,
    zero: np.ndarray,
    *,
    domain: np.ndarray | None = None,
    region_pages: int = REGION_PAGES,
    page_size: int = 4096,
):
    """Sharing and zero-page savings per large-page region, and the greedy breaking curve.

    Parameters
    ----------
    vm : array-like of str or int, shape (n,)
    gpfn : uint64[n]
    hashes : uint64[n]
    zero : bool[n]
    domain : int[n], optional
        Sharing domain per page (salting); default one domain.
    region_pages : int
        Small pages per large page (512 for 2 MiB on x86-64).

    Returns
    -------
    regions : pandas.DataFrame
        One row per region: ``vm``, ``region`` (gpfn // region_pages), ``base_gpfn``,
        ``pages``, ``zero``, ``alone``, ``attributed`` (pages; see module docstring).
    curve : pandas.DataFrame
        Rows k = 0..R: ``broken`` (regions broken), ``vm``/``region`` broken at this step,
        ``gain`` (pages), ``saved_pages``, ``saved_fraction`` (of the all-broken total),
        ``saved_mb``.
    """
    import pandas as pd

    gpfn = np.asarray(gpfn, np.uint64)
    hashes = np.asarray(hashes, np.uint64)
    zero = np.asarray(zero, np.bool_)
    n = gpfn.shape[0]
    if hashes.shape != (n,) or zero.shape != (n,):
        raise ValueError("gpfn, hashes and zero must have the same length")
    vm_codes, vm_names = _vm_codes(vm)
    domain = np.zeros(n, np.int64) if domain is None else np.asarray(domain, np.int64)
    regions, reg_idx, zero_r, reg_ptr, reg_con, reg_k, con_ptr, con_reg, copies = _structure(
        vm_codes, gpfn, hashes, zero, domain, region_pages
    )
    nreg = len(regions)
    # per-region attribution
    alone = zero_r.copy()
    attributed = zero_r.astype(np.float64)
    if len(reg_k):
        preg = np.repeat(np.arange(nreg), np.diff(reg_ptr))
        alone += np.bincount(preg, weights=reg_k - 1, minlength=nreg).astype(np.int64)
        share = reg_k * (copies[reg_con] - 1) / copies[reg_con]
        attributed += np.bincount(preg, weights=share, minlength=nreg)
    total = int(zero_r.sum() + (copies - 1).sum())
    reg_df = pd.DataFrame(
        {
            "vm": [vm_names[i] for i in regions[:, 0]] if nreg else [],
            "region": regions[:, 1] if nreg else np.zeros(0, np.int64),
        }
    )
    reg_df["base_gpfn"] = reg_df["region"].astype(np.int64) * region_pages
    reg_df["pages"] = np.bincount(reg_idx, minlength=nreg)
    reg_df["zero"] = zero_r
    reg_df["alone"] = alone
    reg_df["attributed"] = attributed
    order = np.empty(nreg, np.int64)
    gain = np.empty(nreg, np.int64)
    if nreg:
        _greedy(zero_r, reg_ptr, reg_con, reg_k, con_ptr, con_reg, order, gain)
    saved = np.concatenate([[0], np.cumsum(gain)])
    curve = pd.DataFrame(
        {
            "broken": np.arange(nreg + 1),
            "vm": [None] + [vm_names[regions[r, 0]] for r in order],
            "region": np.concatenate([[-1], regions[order, 1] if nreg else []]).astype(np.int64),
            "gain": np.concatenate([[0], gain]),
            "saved_pages": saved,
        }
    )
    curve["saved_fraction"] = curve["saved_pages"] / total if total else 0.0
    curve["saved_mb"] = curve["saved_pages"] * page_size / 2**20
    curve.attrs["total_saved_pages"] = total
    curve.attrs["regions"] = nreg
    return reg_df, curve


def regions_to_reach(curve, fraction: float) -> int:
    """Fewest regions the greedy curve breaks to reach ``fraction`` of the total savings."""
    hit = np.flatnonzero(curve["saved_fraction"].to_numpy() >= fraction)
    return int(curve["broken"].iloc[hit[0]]) if len(hit) else int(curve["broken"].iloc[-1])


def large_page_summary(curve, regions, page_size: int = 4096, marks=(0.5, 0.8, 0.9, 0.99, 1.0)) -> dict:
    """JSON-ready summary for ``pagecore share`` output: totals and regions needed per mark.

    ``regions_to_reach``: fewest 2 MiB regions the greedy order breaks to reach each fraction
    of the all-broken savings; ``share_of_regions`` the same as a fraction of all regions.
    """
    n = int(curve.attrs.get("regions", len(regions)))
    total = int(curve.attrs.get("total_saved_pages", 0))
    reach = {f"{m:g}": regions_to_reach(curve, m) for m in marks}
    return {
        "regions": n,
        "region_pages": REGION_PAGES,
        "saved_pages_all_broken": total,
        "saved_mb_all_broken": total * page_size / 2**20,
        "regions_to_reach": reach,
        "share_of_regions": {k: (v / n if n else 0.0) for k, v in reach.items()},
        "regions_without_savings": int((regions["alone"] == 0).sum()) if len(regions) else 0,
    }


def savings_with_small_pages(vm, gpfn, hashes, zero, small, *, domain=None) -> dict:
    """Savings when only the pages where ``small`` is true are 4 KiB pages (the rest lie in
    unbroken large pages): the module docstring's definition, for any set of broken regions.

    Returns ``{"zero": zero pages among the small ones, "nonzero": Σ_c max(b_c − 1, 0),
    "total": their sum}`` (pages), where ``b_c`` counts the small copies of non-zero content c
    (contents are (domain, hash)).
    """
    small = np.asarray(small, np.bool_)
    zero = np.asarray(zero, np.bool_)
    hashes = np.asarray(hashes, np.uint64)
    z = int((small & zero).sum())
    sel = small & ~zero
    if domain is None:
        distinct = np.unique(hashes[sel]).size
    else:
        d = np.asarray(domain, np.int64)[sel]
        ids = _content_ids(d, hashes[sel].view(np.int64))
        distinct = int(ids.max()) + 1 if len(ids) else 0
    nz = int(sel.sum()) - int(distinct)
    return {"zero": z, "nonzero": nz, "total": z + nz}


def backable_regions(vm, gpfn, region_pages: int = REGION_PAGES, full=None):
    """Which pages lie in a 2 MiB region a large page can back.

    A region can be one large page only when all ``region_pages`` of its aligned guest frames
    are in the table (and, when ``full`` is given, every one of its pages has ``full`` true,
    e.g. ``host_thp`` for the regions the host *does* back with a huge page). A region with a
    hole (a ROM, the PCI hole, an unreadable page) is made of small pages anyway.

    Returns
    -------
    in_backable : bool[n]
        Per page: its region is backable.
    regions, backable : int
        Number of regions, and of backable ones.
    """

    gpfn = np.asarray(gpfn, np.uint64)
    n = gpfn.shape[0]
    if n == 0:
        return np.zeros(0, np.bool_), 0, 0
    vm_codes, _ = _vm_codes(vm)
    key = vm_codes.astype(np.int64) * (1 << 44) + (gpfn // np.uint64(region_pages)).astype(np.int64)
    uk, idx, cnt = np.unique(key, return_inverse=True, return_counts=True)
    ok = cnt == region_pages
    if full is not None:
        ok &= np.bincount(idx, weights=np.asarray(full, np.bool_), minlength=len(uk)).astype(np.int64) == cnt
    return ok[idx], len(uk), int(ok.sum())


def large_page_report(vm, gpfn, hashes, zero, *, thp=None, page_size: int = 4096, marks=(0.5, 0.9, 0.99)) -> dict:
    """The large-page section of ``pagecore share`` (issue 16 item 3), JSON-ready.

    ``backable``: regions whose 512 frames are all present; ``lost_if_backed``: the sharing and
    zero-page savings a host loses by backing every backable region with one 2 MiB page (pages
    inside are not shared until the large page is broken); ``regions_to_reach``: fewest
    regions the greedy order (:func:`large_page_savings`) breaks to get each fraction of the
    savings back. With the host's view (``thp``: ``host_thp`` from ``pagecore live``), the
    same loss for the regions the host backs with transparent huge pages now.
    """
    _, curve = large_page_savings(vm, gpfn, hashes, zero, page_size=page_size)
    total = int(curve.attrs["total_saved_pages"])
    in_b, n_reg, n_b = backable_regions(vm, gpfn)
    kept = savings_with_small_pages(vm, gpfn, hashes, zero, ~in_b)
    lost = total - kept["total"]
    mb = page_size / 2**20
    out = {
        "region_bytes": REGION_PAGES * page_size,
        "regions": n_reg,
        "backable_regions": n_b,
        "backable_pages": int(in_b.sum()),
        "saved_pages_small_pages": total,
        "saved_pages_if_backed": kept["total"],
        "lost_pages_if_backed": lost,
        "lost_mb_if_backed": lost * mb,
        "lost_zero_pages_if_backed": int(np.asarray(zero, bool).sum()) - kept["zero"] if len(zero) else 0,
        "lost_fraction_if_backed": lost / total if total else 0.0,
        "regions_to_reach": {f"{m:g}": regions_to_reach(curve, m) for m in marks},
    }
    if thp is not None:
        in_t, _, n_t = backable_regions(vm, gpfn, full=thp)
        kept_t = savings_with_small_pages(vm, gpfn, hashes, zero, ~in_t)
        out["host_thp_regions"] = n_t
        out["lost_pages_host_thp"] = total - kept_t["total"]
        out["lost_mb_host_thp"] = (total - kept_t["total"]) * mb
    return out
