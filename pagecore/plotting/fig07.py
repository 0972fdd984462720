"""Figure 7: the idle memory tax (two VMs, τ = 0 then 75 %)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from pagecore.plotting import PAPER_STYLE, finish_time_axes, style


def fig07_idle_memory_tax(
    vms: pd.DataFrame, idle_vm: str, active_vm: str, t_change_min: float, paper: dict | None = None
) -> Figure:
    """Draw Figure 7: allocation (solid) and estimated usage (dotted) of both VMs.

    Parameters
    ----------
    vms : pandas.DataFrame
        VM timeline (:mod:`pagecore.timelines`).
    idle_vm, active_vm : str
        VM1 (idle Windows, gray) and VM2 (dbench, black).
    t_change_min : float
        When τ changes from 0 to 75 % (an input of the scenario).
    paper : dict, optional
        :data:`pagecore.paper.FIG07`, overlaid as markers at the regimes' levels.
    """
    end = vms["t"].max() / 60
    with style():
        fig = Figure(figsize=(7.0, 5.2))
        ax = fig.subplots()
        for name, color, lab in ((idle_vm, "0.55", "VM1 (idle Windows)"), (active_vm, "k", "VM2 (dbench Linux)")):
            x = vms[vms["vm"] == name].sort_values("t")
            ax.plot(x["t"] / 60, x["alloc"], color=color, lw=1.6, label=f"{lab} alloc")
            ax.plot(x["t"] / 60, x["active_est"], color=color, ls=":", lw=1.2, label=f"{lab} est. usage")
        ax.axvline(t_change_min, color="tab:red", lw=0.8, ls="--")
        ax.text(t_change_min / 2, 252, "τ = 0%", ha="center", fontsize=9)
        ax.text((t_change_min + end) / 2, 252, "τ = 75%", ha="center", fontsize=9)
        if paper is not None:
            xs0 = [12, 18, 24, 30]
            xs1 = [36, 44, 52, 60]
            ax.plot(
                xs0, [paper["alloc_tau0_mb"]] * 4, color="tab:red", **PAPER_STYLE, label="paper: alloc (both) 179 MB"
            )
            ax.plot(
                xs1,
                [paper["alloc_active_tau75_mb"]] * 4,
                color="tab:red",
                **{**PAPER_STYLE, "marker": "^"},
                label="paper: VM2 alloc (mean)",
            )
            ax.plot(
                xs1,
                [paper["alloc_idle_tau75_mb"]] * 4,
                color="tab:red",
                **{**PAPER_STYLE, "marker": "v"},
                label="paper: VM1 alloc (mean)",
            )
            ax.plot(
                xs0 + xs1,
                [paper["usage_active_tau0_mb"]] * 4 + [paper["usage_active_tau75_mb"]] * 4,
                color="tab:purple",
                **{**PAPER_STYLE, "marker": "x"},
                label="paper: VM2 usage (mean)",
            )
            ax.plot(
                xs0 + xs1,
                [paper["usage_idle_tau0_mb"]] * 4 + [paper["usage_idle_tau75_mb"]] * 4,
                color="tab:purple",
                **{**PAPER_STYLE, "marker": "+"},
                label="paper: VM1 usage (mean)",
            )
        finish_time_axes(ax, (0, end), (0, 265), "Figure 7: Idle memory tax (2 × 256 MB VMs, equal shares, ~360 MB)")
        fig.tight_layout()
    return fig
