"""How long identical pages stay identical, and what a scanner at rate R can catch (issue 8)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from pagecore.plotting import OURS_STYLE, style


def scan_duplicate_lifetime(surv: pd.DataFrame, catch: pd.DataFrame) -> Figure:
    """Left: fraction of duplicate episodes lasting longer than x; right: fraction of episodes a
    scanner can ever catch vs its full-pass time (:func:`pagecore.experiments.scan.duplicate_lifetimes`)."""
    with style():
        fig = Figure(figsize=(10.0, 3.8))
        a, b = fig.subplots(1, 2)
        a.step(surv["x"], surv["fraction"], where="post", color="k")
        a.set_xlabel("episode length x (s)")
        a.set_ylabel("fraction of duplicate episodes longer than x")
        cf = surv["censored_fraction"].iloc[0] if len(surv) else 0.0
        a.set_title(f"duplicate lifetimes ({100 * cf:.0f} % still running at the end)")
        a.set_ylim(0, 1.02)
        for model, g in catch.groupby("model", sort=False):
            label = "ESX random scan (per-VM pass)" if model == "esx" else "KSM (full scan, 2 visits)"
            b.plot(g["pass_s"], g["fraction"], label=label, **OURS_STYLE)
            for _, r in g.iterrows():
                b.annotate(f"{r['rate']:g}", (r["pass_s"], r["fraction"]), fontsize=6, alpha=0.7)
        b.set_xscale("log")
        b.set_xlabel("time to scan every page once (s); labels: pages/s")
        b.set_ylabel("fraction of episodes catchable")
        b.set_ylim(0, 1.02)
        b.legend(fontsize="small")
        fig.tight_layout()
    return fig
