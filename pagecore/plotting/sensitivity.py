"""Tornado chart: how far each UNCONFIRMED parameter's range moves one figure's error."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from pagecore.plotting import style


def _shown(v) -> str:
    """A sweep end in a bar's label: a number by ``:g`` (also as read back from a table, text such
    as "0.5"), else the alternative's label as written (e.g. Figure 8's split, "equal")."""
    try:
        return f"{float(v):g}"
    except (TypeError, ValueError):
        return str(v)


def sensitivity_tornado(table, figure: str):
    """One pair of horizontal bars per parameter that moves ``figure``: the change in median
    |relative error| (percentage points) at the low and the high end of its range against the
    baseline, side by side (neither hides the other), largest span on top; a grey band spans
    ± the largest change of the baseline itself when only the simulator seed changes, when the
    table has other seeds (``end`` "seed:<s>"): a bar inside it is no more than the seeds'
    randomness. ``table``: rows ``param, end (baseline|seed:<s>|low|high), value, figure,
    median_err, within, compared``."""
    t = table[table["figure"] == figure]
    base = t[t["end"] == "baseline"]["median_err"]
    b = float(base.iloc[0]) if len(base) else float("nan")
    at_seeds = t[(t["param"] == "baseline") & t["end"].astype(str).str.startswith("seed:")]["median_err"]
    rows = []
    for param, g in t[t["param"] != "baseline"].groupby("param"):
        lo = g[g["end"] == "low"]
        hi = g[g["end"] == "high"]
        dlo = 100 * (float(lo["median_err"].iloc[0]) - b) if len(lo) else float("nan")
        dhi = 100 * (float(hi["median_err"].iloc[0]) - b) if len(hi) else float("nan")
        vlo = lo["value"].iloc[0] if len(lo) else np.nan
        vhi = hi["value"].iloc[0] if len(hi) else np.nan
        rel = "relative" in g and bool(g["relative"].fillna(False).astype(bool).any())
        rows.append((param, dlo, dhi, vlo, vhi, "×" if rel else ""))
    # largest span on top; a bar that could not be scored (NaN) at the bottom, not anywhere
    rows.sort(key=lambda r: np.nan_to_num(abs(r[2] - r[1]) + max(abs(r[1]), abs(r[2])), nan=-1.0))
    with style():
        fig, ax = plt.subplots(figsize=(7.0, 0.45 * max(len(rows), 1) + 1.4))
        y = np.arange(len(rows))
        if len(at_seeds):  # symmetric: the default seed may be the luckiest (Figures 6, 8) or not
            noise = float(np.nanmax(np.abs(100 * (at_seeds.astype(float).to_numpy() - b))))
            ax.axvspan(
                -noise, noise, color="0.88", zorder=0,
                label=f"seed noise ({len(at_seeds) + 1} seeds)",
            )  # fmt: skip
        ax.barh(y + 0.2, [r[1] for r in rows], height=0.4, color="tab:blue", label="low end")
        ax.barh(y - 0.2, [r[2] for r in rows], height=0.4, color="tab:orange", label="high end")
        ax.set_yticks(y, [f"{r[0]}  [{r[5]}{_shown(r[3])}, {r[5]}{_shown(r[4])}]" for r in rows], fontsize=7)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("change in median |relative error| of fitted and predicted numbers vs defaults (points)")
        ax.set_title(f"{figure}: sensitivity to unconfirmed parameters (baseline median error {100 * b:.1f} %)")
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
    return fig
