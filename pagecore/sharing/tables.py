"""Tables in the paper's shapes."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd


def fig05_table(reports: Mapping[str, dict]) -> pd.DataFrame:
    """One row per VM set, shaped like the paper's Figure 5 ("Real-World Page Sharing").

    Parameters
    ----------
    reports : mapping
        Set name -> :func:`pagecore.experiments.analyze.analyze_page_tables` result.

    Returns
    -------
    pandas.DataFrame
        ``workload, vms, total_mb, shared_mb, shared_pct, reclaimed_mb, reclaimed_pct,
        zero_reclaimed_mb, intra_vm_saved_mb, inter_vm_saved_mb, verified, false_matches,
        biased_vms, sharing_underestimated`` (the last two name VMs whose dumps left page classes
        out, see :func:`pagecore.dumps.dumplevel.bias_of`).
    """
    rows = []
    for name, r in reports.items():
        mb = r["total_mb"] / r["total_pages"] if r["total_pages"] else 0.0
        rows.append(
            {
                "workload": name,
                "vms": r["vms"],
                "total_mb": r["total_mb"],
                "shared_mb": r["shared_mb"],
                "shared_pct": 100.0 * r["shared_pages"] / r["total_pages"] if r["total_pages"] else 0.0,
                "reclaimed_mb": r["reclaimed_mb"],
                "reclaimed_pct": 100.0 * r["reclaimed_pages"] / r["total_pages"] if r["total_pages"] else 0.0,
                "zero_reclaimed_mb": r["zero_saved_pages"] * mb,
                "intra_vm_saved_mb": r["intra_vm_saved_pages"] * mb,
                "inter_vm_saved_mb": r["inter_vm_saved_pages"] * mb,
                "verified": r["verified"],
                "false_matches": r["false_matches"],
                # VMs from filtered kdumps (makedumpfile -d): their sharing is underestimated
                "biased_vms": ", ".join(sorted({b["vm"] for b in r.get("biased_inputs", [])})),
                "sharing_underestimated": bool(r.get("sharing_underestimated", False)),
            }
        )
    return pd.DataFrame(rows)
