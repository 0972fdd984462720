"""Figure 6: active memory sampling (the toucher, fast/slow averages, estimate, ZPT spike)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pagecore.plotting import PAPER_STYLE, finish_time_axes, style


def _steps(schedule):
    xs, ys = [], []
    for a, b, mb in schedule:
        xs += [a, b]
        ys += [mb, mb]
    return xs, ys


def fig06_active_memory_sampling(vms: pd.DataFrame, schedule, paper: dict | None = None) -> Figure:
    """Draw Figure 6.

    Parameters
    ----------
    vms : pandas.DataFrame
        VM timeline of the one-VM scenario (:mod:`pagecore.timelines`): ``t``, ``active_est``,
        ``active_fast``, ``active_slow``, ``active_true``.
    schedule : list of (from_min, to_min, MB)
        The toucher schedule that drove the workload (an input).
    paper : dict, optional
        :data:`pagecore.paper.FIG06`, overlaid as markers.

    Returns
    -------
    matplotlib.figure.Figure
    """
    v = vms.sort_values("t")
    t = v["t"].to_numpy() / 60
    with style():
        fig = Figure(figsize=(7.0, 5.2))
        ax = fig.subplots()
        xs, ys = _steps(schedule)
        ax.plot(xs, ys, color="k", lw=1.6, label="toucher memory (input)")
        ax.plot(
            t, v["active_true"], color="tab:blue", lw=0.8, alpha=0.6, label="true active (all pages touched per period)"
        )
        ax.plot(t, v["active_est"], color="k", ls=":", lw=1.4, label="estimate = max(slow, fast, fast+current)")
        ax.plot(t, v["active_fast"], color="0.55", ls="--", lw=1.0, label="fast average")
        ax.plot(t, v["active_slow"], color="0.55", ls=":", lw=1.0, label="slow average")
        if paper is not None:
            lo, hi = paper["baseline_mb"]
            ax.axhspan(
                lo, hi, xmin=0, xmax=8.5 / 45, color="tab:orange", alpha=0.15, label="paper: idle baseline 6–16 MB"
            )
            ax.plot(
                [16.5],
                [paper["peak_estimate_mb"]],
                color="tab:red",
                **{**PAPER_STYLE, "marker": "^"},
                label="paper: peak estimate",
            )
            ax.plot(
                [np.mean(paper["zpt_spike_min"])],
                [paper["zpt_spike_mb"]],
                color="tab:red",
                **{**PAPER_STYLE, "marker": "s"},
                label="paper: ZPT spike",
            )
            dec = paper["slow_decay_mb"]
            ax.plot(
                paper["slow_decay_from_min"] + paper["slow_decay_step_min"] * np.arange(len(dec)),
                dec,
                color="tab:red",
                **PAPER_STYLE,
                label="paper: slow average after ZPT",
            )
            ax.annotate(
                "ZPT",
                (np.mean(paper["zpt_spike_min"]), paper["zpt_spike_mb"]),
                xytext=(31, 240),
                arrowprops=dict(arrowstyle="->", lw=0.8),
                fontsize=8,
            )
        finish_time_axes(ax, (0, 45), (0, 320), "Figure 6: Active memory sampling (100 pages / 30 s)")
        fig.tight_layout()
    return fig
