"""Sharing over time: the ESX page-sharing scanner vs Linux KSM at several rates (issue 8)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from pagecore.plotting import style


def scan_sharing_over_time(timeline: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Two panels from :func:`pagecore.experiments.scan.sharing_over_time`: memory saved over time per
    setting (dotted: the exact saving of the same pages) and the work done to get there
    (pages hashed by ESX, pages visited by KSM)."""
    with style():
        fig = Figure(figsize=(10.0, 3.8))
        a, b = fig.subplots(1, 2)
        for (model, name), g in timeline.groupby(["model", "setting"], sort=False):
            ls = "-" if model == "esx" else "--"
            t = g["t"].clip(lower=0.1)
            (line,) = a.plot(t, g["saved_mb"], ls, label=name)
            b.plot(t, g["work_pages"], ls, color=line.get_color(), label=name)
        # the target: what exact counting of the same pages saves. ESX and KSM share it unless
        # KSM leaves zero pages alone; targets within 1 % of each other are one labelled line.
        targets = {
            str(r["model"]).upper(): float(r["exact_saved_mb"]) for _, r in summary.drop_duplicates("model").iterrows()
        }
        lo, hi = min(targets.values()), max(targets.values())
        if hi <= 1.01 * lo:
            rng = f"{lo:,.1f}" if f"{lo:,.1f}" == f"{hi:,.1f}" else f"{lo:,.1f}–{hi:,.1f}"
            a.axhline((lo + hi) / 2, color="0.4", lw=0.8, ls=":", label=f"all there is to find: {rng} MB")
        else:
            for model, mb in targets.items():
                a.axhline(mb, color="0.4", lw=0.8, ls=":", label=f"all there is to find ({model}): {mb:,.1f} MB")
        a.set_ylim(0, 1.08 * max(hi, float(timeline["saved_mb"].max())))  # the target line off the frame
        a.set_xscale("log")
        b.set_xscale("log")
        b.set_yscale("log")
        a.set_xlabel("time since the scanner started (s)")
        a.set_ylabel("memory saved (MB)")
        a.set_title("sharing found over time")
        b.set_xlabel("time since the scanner started (s)")
        b.set_ylabel("pages hashed (ESX) / visited (KSM)")
        b.set_title("scanner work")
        a.legend(fontsize="small")
        fig.tight_layout()
    return fig
