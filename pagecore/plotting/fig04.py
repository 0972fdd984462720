"""Figure 4: page sharing performance for 1..N identical VMs."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from pagecore.plotting import OURS_STYLE, PAPER_STYLE, plot_vs_paper, style


def fig04_page_sharing(ours: pd.DataFrame, paper: pd.DataFrame | None = None) -> Figure:
    """Draw both panels of Figure 4.

    Parameters
    ----------
    ours : pandas.DataFrame
        The VM-count sweep (:func:`pagecore.sharing.vm_count_sweep`): columns ``vms``,
        ``total_mb``, ``shared_mb``, ``reclaimed_mb``, ``zero_mb``, ``shared_pct``,
        ``reclaimed_pct``, ``shared_minus_reclaimed_pct``.
    paper : pandas.DataFrame, optional
        :data:`pagecore.paper.FIG04` to overlay (same column names, ``vm_mb`` for VM memory).

    Returns
    -------
    matplotlib.figure.Figure
        Top: absolute MB (VM memory, shared (COW), reclaimed, zero pages). Bottom: % of VM
        memory (shared, reclaimed, shared − reclaimed).
    """
    with style():
        fig = Figure(figsize=(6.4, 8.0))
        top, bot = fig.subplots(2, 1, sharex=True)
        series_top = [
            ("VM memory", "total_mb", "vm_mb", "s", "0.5"),
            ("Shared (COW)", "shared_mb", "shared_mb", "o", "k"),
            ("Reclaimed", "reclaimed_mb", "reclaimed_mb", "^", "0.45"),
            ("Zero pages", "zero_mb", "zero_mb", "D", "tab:blue"),
        ]
        for label, col, pcol, marker, color in series_top:
            plot_vs_paper(
                top, ours["vms"], ours[col], None if paper is None else paper["vms"],
                None if paper is None else paper[pcol], label, color, marker,
            )  # fmt: skip
        top.set_ylabel("Memory (MB)")
        top.set_title("Figure 4: Page sharing performance")
        top.legend(ncol=2, loc="upper left")
        series_bot = [
            ("Shared (COW)", "shared_pct", "o", "k"),
            ("Reclaimed", "reclaimed_pct", "^", "0.45"),
            ("Shared − Reclaimed", "shared_minus_reclaimed_pct", "v", "tab:red"),
        ]
        for label, col, marker, color in series_bot:
            plot_vs_paper(
                bot, ours["vms"], ours[col], None if paper is None else paper["vms"],
                None if paper is None else paper[col], label, color, marker,
            )  # fmt: skip
        bot.set_ylabel("% of VM memory")
        bot.set_xlabel("Number of VMs")
        bot.set_ylim(0, 75)
        bot.set_xticks(list(ours["vms"]))
        bot.legend(ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16))
        fig.tight_layout()
    return fig


def fig04_real_guests(real: pd.DataFrame, synthetic: pd.DataFrame, paper: pd.DataFrame | None = None) -> Figure:
    """Figure 4 measured on real QEMU guests beside the synthetic guests and the paper.

    All three are sweeps with columns ``vms``, ``shared_pct``, ``reclaimed_pct`` (and
    ``zero_pct`` for ours); percentages of VM memory, so guests of different sizes compare.
    """
    with style():
        fig = Figure(figsize=(6.4, 4.4))
        ax = fig.subplots()
        for label, col, marker in (("Shared (COW)", "shared_pct", "o"), ("Reclaimed", "reclaimed_pct", "^")):
            ax.plot(
                real["vms"],
                real[col],
                color="tab:red",
                label=f"{label}: real QEMU guests",
                **{**OURS_STYLE, "marker": marker},
            )
            ax.plot(
                synthetic["vms"],
                synthetic[col],
                color="0.4",
                label=f"{label}: synthetic guests",
                **{**OURS_STYLE, "marker": marker, "linestyle": "--"},
            )
            if paper is not None:
                ax.plot(
                    paper["vms"], paper[col], color="k", label=f"{label}: paper", **{**PAPER_STYLE, "marker": marker}
                )
        ax.plot(
            real["vms"],
            real["zero_pct"],
            color="tab:blue",
            label="Zero pages: real QEMU guests",
            **{**OURS_STYLE, "marker": "D"},
        )
        ax.set_xlabel("Number of VMs")
        ax.set_ylabel("% of VM memory")
        ax.set_ylim(0, 100)
        ax.set_xticks(sorted(set(real["vms"]) | set(synthetic["vms"])))
        ax.set_title("Figure 4 on real guests: page sharing vs number of identical VMs")
        ax.legend(ncol=2, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))
        fig.tight_layout()
    return fig
