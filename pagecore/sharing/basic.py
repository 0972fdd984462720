"""Content-based sharing metrics in the paper's vocabulary (§4, Figures 4 and 5).

Given the content hashes of a set of guest pages, ESX-style sharing keeps one machine copy per
distinct content:

* **Shared (COW)** — pages whose content occurs at least twice; all of them end up mapped
  copy-on-write to a shared machine page.
* **Reclaimed** — machine pages saved: Σ over contents of (copies − 1) = total − distinct.
* **Shared − Reclaimed** — machine pages that hold the single copy of each shared content.
* **Zero pages** — pages whose bytes are all zero (counted whether or not shared).

:func:`sharing_report` counts with :func:`pagecore.sharing.fastcount.count_hashes` and
:func:`vm_count_sweep` (Figure 4's 1..N VM sweep) with :func:`pagecore.sharing.count_sharing`
(verification, attribution); both run the one counting kernel of :mod:`.counts`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pagecore import PAGE_SIZE
from pagecore.sharing.fastcount import count_hashes

MB = 1 << 20


@dataclass(frozen=True)
class SharingReport:
    """Sharing of one set of pages. All counts are pages of ``page_size`` bytes.

    ``verified`` is False when equal hashes were taken as equal contents without a byte
    comparison (hash-only page tables); the expected number of false matches is then
    ``expected_false_matches``.
    """

    vms: int
    total_pages: int
    zero_pages: int
    shared_pages: int
    reclaimed_pages: int
    distinct_pages: int
    page_size: int = PAGE_SIZE
    verified: bool = False
    hash_bits: int = 64

    @property
    def shared_minus_reclaimed_pages(self) -> int:
        """Machine pages holding one copy of each shared content (paper Fig. 4 bottom)."""
        return self.shared_pages - self.reclaimed_pages

    @property
    def expected_false_matches(self) -> float:
        """Expected number of colliding pairs among the distinct contents (birthday bound)."""
        d = float(self.distinct_pages)
        return d * (d - 1) / 2 / 2.0**self.hash_bits

    def mb(self, pages: int) -> float:
        return pages * self.page_size / MB

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shared_minus_reclaimed_pages"] = self.shared_minus_reclaimed_pages
        d["expected_false_matches"] = self.expected_false_matches
        for k in ("total_pages", "zero_pages", "shared_pages", "reclaimed_pages", "shared_minus_reclaimed_pages"):
            d[k.replace("_pages", "_mb")] = self.mb(d[k])
        return d


def sharing_report(hashes: np.ndarray, zero: np.ndarray, vms: int = 1, *, page_size: int = PAGE_SIZE) -> SharingReport:
    """Sharing metrics for a set of pages.

    Parameters
    ----------
    hashes : numpy.ndarray
        ``uint64[n]`` content hashes of every page in the set.
    zero : numpy.ndarray
        ``bool[n]`` all-zero flags.
    vms : int
        Number of VMs the pages come from (reported, not used in the arithmetic).

    Returns
    -------
    SharingReport

    Notes
    -----
    Paper §4.2 and Figure 4: shared = pages in content groups of size ≥ 2; reclaimed = total −
    distinct contents.
    """
    hashes = np.asarray(hashes)
    zero = np.asarray(zero)
    if hashes.ndim != 1 or hashes.dtype != np.uint64:
        raise ValueError(f"hashes must be uint64[n], got {hashes.dtype}{hashes.shape}")
    if zero.shape != hashes.shape or zero.dtype != np.bool_:
        raise ValueError(f"zero must be bool[{hashes.shape[0]}], got {zero.dtype}{zero.shape}")
    distinct, shared_pages, _ = count_hashes(hashes)
    n = int(hashes.shape[0])
    return SharingReport(
        vms=int(vms),
        total_pages=n,
        zero_pages=int(zero.sum()),
        shared_pages=int(shared_pages),
        reclaimed_pages=n - int(distinct),
        distinct_pages=int(distinct),
        page_size=page_size,
    )


def vm_count_sweep(pages: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Sharing of the first 1, 2, …, N VMs of a set (paper Figure 4).

    Parameters
    ----------
    pages : pandas.DataFrame
        Page table rows with columns ``vm``, ``hash``, ``zero`` and optionally ``eligible``
        (False for pages made ineligible by a false match; see :mod:`pagecore.pages.verify`).
    order : list of str, optional
        The order in which VMs are added; default: sorted VM names.

    Returns
    -------
    pandas.DataFrame
        One row per VM count ``vms`` with the paper's metrics in pages and MB
        (``total``, ``zero``, ``shared``, ``reclaimed``, ``shared_minus_reclaimed``), their
        percentages of VM memory (``*_pct``), and the attribution of saved pages
        (``intra_vm_saved_pages``, ``inter_vm_saved_pages``, ``zero_saved_pages``), plus
        ``verified`` and ``false_matches``.
    """
    from pagecore.sharing.counts import compact_vm_index, count_sharing

    vm_names = list(order) if order is not None else sorted(pages["vm"].astype(str).unique())
    vm_col = pages["vm"].astype(str)
    missing = [v for v in vm_names if v not in set(vm_col)]
    if missing:
        raise ValueError(f"VMs not in the page tables: {', '.join(missing)}")
    verified = "eligible" in pages.columns
    rows = []
    for i in range(1, len(vm_names) + 1):
        names = vm_names[:i]
        sel = vm_col.isin(names).to_numpy()
        sub = pages[sel]
        # the dtype of analyze_page_tables' VM indices: the same kernel signature (another
        # dtype would compile the counting kernels once more in a fresh clone, ~4 CPU-s)
        idx = compact_vm_index(pd.Categorical(vm_col[sel], categories=names).codes, len(names))
        el = sub["eligible"].to_numpy(np.bool_) if verified else None
        d = count_sharing(
            sub["hash"].to_numpy(np.uint64),
            sub["zero"].to_numpy(np.bool_),
            idx,
            names,
            eligible=el,
            verified=verified,
            top_n=0,
            false_matches=0 if el is None else int((~el).sum()),
        ).to_dict()
        rows.append({k: v for k, v in d.items() if not isinstance(v, dict | list)})
    df = pd.DataFrame(rows)
    for k in ("shared", "reclaimed", "shared_minus_reclaimed", "zero"):
        df[f"{k}_pct"] = 100.0 * df[f"{k}_pages"] / df["total_pages"]
    return df
