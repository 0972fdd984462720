"""What-if sweeps of the replayed memory manager: τ, sample size n, overcommitment."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from pagecore.plotting import OURS_STYLE, PAPER_STYLE, style


def whatif_memory_manager(table: pd.DataFrame, paper_fig07: dict | None = None) -> Figure:
    """Three panels from :func:`pagecore.experiments.memory_manager.whatif_metrics` rows (column ``dim`` =
    ``tau``, ``sample_pages`` or ``overcommit``)."""
    with style():
        fig = Figure(figsize=(11.0, 5.0))  # legends below the panels, clear of the twin axes
        a, b, c = fig.subplots(1, 3)
        t = table[table["dim"] == "tau"].sort_values("value")
        a.plot(t["value"], t["idle_alloc_mb"], color="0.5", label="idle VM alloc", **OURS_STYLE)
        a.plot(t["value"], t["active_alloc_mb"], color="k", label="dbench VM alloc", **OURS_STYLE)
        # guest paging is a rate (MB/min): its own axis on the right, labelled, in its colour
        a2 = a.twinx()
        a2.plot(
            t["value"],
            t["active_guest_paging_mb_min"],
            color="tab:blue",
            label="dbench guest paging (MB/min, right axis)",
            **{**OURS_STYLE, "linestyle": "--"},
        )
        a2.set_ylabel("guest paging (MB/min)", color="tab:blue")
        a2.tick_params(axis="y", colors="tab:blue")
        a2.spines["right"].set_visible(True)
        a2.set_ylim(bottom=0)
        if paper_fig07 is not None:
            a.plot(
                [0.0, 0.75],
                [paper_fig07["alloc_tau0_mb"], paper_fig07["alloc_idle_tau75_mb"]],
                color="tab:red",
                **{**PAPER_STYLE, "marker": "v"},
                label="paper: idle VM",
            )
            a.plot(
                [0.0, 0.75],
                [paper_fig07["alloc_tau0_mb"], paper_fig07["alloc_active_tau75_mb"]],
                color="tab:red",
                **{**PAPER_STYLE, "marker": "^"},
                label="paper: dbench VM",
            )
        a.set_xlabel("tax rate τ")
        a.set_ylabel("allocation (MB)")
        a.set_title("Idle memory tax (Fig. 7 scenario)", loc="left")
        _legend(a, a2)
        s = table[table["dim"] == "sample_pages"].sort_values("value")
        b.plot(s["value"], s["rmse_mb"], color="k", label="RMSE of estimate (max of averages)", **OURS_STYLE)
        b.plot(s["value"], s["bias_mb"], color="0.5", label="bias (est − true)", **OURS_STYLE)
        if "sample_rmse_mb" in s:
            b.plot(s["value"], s["sample_rmse_mb"], color="tab:blue", label="RMSE of raw sample t/n", **OURS_STYLE)
        b.set_xscale("log")
        b.axvline(100, color="tab:red", ls="--", lw=0.8)
        b.text(100, b.get_ylim()[1] * 0.95, " paper: n = 100", color="tab:red", fontsize=7, va="top")
        b.set_xlabel("pages sampled per 30 s (n)")
        b.set_ylabel("MB")
        b.set_title("Sampling error (Fig. 6 scenario)", loc="left")
        b.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2))
        o = table[table["dim"] == "overcommit"].sort_values("value")
        c.plot(o["value"], o["mean_balloon_mb"], color="0.5", label="mean balloon", **OURS_STYLE)
        c.plot(o["value"], o["swapped_out_mb"], color="k", label="swapped out", **OURS_STYLE)
        c.plot(o["value"], o["guest_pageouts_mb"], color="tab:blue", label="guest paging", **OURS_STYLE)
        c.set_ylabel("MB over the run")
        c2 = c.twinx()
        c2.plot(
            o["value"], o["time_not_high_pct"], color="tab:green", ls="--", marker="d",
            label="time not in high state (%, right axis)",
        )  # fmt: skip
        c2.set_ylabel("% of time not in high", color="tab:green")
        c2.tick_params(axis="y", colors="tab:green")
        c2.spines["right"].set_visible(True)
        c.axvline(1632 / 1024, color="tab:red", ls="--", lw=0.8)
        c.text(1632 / 1024, c.get_ylim()[1] * 0.95, " paper", color="tab:red", fontsize=7, va="top")
        c.set_xlabel("overcommit (Σ max+overhead / VM memory)")
        c.set_title("Overcommitment (Fig. 8 scenario)", loc="left")
        _legend(c, c2)
        fig.tight_layout()
    return fig


def _legend(ax, twin) -> None:
    """One legend for an axis and its twin, so the right-axis series is labelled too."""
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2))
