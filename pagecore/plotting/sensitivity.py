"""Tornado chart: how far each UNCONFIRMED parameter's range moves one figure's error."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from pagecore.plotting import style


def sensitivity_tornado(table, figure: str):
    """One horizontal bar per parameter that moves ``figure``: the change in median |relative
    error| (percentage points) at the low and the high end of its range against the baseline,
    largest span on top. ``table``: rows ``param, end (baseline|low|high), value, figure,
    median_err, within, compared``."""
    t = table[table["figure"] == figure]
    base = t[t["end"] == "baseline"]["median_err"]
    b = float(base.iloc[0]) if len(base) else float("nan")
    rows = []
    for param, g in t[t["end"] != "baseline"].groupby("param"):
        lo = g[g["end"] == "low"]
        hi = g[g["end"] == "high"]
        dlo = 100 * (float(lo["median_err"].iloc[0]) - b) if len(lo) else 0.0
        dhi = 100 * (float(hi["median_err"].iloc[0]) - b) if len(hi) else 0.0
        vlo = lo["value"].iloc[0] if len(lo) else np.nan
        vhi = hi["value"].iloc[0] if len(hi) else np.nan
        rel = "relative" in g and bool(g["relative"].fillna(False).astype(bool).any())
        rows.append((param, dlo, dhi, vlo, vhi, "×" if rel else ""))
    rows.sort(key=lambda r: abs(r[2] - r[1]) + max(abs(r[1]), abs(r[2])))
    with style():
        fig, ax = plt.subplots(figsize=(7.0, 0.45 * max(len(rows), 1) + 1.4))
        y = np.arange(len(rows))
        ax.barh(y, [r[1] for r in rows], color="tab:blue", label="low end")
        ax.barh(y, [r[2] for r in rows], color="tab:orange", alpha=0.8, label="high end")
        ax.set_yticks(y, [f"{r[0]}  [{r[5]}{r[3]:g}, {r[5]}{r[4]:g}]" for r in rows], fontsize=7)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("change in median |relative error| vs defaults (percentage points)")
        ax.set_title(f"{figure}: sensitivity to unconfirmed parameters (baseline median error {100 * b:.1f} %)")
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
    return fig
