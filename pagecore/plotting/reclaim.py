"""Beyond the paper's figures: balloon vs host demand paging (§3.1, §3.3) and hot I/O page
remapping (§7)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pagecore.plotting import style

METHOD_STYLE = {"balloon": dict(color="0.45", marker="s"), "host paging": dict(color="tab:red", marker="o")}


def reclaim_balloon_vs_paging(paging: pd.DataFrame) -> Figure:
    """Throughput, and host faults / double paging, vs memory reclaimed, one column per VM size.

    Parameters
    ----------
    paging : pandas.DataFrame
        :func:`pagecore.sim.guestcache.paging_sweep` rows with a ``boot_mb`` column.
    """
    boots = sorted(paging["boot_mb"].unique(), reverse=True)
    with style():
        fig = Figure(figsize=(4.2 * len(boots), 6.4))
        axes = np.atleast_2d(fig.subplots(2, len(boots), squeeze=False))
        for j, boot in enumerate(boots):
            d = paging[paging["boot_mb"] == boot]
            top, bot = axes[0, j], axes[1, j]
            for method, st in METHOD_STYLE.items():
                m = d[d["method"] == method].sort_values("reclaim_mb")
                top.plot(m["reclaim_mb"], m["throughput_mbps"], label=method, **st)
                bot.plot(m["reclaim_mb"], m["misses_per_1000"], ls=":", label=f"{method}: guest cache misses", **st)
            h = d[d["method"] == "host paging"].sort_values("reclaim_mb")
            bot.plot(
                h["reclaim_mb"], h["host_faults_per_1000"], color="tab:red", ls="-", label="host paging: host faults"
            )
            bot.plot(
                h["reclaim_mb"],
                h["double_paging_per_1000"],
                color="tab:purple",
                marker="^",
                label="double paging events",
            )
            top.set_title(f"{boot:g} MB VM (dbench trace)")
            top.set_ylabel("Throughput (MB/s)")
            top.set_ylim(0, None)
            bot.set_ylabel("Events per 1000 references (symlog)")
            bot.set_xlabel("Memory reclaimed (MB)")
            bot.set_yscale("symlog", linthresh=1.0)
            bot.set_ylim(0, None)
            if j == 0:
                top.legend(fontsize=7)
                bot.legend(fontsize=7)
        fig.suptitle("Ballooning vs random host demand paging reclaiming the same memory (§3.1, §3.3)", fontsize=10)
        fig.tight_layout()
    return fig


def io_remapping(threshold: pd.DataFrame, scarcity: pd.DataFrame, scarcity_threshold: int) -> Figure:
    """Page copies vs hot threshold per workload; copies vs low pages, random vs cost-benefit.

    Parameters
    ----------
    threshold : pandas.DataFrame
        :func:`pagecore.sim.ioremap.threshold_sweep` rows (threshold −1 = no remapping).
    scarcity : pandas.DataFrame
        :func:`pagecore.sim.ioremap.scarcity_sweep` rows.
    """
    with style():
        fig = Figure(figsize=(10.0, 5.0))
        ax, ax2 = fig.subplots(1, 2)
        colors = {"network": "tab:blue", "disk": "0.4", "mixed": "tab:green"}
        offs: dict[float, list[str]] = {}  # copies without remapping -> workloads with that baseline
        for i, (w, d) in enumerate(threshold.groupby("workload", sort=False)):
            c = colors.get(w, f"C{i}")
            on = d[d["threshold"] >= 0].sort_values("threshold")
            offs.setdefault(float(d[d["threshold"] < 0]["copies"].item()), []).append(w)
            ax.plot(on["threshold"] + 1, on["copies"], color=c, marker="o", label=f"{w}: remapping")
        # Without remapping every workload copies about once per high I/O, so their baselines
        # coincide on a log axis: baselines within 5 % of each other share one dashed line
        # (labelled with their range) instead of lines drawn on top of each other.
        groups: list[list[float]] = []
        for off in sorted(offs):
            if groups and off <= 1.05 * groups[-1][0]:
                groups[-1].append(off)
            else:
                groups.append([off])
        for g in groups:
            ws = [w for off in g for w in offs[off]]
            who = "every workload" if len(ws) == len(threshold["workload"].unique()) > 1 else ", ".join(ws)
            rng = f"{g[0]:,.0f}" if g[0] == g[-1] else f"{g[0]:,.0f}–{g[-1]:,.0f}"
            c = colors.get(ws[0], "0.3") if len(ws) == 1 else "0.3"
            ax.axhline((g[0] + g[-1]) / 2, color=c, ls="--", lw=1.0, label=f"no remapping ({who}): {rng}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Hot threshold + 1 (I/Os before a page is remapped low)")
        ax.set_ylabel("Page copies (bounce + remap)")
        ax.set_title("Copies vs hot threshold (§7)")
        ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.15))  # below: no line hidden
        for pol, st in (
            ("no remapping", dict(color="0.3", ls="--")),
            ("random", dict(color="tab:orange", marker="o")),
            ("cost_benefit", dict(color="tab:blue", marker="s")),
        ):
            d = scarcity[scarcity["policy"] == pol].sort_values("low_pages")
            ax2.plot(d["low_pages"], d["copies"] / 1e6, label=pol.replace("_", "-"), **st)
        ax2.set_xscale("log")
        ax2.set_ylim(0, None)
        ax2.set_xlabel("Low pages the guest may hold (none free)")
        ax2.set_ylabel("Page copies (millions)")
        ax2.set_title(f"Scarce low memory: which page goes back high (threshold {scarcity_threshold})")
        ax2.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.15))
        fig.tight_layout()
    return fig
