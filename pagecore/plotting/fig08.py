"""Figure 8: dynamic reallocation (state timeline; aggregate, MetaFrame and SQL panels)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from pagecore.plotting import PAPER_STYLE, style

STATES = ("high", "soft", "hard", "low")
#: (column, label, colour, line style): one colour per quantity, shared by our line and the
#: paper's markers, so Balloon and Shared (both grey before) tell apart in colour and in print.
SERIES = (
    ("alloc", "Alloc", "k", "-"),
    ("active", "Active", "tab:orange", ":"),
    ("balloon", "Balloon", "tab:blue", "-"),
    ("shared", "Shared", "tab:green", "--"),
)
MARKERS = {"alloc": "o", "active": "x", "balloon": "s", "shared": "^"}


def fig08_dynamic_reallocation(
    panels: pd.DataFrame,
    host: pd.DataFrame,
    paper: pd.DataFrame | None = None,
    paper_states: pd.DataFrame | None = None,
) -> Figure:
    """Draw Figure 8's four panels.

    Parameters
    ----------
    panels : pandas.DataFrame
        :func:`pagecore.experiments.memory_manager.fig08_panels`: ``t_min`` and ``total_*``, ``citrix_*``,
        ``sql_*`` columns for alloc, active, balloon, shared (MB).
    host : pandas.DataFrame
        Host timeline (``t``, ``state``).
    paper, paper_states : pandas.DataFrame, optional
        :data:`pagecore.paper.FIG08` and :data:`pagecore.paper.FIG08_STATES` to overlay.
    """
    with style():
        fig = Figure(figsize=(7.0, 9.0))
        axs = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [0.8, 2, 1.5, 1.5]})
        ax = axs[0]
        # ours just above each state's row and the paper's just below, both clear of the frame
        lvl = host["state"].astype(str).map({s: i for i, s in enumerate(STATES)}) - 0.12
        ax.step(host["t"] / 60, lvl, where="post", color="k", lw=1.0, label="pagecore")
        if paper_states is not None:
            for _, r in paper_states.iterrows():
                y = STATES.index(r["state"]) + 0.12
                ax.plot(
                    [r["from_min"], r["to_min"]],
                    [y, y],
                    color="tab:red",
                    lw=2.5,
                    alpha=0.6,
                    solid_capstyle="butt",
                    label="paper" if _ == 0 else None,
                )
        ax.set_yticks(range(4), STATES)
        ax.set_ylim(3.6, -0.6)
        ax.set_title("(a) Free-memory state", loc="left")
        ax.legend(loc="upper right", bbox_to_anchor=(1.0, 1.32), ncol=2, fontsize=7)
        for ax, who, title, top in (
            (axs[1], "total", "(b) All VMs", 1450),
            (axs[2], "citrix", "(c) Citrix MetaFrame", 330),
            (axs[3], "sql", "(d) SQL Server", 330),
        ):
            for key, lab, color, ls in SERIES:
                ax.plot(panels["t_min"], panels[f"{who}_{key}"], color=color, ls=ls, lw=1.2, label=lab)
                if paper is not None:
                    ax.plot(
                        paper["t_min"],
                        paper[f"{who}_{key}"],
                        color=color,
                        **{**PAPER_STYLE, "marker": MARKERS[key], "markersize": 4},
                        label=f"paper {lab}",
                    )
            ax.set_ylim(0, top)
            ax.set_ylabel("Memory (MB)")
            ax.set_title(title, loc="left")
        axs[1].legend(ncol=4, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 1.0))
        axs[3].set_xlabel("Time (min)")
        axs[3].set_xlim(0, 90)
        fig.suptitle("Figure 8: Dynamic reallocation (5 VMs, 1 GB)", fontsize=10)
        fig.tight_layout()
    return fig
