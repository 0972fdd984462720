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


def fig05_structure(table: pd.DataFrame) -> pd.DataFrame:
    """How a Figure-5-shaped table's sharing is structured, by arithmetic on its columns alone.

    A content held in ``k`` copies adds ``k`` pages to *shared*, ``k - 1`` to *reclaimed* and one
    to *distinct* = shared − reclaimed (Figure 4's "Shared − Reclaimed", one copy of each shared
    page). Leaving the zero pages out (the zero page's one copy is negligible), with ``S``, ``R``,
    ``D`` the non-zero shared, reclaimed and distinct MB of a host of ``n`` VMs,
    ``R − D = Σ (k − 2) d_k``, so

    * the non-zero content held in ``n`` or more copies (e.g. one in every VM) is at most
      ``(R − D) / (n − 2)`` MB (``max_common_mb``);
    * the non-zero content held in exactly two copies is at least ``2D − R`` MB (``min_pair_mb``);
    * ``copies`` = ``S / D`` is the mean number of copies of a shared non-zero content.

    These hold for any content, so they test a model's *structure* against the paper's table
    (the per-OS catalogue of :mod:`pagecore.synth.guests` puts its OS pages in every guest).

    Parameters
    ----------
    table : DataFrame
        ``workload, vms, shared_mb, reclaimed_mb, zero_reclaimed_mb`` (:func:`fig05_table` or
        ``pagecore.paper.FIG05``); a row whose zero MB is unknown gets NaN in every column but
        ``distinct_mb``.

    Returns
    -------
    DataFrame
        ``workload, nonzero_shared_mb, nonzero_reclaimed_mb, distinct_mb, copies, max_common_mb,
        min_pair_mb``.
    """
    z = table["zero_reclaimed_mb"].astype(float)
    s = table["shared_mb"].astype(float) - z
    r = table["reclaimed_mb"].astype(float) - z
    d = table["shared_mb"].astype(float) - table["reclaimed_mb"].astype(float)
    n = table["vms"].astype(float)
    return pd.DataFrame(
        {
            "workload": table["workload"].to_numpy(),
            "nonzero_shared_mb": s.to_numpy(),
            "nonzero_reclaimed_mb": r.to_numpy(),
            "distinct_mb": d.to_numpy(),
            "copies": (s / d).to_numpy(),
            "max_common_mb": ((r - d) / (n - 2).where(n > 2)).to_numpy(),
            "min_pair_mb": (2 * d - r).clip(lower=0).to_numpy(),
        }
    )


def fig05_scaled(table: pd.DataFrame, src: str, dst: str) -> pd.DataFrame:
    """Host ``dst``'s zero and non-zero MB predicted from host ``src``'s by two linear scalings.

    ``per_vm`` scales by the number of VMs (non-zero reclaimed by ``n − 1``: content common to
    every guest of the OS, reclaimed once per extra guest); ``per_mb`` scales by guest memory.
    Any mix ``a × count + b × MB`` with ``a, b ≥ 0`` fitted to ``src`` predicts between the two.

    Returns
    -------
    DataFrame
        index ``zero_reclaimed_mb, nonzero_reclaimed_mb, nonzero_shared_mb``; columns
        ``per_vm, per_mb`` and ``actual`` (``dst``'s own value).
    """
    t = table.set_index("workload")
    st = fig05_structure(table).set_index("workload")
    a, b = t.loc[src], t.loc[dst]
    rows = {
        "zero_reclaimed_mb": (b["vms"] / a["vms"], float(a["zero_reclaimed_mb"]), float(b["zero_reclaimed_mb"])),
        "nonzero_reclaimed_mb": (
            (b["vms"] - 1) / (a["vms"] - 1),
            float(st.at[src, "nonzero_reclaimed_mb"]),
            float(st.at[dst, "nonzero_reclaimed_mb"]),
        ),
        "nonzero_shared_mb": (
            b["vms"] / a["vms"],
            float(st.at[src, "nonzero_shared_mb"]),
            float(st.at[dst, "nonzero_shared_mb"]),
        ),
    }
    mb = float(b["total_mb"]) / float(a["total_mb"])
    return pd.DataFrame({k: {"per_vm": f * v, "per_mb": mb * v, "actual": x} for k, (f, v, x) in rows.items()}).T
