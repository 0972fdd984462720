"""Figure 2: balloon performance (configured vs ballooned VM, dbench throughput)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pagecore.plotting import PAPER_STYLE, style


def fig02_balloon_performance(ours: pd.DataFrame, paper: pd.DataFrame | None = None) -> Figure:
    """Draw Figure 2: throughput bars (configured black, ballooned gray) and the overhead.

    Parameters
    ----------
    ours : pandas.DataFrame
        :func:`pagecore.sim.guestcache.fig02_sweep` rows: ``vm_mb``, ``configured_mbps``,
        ``ballooned_mbps`` (NaN at the boot size), ``overhead_pct``.
    paper : pandas.DataFrame, optional
        :func:`pagecore.experiments.reclaim.paper_fig02` (the paper's bars and overheads), drawn as
        open red markers on the matching bars.
    """
    with style():
        fig = Figure(figsize=(9.0, 4.0))
        ax, ax2 = fig.subplots(1, 2, width_ratios=[1.6, 1.0])
        x = np.arange(len(ours))
        w = 0.38
        conf = ax.bar(x - w / 2, ours["configured_mbps"], w, color="black", label="configured (pagecore)")
        ball = ax.bar(x + w / 2, ours["ballooned_mbps"], w, color="0.65", label="ballooned from 256 MB (pagecore)")
        # values inside the bars, halfway up: the paper's markers sit at the bar tops
        ax.bar_label(conf, fmt="%.1f", fontsize=7, label_type="center", color="white")
        ax.bar_label(ball, fmt="%.1f", fontsize=7, label_type="center", color="black")
        if paper is not None:
            p = paper.set_index("vm_mb").reindex(ours["vm_mb"])
            ax.plot(x - w / 2, p["configured_mbps"], color="tab:red", **PAPER_STYLE, label="paper (digitized)")
            ax.plot(x + w / 2, p["ballooned_mbps"], color="tab:red", **PAPER_STYLE)
        ax.set_xticks(x, [f"{m:g}" for m in ours["vm_mb"]])
        ax.set_xlabel("VM size (MB)")
        ax.set_ylabel("Throughput (MB/s)")
        ax.set_ylim(0, 22)
        ax.set_title("Figure 2: Balloon performance (dbench, 40 clients)")
        ax.legend(loc="upper left", fontsize=7)
        o = ours[np.isfinite(ours["ballooned_mbps"])]
        x2 = np.arange(len(o))
        ax2.bar(x2 - 0.2, o["overhead_pct"], 0.4, color="0.45", label="pagecore (predicted)")
        if paper is not None:
            p = paper.set_index("vm_mb").reindex(o["vm_mb"])
            ax2.bar(x2 + 0.2, p["overhead_pct"], 0.4, color="white", edgecolor="tab:red", hatch="///", label="paper")
        ax2.set_xticks(x2, [f"{m:g}" for m in o["vm_mb"]])
        ax2.set_xlabel("VM size (MB), ballooned from 256 MB")
        ax2.set_ylabel("Ballooning overhead (% of configured)")
        ax2.set_title("Overhead of ballooning")
        ax2.legend(loc="upper right", fontsize=7)
        fig.tight_layout()
    return fig
