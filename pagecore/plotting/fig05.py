"""Figure 5: real-world page sharing (a table in the paper; bars here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pagecore.plotting import style


def fig05_real_world_sharing(ours: pd.DataFrame, paper: pd.DataFrame | None = None) -> Figure:
    """Shared and reclaimed memory (% of guest memory) per workload, ours beside the paper's.

    Parameters
    ----------
    ours : pandas.DataFrame
        :func:`pagecore.sharing.tables.fig05_table` rows: ``workload``, ``shared_pct``,
        ``reclaimed_pct``, ``shared_mb``, ``reclaimed_mb``, ``total_mb``.
    paper : pandas.DataFrame, optional
        :data:`pagecore.paper.FIG05`.
    """
    with style():
        fig = Figure(figsize=(6.4, 4.2))
        ax = fig.subplots()
        w = ours["workload"].tolist()
        x = np.arange(len(w))
        width = 0.2
        bars = [
            ("Shared (pagecore)", ours["shared_pct"], "0.35", None),
            ("Reclaimed (pagecore)", ours["reclaimed_pct"], "0.7", None),
        ]
        if paper is not None:
            p = paper.set_index("workload").reindex(w)
            bars += [
                ("Shared (paper)", p["shared_pct"].to_numpy(), "white", "0.35"),
                ("Reclaimed (paper)", p["reclaimed_pct"].to_numpy(), "white", "0.7"),
            ]
        order = [0, 2, 1, 3] if paper is not None else [0, 1]
        for k, idx in enumerate(order):
            label, vals, face, hatch_color = bars[idx]
            pos = x + (k - (len(order) - 1) / 2) * width
            kw = dict(color=face, edgecolor=hatch_color or "black", linewidth=0.8)
            if hatch_color:
                kw["hatch"] = "///"
            rects = ax.bar(pos, vals, width, label=label, **kw)
            ax.bar_label(rects, fmt="%.1f", fontsize=6, padding=1)
        biased = ours["sharing_underestimated"] if "sharing_underestimated" in ours else [False] * len(w)
        labels = [
            f"{a}{'*' if b else ''}\n{t:,.0f} MB, {n} VMs"
            for a, t, n, b in zip(w, ours["total_mb"], ours["vms"], biased, strict=True)
        ]
        if any(biased):
            fig.text(0.01, 0.01, "* filtered kdump (makedumpfile -d): sharing underestimated", fontsize=6)
        ax.set_xticks(x, labels)
        ax.set_ylabel("% of guest memory")
        ax.set_title("Figure 5: Real-world page sharing")
        ax.legend(ncol=2, loc="upper right")
        ax.set_ylim(0, max(60.0, float(np.nanmax(ours["shared_pct"])) + 10))
        fig.tight_layout()
    return fig
