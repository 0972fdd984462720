"""Exact sharing analysis of a set of pages, in every vocabulary users compare with.

One pass over pages sorted by (salt, hash) computes additive counts — so the same kernel
serves an in-core set and each hash-prefix partition of a set larger than memory, whose
:class:`SharingCounts` are then summed (:meth:`SharingCounts.__add__`).

Vocabularies (per set, and per VM where it makes sense)
-------------------------------------------------------
paper (Figures 4/5)
    ``total_pages``; ``zero_pages``; ``shared_pages`` (pages in contents with ≥ 2 copies, all
    mapped COW); ``reclaimed_pages`` (copies beyond the first); ``shared_minus_reclaimed_pages``
    (machine pages holding one copy of each shared content).
Linux KSM, as KSM would report for the same pages if all were mergeable and fully scanned
    ``pages_shared`` (KSM pages: ⌈copies / max_page_sharing⌉ per content, because one KSM page
    has at most ``max_page_sharing`` sharers), ``pages_sharing`` (the other copies, i.e. pages
    saved), ``pages_unshared`` (contents seen once); with ``use_zero_pages=1`` zero pages are
    mapped to the kernel's zero page instead and counted only in ``ksm_zero_pages``.
    ``general_profit`` = (pages_sharing + ksm_zero_pages)·4 KiB − rmap_items·64 B, where every
    scanned page not mapped to the zero page has one rmap item (kernel admin guide, "General
    profit"). A content with k·max_page_sharing + 1 copies leaves its last copy unshared: a
    new KSM page needs two copies (checked against :mod:`pagecore.sharing.ksm`).
esxtop
    ``SHRD`` shared guest memory (zero pages included), ``ZERO`` zero pages, ``SHRDSVD``
    machine memory saved; per VM, SHRDSVD credits each of a VM's shared pages with
    (copies − 1)/copies of a page, so the per-VM values add up to the host's savings.
attribution
    saved pages that are intra-VM (copies a VM would save alone: Σ_v (c_v − 1)) or inter-VM
    (the rest: VMs-in-content − 1), and zero vs non-zero; the top shared contents.

Every page is accounted for: ``unshared + ineligible + shared = total`` and
``distinct + reclaimed = total``.

Ineligible pages (paper §4.3): a page whose hash matched a different content (a *false match*,
found by byte comparison in :mod:`pagecore.pages.verify`) is never shared; it counts as its own
content (unshared) here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from pagecore import PAGE_SIZE
from pagecore._jit import SERIAL

MB = 1 << 20
RMAP_ITEM_BYTES = 64  # sizeof(struct ksm_rmap_item) on 64-bit (kernel doc, "General profit")

# indices into the scalar totals array written by _scan
(
    T_PAGES,
    T_ZERO,
    T_DISTINCT,
    T_SHARED,
    T_SHARED_GROUPS,
    T_RECLAIMED,
    T_INTRA,
    T_INTER,
    T_ZERO_SAVED,
    T_INELIGIBLE,
    T_UNSHARED,
    T_KSM_SHARED,
    T_KSM_SHARING,
    T_KSM_UNSHARED,
    T_KSM_ZERO,
    T_INTER_SHARED,
    N_TOTALS,
) = range(17)
# indices into the per-VM array
(
    V_PAGES,
    V_ZERO,
    V_SHARED,
    V_ALONE_SHARED,
    V_ALONE_RECLAIMED,
    V_INTER_SHARED,
    V_INELIGIBLE,
    V_ZERO_SHARED,
    N_VM,
) = range(9)


@njit(**SERIAL)
def _scan(h, s, vm, z, el, nvm, use_zero_pages, max_page_sharing, tot, per_vm, svd, grp_start, grp_count, grp_vms):
    """Scan pages sorted by (salt, hash). Writes ``tot`` (int64[N_TOTALS]), ``per_vm``
    (int64[nvm, N_VM]), ``svd`` (float64[nvm], esxtop SHRDSVD in pages) and the start index
    copy count and number of VMs of every shared content (``grp_*``, int64[n]); returns how
    many shared contents there are."""
    n = h.shape[0]
    cnt = np.zeros(nvm, np.int64)
    touched = np.empty(nvm, np.int64)
    ngrp = 0
    i = 0
    while i < n:
        j = i + 1
        while j < n and h[j] == h[i] and s[j] == s[i]:
            j += 1
        # run [i, j) has one (salt, hash); eligible pages are one content
        c = 0
        k = 0
        zz = False
        first = -1
        for p in range(i, j):
            v = vm[p]
            per_vm[v, V_PAGES] += 1
            tot[T_PAGES] += 1
            if z[p]:
                per_vm[v, V_ZERO] += 1
                tot[T_ZERO] += 1
            if not el[p]:
                tot[T_INELIGIBLE] += 1
                tot[T_UNSHARED] += 1
                tot[T_DISTINCT] += 1
                tot[T_KSM_UNSHARED] += 1
                per_vm[v, V_INELIGIBLE] += 1
                continue
            if first < 0:
                first = p
                zz = z[p]
            c += 1
            if cnt[v] == 0:
                touched[k] = v
                k += 1
            cnt[v] += 1
        if c > 0:
            tot[T_DISTINCT] += 1
            if use_zero_pages and zz:
                tot[T_KSM_ZERO] += c
            elif c >= 2:
                # full KSM pages of max_page_sharing mappings, then one more for the rest;
                # a single leftover copy has no partner to start a new KSM page (mm/ksm.c
                # stable_tree_search: all dups full -> wait for an unstable-tree match)
                kp = (c + max_page_sharing - 1) // max_page_sharing
                left = 0
                if c % max_page_sharing == 1:
                    kp -= 1
                    left = 1
                tot[T_KSM_SHARED] += kp
                tot[T_KSM_SHARING] += c - kp - left
                tot[T_KSM_UNSHARED] += left
            else:
                tot[T_KSM_UNSHARED] += 1
            if c >= 2:
                tot[T_SHARED] += c
                tot[T_SHARED_GROUPS] += 1
                tot[T_RECLAIMED] += c - 1
                tot[T_INTRA] += c - k
                tot[T_INTER] += k - 1
                if zz:
                    tot[T_ZERO_SAVED] += c - 1
                if k >= 2:
                    tot[T_INTER_SHARED] += c
                frac = (c - 1) / c
                for t in range(k):
                    v = touched[t]
                    cv = cnt[v]
                    per_vm[v, V_SHARED] += cv
                    svd[v] += cv * frac
                    if zz:
                        per_vm[v, V_ZERO_SHARED] += cv
                    if k >= 2:
                        per_vm[v, V_INTER_SHARED] += cv
                    if cv >= 2:
                        per_vm[v, V_ALONE_SHARED] += cv
                        per_vm[v, V_ALONE_RECLAIMED] += cv - 1
                grp_start[ngrp] = first
                grp_count[ngrp] = c
                grp_vms[ngrp] = k
                ngrp += 1
            else:
                tot[T_UNSHARED] += 1
        for t in range(k):
            cnt[touched[t]] = 0
        i = j
    return ngrp


@dataclass
class SharingCounts:
    """Additive sharing counts of a set of pages (see the module docstring).

    Sum two of them (``a + b``) when they describe disjoint hash ranges of the same VMs — the
    gather step of partitioned counting.
    """

    vm_names: list[str]
    totals: np.ndarray  # int64[N_TOTALS]
    per_vm: np.ndarray  # int64[nvm, N_VM]
    shrdsvd: np.ndarray  # float64[nvm], pages
    top: list[tuple[int, int, int, int, bool]] = field(default_factory=list)  # (hash, salt, copies, vms, zero)
    use_zero_pages: bool = False
    max_page_sharing: int = 256
    verified: bool = False
    false_matches: int = 0
    hash_bits: int = 64
    page_size: int = PAGE_SIZE
    top_n: int = 10

    def __add__(self, other: SharingCounts) -> SharingCounts:
        if self.vm_names != other.vm_names:
            raise ValueError("cannot add counts of different VM sets")
        if (self.use_zero_pages, self.max_page_sharing) != (other.use_zero_pages, other.max_page_sharing):
            raise ValueError("cannot add counts made with different KSM settings")
        top = sorted(self.top + other.top, key=lambda t: (-t[2], t[0], t[1]))[: max(self.top_n, other.top_n)]
        return SharingCounts(
            vm_names=self.vm_names,
            totals=self.totals + other.totals,
            per_vm=self.per_vm + other.per_vm,
            shrdsvd=self.shrdsvd + other.shrdsvd,
            top=top,
            use_zero_pages=self.use_zero_pages,
            max_page_sharing=self.max_page_sharing,
            verified=self.verified and other.verified,
            false_matches=self.false_matches + other.false_matches,
            hash_bits=self.hash_bits,
            page_size=self.page_size,
            top_n=max(self.top_n, other.top_n),
        )

    # ------------------------------------------------------------------ derived values
    def t(self, idx: int) -> int:
        return int(self.totals[idx])

    @property
    def expected_false_matches(self) -> float:
        """Expected colliding pairs among the distinct contents for this hash width."""
        d = float(self.t(T_DISTINCT))
        return d * (d - 1) / 2 / 2.0**self.hash_bits

    def mb(self, pages: float) -> float:
        return pages * self.page_size / MB

    def to_dict(self) -> dict:
        """Every metric, JSON-ready (see the module docstring for definitions)."""
        t = self.t
        # pages mapped to the kernel zero page lose their rmap item at ksmd's next pass
        ksm_rmap = t(T_KSM_SHARED) + t(T_KSM_SHARING) + t(T_KSM_UNSHARED)
        ksm_saved = t(T_KSM_SHARING) + t(T_KSM_ZERO)
        out = {
            "vms": len(self.vm_names),
            "total_pages": t(T_PAGES),
            "zero_pages": t(T_ZERO),
            "shared_pages": t(T_SHARED),
            "reclaimed_pages": t(T_RECLAIMED),
            "shared_minus_reclaimed_pages": t(T_SHARED) - t(T_RECLAIMED),
            "distinct_pages": t(T_DISTINCT),
            "unshared_pages": t(T_UNSHARED),
            "ineligible_pages": t(T_INELIGIBLE),
            "intra_vm_saved_pages": t(T_INTRA),
            "inter_vm_saved_pages": t(T_INTER),
            "zero_saved_pages": t(T_ZERO_SAVED),
            "nonzero_saved_pages": t(T_RECLAIMED) - t(T_ZERO_SAVED),
            "inter_vm_shared_pages": t(T_INTER_SHARED),
            "false_matches": int(self.false_matches),
            "verified": bool(self.verified),
            "hash_bits": self.hash_bits,
            "expected_false_matches": self.expected_false_matches,
            "page_size": self.page_size,
        }
        for k in ("total", "zero", "shared", "reclaimed", "shared_minus_reclaimed"):
            out[f"{k}_mb"] = self.mb(out[f"{k}_pages"])
        out["ksm"] = {
            "pages_shared": t(T_KSM_SHARED),
            "pages_sharing": t(T_KSM_SHARING),
            "pages_unshared": t(T_KSM_UNSHARED),
            "ksm_zero_pages": t(T_KSM_ZERO),
            "use_zero_pages": int(self.use_zero_pages),
            "max_page_sharing": self.max_page_sharing,
            "general_profit": ksm_saved * self.page_size - ksm_rmap * RMAP_ITEM_BYTES,
        }
        out["esxtop"] = {
            "SHRD_mb": self.mb(t(T_SHARED)),
            "ZERO_mb": self.mb(t(T_ZERO)),
            "SHRDSVD_mb": self.mb(t(T_RECLAIMED)),
        }
        out["top_shared"] = [
            {"hash": f"{h:016x}", "salt": int(s), "copies": int(c), "vms": int(k), "zero": bool(zz)}
            for h, s, c, k, zz in self.top
        ]
        by_vm = {}
        for i, name in enumerate(self.vm_names):
            row = self.per_vm[i]
            by_vm[name] = {
                "total_pages": int(row[V_PAGES]),
                "zero_pages": int(row[V_ZERO]),
                "shared_pages": int(row[V_SHARED]),
                "zero_shared_pages": int(row[V_ZERO_SHARED]),
                "inter_vm_shared_pages": int(row[V_INTER_SHARED]),
                "ineligible_pages": int(row[V_INELIGIBLE]),
                "alone_shared_pages": int(row[V_ALONE_SHARED]),
                "alone_reclaimed_pages": int(row[V_ALONE_RECLAIMED]),
                "esxtop": {
                    "SHRD_mb": self.mb(int(row[V_SHARED])),
                    "ZERO_mb": self.mb(int(row[V_ZERO])),
                    "SHRDSVD_mb": self.mb(float(self.shrdsvd[i])),
                },
            }
        out["by_vm"] = by_vm
        return out


def count_sharing(
    hashes: np.ndarray,
    zero: np.ndarray,
    vm: np.ndarray,
    vm_names: list[str],
    *,
    salt: np.ndarray | None = None,
    eligible: np.ndarray | None = None,
    use_zero_pages: bool = False,
    max_page_sharing: int = 256,
    top_n: int = 10,
    verified: bool = False,
    false_matches: int = 0,
    hash_bits: int = 64,
) -> SharingCounts:
    """Exact sharing counts of a set of pages.

    Parameters
    ----------
    hashes : uint64[n]
        Content hashes.
    zero : bool[n]
        All-zero flags.
    vm : integer[n]
        Index of each page's VM in ``vm_names``.
    vm_names : list of str
    salt : integer[n], optional
        Sharing domain of each page (ESXi salting, :mod:`pagecore.sharing.salting`): only pages
        with equal salt and equal content share. Default: one domain.
    eligible : bool[n], optional
        False for pages made ineligible by a false match (:mod:`pagecore.pages.verify`).
    use_zero_pages : bool
        KSM's ``use_zero_pages``: zero pages go to the kernel zero page (``ksm_zero_pages``).
    max_page_sharing : int
        KSM's cap on sharers per KSM page (kernel default 256, minimum 2).
    top_n : int
        How many of the most-copied contents to keep.

    Returns
    -------
    SharingCounts
    """
    hashes = np.asarray(hashes)
    n = hashes.shape[0]
    if hashes.ndim != 1 or hashes.dtype != np.uint64:
        raise ValueError(f"hashes must be uint64[n], got {hashes.dtype}{hashes.shape}")
    zero = np.asarray(zero, dtype=np.bool_)
    vm = np.asarray(vm)
    if zero.shape != (n,) or vm.shape != (n,):
        raise ValueError(f"zero and vm must have shape ({n},), got {zero.shape} and {vm.shape}")
    if max_page_sharing < 2:
        raise ValueError(f"max_page_sharing must be >= 2 (kernel minimum), got {max_page_sharing}")
    nvm = len(vm_names)
    if n and (vm.min() < 0 or vm.max() >= nvm):
        raise ValueError(f"vm indices must be in [0, {nvm})")
    vm = vm.astype(np.int64, copy=False)
    if salt is None:
        order = np.argsort(hashes, kind="stable")
        s_sorted = np.zeros(n, np.int64)
    else:
        salt = np.asarray(salt, dtype=np.int64)
        if salt.shape != (n,):
            raise ValueError(f"salt must have shape ({n},), got {salt.shape}")
        order = np.lexsort((hashes, salt))
        s_sorted = salt[order]
    el = np.ones(n, np.bool_) if eligible is None else np.asarray(eligible, dtype=np.bool_)
    if el.shape != (n,):
        raise ValueError(f"eligible must have shape ({n},), got {el.shape}")
    h_sorted = hashes[order]
    tot = np.zeros(N_TOTALS, np.int64)
    per_vm = np.zeros((nvm, N_VM), np.int64)
    svd = np.zeros(nvm, np.float64)
    gs = np.empty(n, np.int64)
    gc = np.empty(n, np.int64)
    gk = np.empty(n, np.int64)
    z_sorted = zero[order]
    ng = _scan(
        h_sorted,
        s_sorted,
        vm[order],
        z_sorted,
        el[order],
        nvm,
        use_zero_pages,
        max_page_sharing,
        tot,
        per_vm,
        svd,
        gs,
        gc,
        gk,
    )
    top = []
    if ng and top_n > 0:
        pick = np.argsort(-gc[:ng], kind="stable")[:top_n]
        for g in pick:
            a = int(gs[g])
            top.append((int(h_sorted[a]), int(s_sorted[a]), int(gc[g]), int(gk[g]), bool(z_sorted[a])))
        top.sort(key=lambda t: (-t[2], t[0], t[1]))
    return SharingCounts(
        vm_names=list(vm_names),
        totals=tot,
        per_vm=per_vm,
        shrdsvd=svd,
        top=top,
        use_zero_pages=bool(use_zero_pages),
        max_page_sharing=int(max_page_sharing),
        verified=verified,
        false_matches=int(false_matches),
        hash_bits=hash_bits,
        top_n=top_n,
    )
