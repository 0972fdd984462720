"""Sharing over time on a set of guests: the ESX scanner and KSM side by side (issue 8).

Thin glue between page tables, :mod:`pagecore.sharing.scanner`, :mod:`pagecore.sharing.ksm` and
:mod:`pagecore.sharing.lifetime`, used by the workflow's ``scan`` rules.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pagecore import PAGE_SIZE
from pagecore.sharing import count_sharing
from pagecore.sharing.counts import compact_vm_index
from pagecore.sharing.ksm import KsmSettings, emulate_ksm
from pagecore.sharing.lifetime import catchable_fraction, duplicate_episodes, ksm_catchable_fraction, survival
from pagecore.sharing.pagehistory import PageHistory, with_random_writes
from pagecore.sharing.scanner import ScannerSettings, emulate_scanner

MB = 1 << 20


def history_from_tables(paths) -> PageHistory:
    """A static page history of the pages in the given page tables."""
    from pagecore.pages.tables import read_page_tables

    df = read_page_tables(paths, columns=["vm", "gpfn", "hash", "zero"]).to_pandas()
    vm, names = df["vm"].astype(str).factorize()
    return PageHistory.from_pages(df["hash"].to_numpy(), df["zero"].to_numpy(), vm, list(names), df["gpfn"].to_numpy())


def sharing_over_time(history: PageHistory, esx: list[dict], ksm: list[dict], *, seed: int = 0, use_zero_pages=False):
    """Run every ESX scanner setting (``name``, ``rate_vm``, ``rate_total``) and every KSM setting
    (``name``, ``pages_to_scan``, ``sleep_ms``) to convergence.

    Returns ``(timeline, summary)``: timeline rows (``model``, ``setting``, ``t``, ``saved_mb``,
    ``work_pages`` = pages hashed (ESX) or visited (KSM), ``table_pct`` = ESX hash-table memory
    as % of guest memory); summary one row per setting with the final saved MB, the exact saved
    MB of the same pages, ``seconds_to_converge`` and the cost columns.
    """
    rows, summ = [], []
    exact = count_sharing(
        history.content_hash[history.content], history.content == history.zero_content,
        compact_vm_index(history.vm, len(history.vm_names)), history.vm_names, use_zero_pages=use_zero_pages,
    ).to_dict()  # fmt: skip
    for s in esx:
        r = emulate_scanner(
            history, ScannerSettings(scan_rate_vm=s["rate_vm"], scan_rate_total=s["rate_total"], seed=seed)
        )
        tl = r.timeline
        rows.append(
            pd.DataFrame(
                {
                    "model": "esx",
                    "setting": s["name"],
                    "t": tl["t"],
                    "saved_mb": tl["reclaimed_pages"] * PAGE_SIZE / MB,
                    "work_pages": tl["pages_hashed"],
                    "table_pct": tl["table_pct_of_memory"],
                }
            )
        )
        f = r.final
        summ.append(
            {
                "model": "esx",
                "setting": s["name"],
                "saved_mb": f["reclaimed_pages"] * PAGE_SIZE / MB,
                "exact_saved_mb": exact["reclaimed_pages"] * PAGE_SIZE / MB,
                "seconds_to_converge": r.seconds_to_converge,
                "work_pages": f["pages_hashed"],
                "bytes_compared": f["bytes_compared"],
                "table_pct": f["table_pct_of_memory"],
            }
        )
    for s in ksm:
        st = KsmSettings(pages_to_scan=s["pages_to_scan"], sleep_millisecs=s["sleep_ms"], use_zero_pages=use_zero_pages)
        r = emulate_ksm(history, st)
        tl = r.timeline
        saved = tl["pages_sharing"] + tl["ksm_zero_pages"]
        rows.append(
            pd.DataFrame(
                {
                    "model": "ksm",
                    "setting": s["name"],
                    "t": tl["t"],
                    "saved_mb": saved * PAGE_SIZE / MB,
                    "work_pages": tl["pages_scanned"],
                    "table_pct": np.nan,
                }
            )
        )
        f = r.final
        k = exact["ksm"]
        summ.append(
            {
                "model": "ksm",
                "setting": s["name"],
                "saved_mb": (f["pages_sharing"] + f["ksm_zero_pages"]) * PAGE_SIZE / MB,
                "exact_saved_mb": (k["pages_sharing"] + k["ksm_zero_pages"]) * PAGE_SIZE / MB,
                "seconds_to_converge": r.seconds_to_converge,
                "work_pages": f["pages_scanned"],
                "bytes_compared": np.nan,
                "table_pct": 100.0
                * (f["pages_shared"] + f["pages_sharing"] + f["pages_unshared"])
                * 64
                / max(1, history.pages * PAGE_SIZE),
            }
        )
    return pd.concat(rows, ignore_index=True), pd.DataFrame(summ)


def duplicate_lifetimes(history: PageHistory, writes: dict, interval_s: float, rates, ksm_rates, *, seed: int = 0):
    """Add the synthetic write trace ``writes`` (keys of :func:`with_random_writes`), snapshot every
    ``interval_s`` and measure duplicate episodes. Returns ``(survival, catch)`` DataFrames;
    ``catch`` has ``model`` = esx (per-VM rates) or ksm (system-wide pages/s)."""
    h = with_random_writes(history, seed=seed, **writes)
    times = np.arange(0.0, writes["duration_s"] + 1e-9, interval_s)
    return _lifetimes(h, history, times, rates, ksm_rates)


def series_lifetimes(history: PageHistory, times, rates, ksm_rates):
    """Duplicate lifetimes from a series of real reads (``pagecore live --count N``): the
    history's own writes, observed at the read ``times`` — no synthetic write trace. Returns
    ``(survival, catch)`` as :func:`duplicate_lifetimes` does."""
    times = np.asarray(times, float)
    if len(times) < 2:
        raise ValueError("duplicate lifetimes need at least two reads")
    return _lifetimes(history, history, times, rates, ksm_rates)


def _lifetimes(h: PageHistory, base: PageHistory, times, rates, ksm_rates):
    """Duplicate episodes of ``h`` seen at ``times``: survival and the fraction a scanner at each
    rate could catch (sized by ``base``'s pages)."""
    ep = duplicate_episodes(h, times)
    surv = survival(ep, times[:-1])
    surv["censored_fraction"] = float(ep["censored"].mean()) if len(ep) else np.nan
    per_vm = base.pages / max(1, len(base.vm_names))
    esx = catchable_fraction(ep, per_vm, rates).assign(model="esx")
    ksm = ksm_catchable_fraction(ep, base.pages, ksm_rates).assign(model="ksm")
    return surv, pd.concat([esx, ksm], ignore_index=True)
