"""The reclamation ladder: zero pages, sharing, compression and what is left, per VM set."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pagecore.plotting import style

STEP_COLORS = ("0.75", "tab:blue", "tab:cyan", "tab:green", "tab:red")


def compression_ladder(ladders: dict[str, pd.DataFrame]) -> Figure:
    """One stacked bar per VM set: MB won back by each step and MB left for ballooning or swap.

    Parameters
    ----------
    ladders : dict of name -> DataFrame
        :func:`pagecore.sharing.compress.reclamation_ladder` results (``step``, ``saved_mb``,
        ``resident_mb``); the ``salting removes`` row is drawn as a hatched outline above the
        inter-VM step.
    """
    with style():
        fig = Figure(figsize=(max(4.5, 1.6 * len(ladders) + 2.5), 4.2))
        ax = fig.subplots()
        names = list(ladders)
        x = np.arange(len(names))
        labelled = set()
        for i, name in enumerate(names):
            lad = ladders[name]
            steps = lad[~lad["step"].str.startswith("salting removes")]
            total = float(steps["saved_mb"].sum() + steps["resident_mb"].iloc[-1]) or 1.0
            bottom = 0.0
            for j, (_, r) in enumerate(steps.iterrows()):
                h = r["saved_mb"] if not r["step"].startswith("remains") else r["resident_mb"]
                h = 100 * h / total
                color = STEP_COLORS[min(j, len(STEP_COLORS) - 1)]
                label = r["step"] if r["step"] not in labelled else None
                labelled.add(r["step"])
                ax.bar(x[i], h, bottom=bottom, color=color, width=0.6, label=label, edgecolor="white", lw=0.5)
                bottom += h
            lost = lad[lad["step"].str.startswith("salting removes")]["saved_mb"]
            if len(lost) and lost.iloc[0] > 0:
                # pages salting keeps from inter-VM sharing stay resident: hatch that share of
                # the remainder (at the top of the bar)
                ax.bar(
                    x[i],
                    100 * lost.iloc[0] / total,
                    bottom=100 - 100 * lost.iloc[0] / total,
                    fill=False,
                    hatch="//",
                    width=0.6,
                    edgecolor="black",
                    lw=0.5,
                    label="kept resident by salting (inter-VM sharing lost)" if "salt" not in labelled else None,
                )
                labelled.add("salt")
        ax.set_xticks(x, names)
        ax.set_ylabel("share of the VM set's memory (%)")
        ax.set_ylim(0, 100)
        ax.set_title("won back, step by step")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
    return fig
