"""Large pages: how much sharing 2 MiB pages hide, and how few must be broken to get it back."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pagecore.plotting import style


def large_page_breaking(curves: dict[str, pd.DataFrame], regions: dict[str, pd.DataFrame] | None = None) -> Figure:
    """Savings reached vs large pages broken (greedy, most profitable first), one line per guest set.

    Parameters
    ----------
    curves : dict of name -> DataFrame
        :func:`pagecore.sharing.largepages.large_page_savings` curves (``broken``,
        ``saved_fraction``, ``saved_mb``).
    regions : dict of name -> DataFrame, optional
        Its per-region tables; adds a panel with the regions sorted by attributed savings.
    """
    with style():
        ncol = 2 if regions else 1
        fig = Figure(figsize=(5.2 * ncol, 3.9))
        axes = np.atleast_1d(fig.subplots(1, ncol))
        a = axes[0]
        for name, c in curves.items():
            n = max(int(c["broken"].iloc[-1]), 1)
            a.plot(100 * c["broken"] / n, 100 * c["saved_fraction"], label=f"{name} ({n:,} large pages)")
        a.plot([0, 100], [0, 100], color="0.6", lw=0.8, ls=":", label="proportional")
        a.set_xlabel("large pages broken (% of all)")
        a.set_ylabel("sharing + zero-page savings reached (%)")
        a.set_xlim(0, 100)
        a.set_ylim(0, 101)
        a.set_title("breaking the most profitable large pages first")
        a.legend(fontsize="small", loc="lower right")
        if regions:
            b = axes[1]
            for name, r in regions.items():
                v = np.sort(r["attributed"].to_numpy())[::-1] * 4096 / 2**20
                b.plot(np.arange(1, len(v) + 1), v, label=name)
            b.set_xlabel("2 MiB region (sorted by savings inside it)")
            b.set_ylabel("savings inside the region (MB)")
            b.set_xscale("log")
            b.set_title("where the savings lie")
            b.legend(fontsize="small")
        fig.tight_layout()
    return fig
