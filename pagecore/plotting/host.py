"""The host what-if: VMs that fit and memory won per mechanism, per policy, against host size."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pagecore.plotting import style
from pagecore.vocab import MECHANISMS

_COLORS = {
    "zero": "#9e9e9e",
    "share_intra": "#1f77b4",
    "share_inter": "#17becf",
    "compress": "#9467bd",
    "balloon": "#ff7f0e",
    "swap": "#d62728",
    "free_report": "#2ca02c",
}


def host_whatif(rows: pd.DataFrame, timelines: pd.DataFrame | None = None) -> Figure:
    """Three panels: (a) VMs of the mix that fit vs host memory, one line per policy; (b) memory
    won per mechanism at that consolidation, stacked, per policy and host size; (c) savings over
    time as each policy's scanner finds them (when ``timelines`` is given).

    ``rows``: :func:`pagecore.experiments.host.host_report`'s ``rows`` (policy, host_mb,
    vms_fit, kind, mechanism, saved_mb_at_fit). ``timelines``: its ``timelines``
    (policy, t_s, saved_mb).
    """
    with style():
        ncol = 3 if timelines is not None and len(timelines) else 2
        fig = Figure(figsize=(4.6 * ncol, 3.9))
        axes = fig.subplots(1, ncol)
        a, b = axes[0], axes[1]
        policies = list(dict.fromkeys(rows["policy"]))
        fits = rows.drop_duplicates(["policy", "host_mb"])
        for p in policies:
            f = fits[fits["policy"] == p].sort_values("host_mb")
            a.plot(f["host_mb"], f["vms_fit"], marker="o", label=p)
        a.set_xlabel("host memory (MiB)")
        a.set_ylabel("VMs of the mix that fit (nothing swapped)")
        a.set_title("(a) consolidation")
        a.set_ylim(bottom=0)
        a.legend(fontsize="small")
        sav = rows[rows["kind"] == "saving"]
        hosts = sorted(sav["host_mb"].unique())
        width = 0.8 / max(len(policies), 1)
        x = np.arange(len(hosts))
        seen = set()
        for j, p in enumerate(policies):
            bottom = np.zeros(len(hosts))
            for m in MECHANISMS:
                if m == "swap":
                    continue
                vals = np.array(
                    [
                        float(
                            sav[(sav["policy"] == p) & (sav["host_mb"] == h) & (sav["mechanism"] == m)][
                                "saved_mb_at_fit"
                            ].sum()
                        )
                        for h in hosts
                    ]
                )
                if not vals.any():
                    continue
                b.bar(
                    x + (j - (len(policies) - 1) / 2) * width,
                    vals,
                    width,
                    bottom=bottom,
                    color=_COLORS[m],
                    label=m if m not in seen else None,
                    edgecolor="white",
                    linewidth=0.4,
                )
                seen.add(m)
                bottom += vals
            for xi, top in zip(x, bottom, strict=True):
                b.text(
                    xi + (j - (len(policies) - 1) / 2) * width,
                    top,
                    p,
                    rotation=90,
                    fontsize=6,
                    ha="center",
                    va="bottom",
                )
        b.set_ylim(0, b.get_ylim()[1] * 1.15)
        b.set_xticks(x, [f"{h:g}" for h in hosts])
        b.set_xlabel("host memory (MiB)")
        b.set_ylabel("memory won at that consolidation (MiB)")
        b.set_title("(b) per mechanism")
        b.legend(fontsize="x-small", loc="upper left")
        if ncol == 3:
            c = axes[2]
            for p in policies:
                t = timelines[timelines["policy"] == p]
                t = t[t["t_s"] > 0]
                c.step(t["t_s"], t["saved_mb"], where="post", label=p)
            c.set_xscale("log")
            c.set_xlabel("seconds of scanning after boot (input VMs)")
            c.set_ylabel("sharing + zero pages found (MiB)")
            c.set_title("(c) how long until it pays")
            c.legend(fontsize="small")
        fig.tight_layout()
        return fig


def reclamation_approaches(timeline: pd.DataFrame, table: pd.DataFrame, title: str = "") -> Figure:
    """Transparent vs cooperative reclamation (issue 20): (a) memory each approach reclaims over
    time, (b) what it reclaims in the end, labelled with what it needs from the guest and what it
    spends.

    ``timeline``: :func:`pagecore.experiments.approaches.compare_approaches`'s timeline
    (approach, t_s, reclaimed_mb); ``table``: its table (approach, reclaimed_mb, cpu,
    needs_from_guest).
    """
    with style():
        fig = Figure(figsize=(12.5, 4.4))
        a, b = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
        names = list(dict.fromkeys(table["approach"]))
        for name in names:
            t = timeline[(timeline["approach"] == name) & (timeline["t_s"] > 0)]
            ls = "--" if "+" in name else "-"
            a.step(t["t_s"], t["reclaimed_mb"], where="post", ls=ls, label=name)
        a.set_xscale("log")
        a.set_xlabel("seconds after the host asks for memory")
        a.set_ylabel("memory reclaimed (MiB)")
        a.set_title("(a) over time" + (f" — {title}" if title else ""))
        a.legend(fontsize="x-small", loc="upper left")
        y = np.arange(len(names))[::-1]
        vals = [float(table.set_index("approach").loc[n, "reclaimed_mb"]) for n in names]
        b.barh(y, vals, color="#1f77b4")
        top = max([*vals, 1.0])
        for yi, n, v in zip(y, names, vals, strict=True):
            row = table.set_index("approach").loc[n]
            b.text(v + 0.01 * top, yi, f"{v:,.0f} MiB · needs {row['needs_from_guest']} · {row['cpu']}",
                   va="center", fontsize=6.5)  # fmt: skip
        b.set_yticks(y, names, fontsize="small")
        b.set_xlim(0, top * 2.1)
        b.set_xlabel("memory reclaimed once settled (MiB)")
        b.set_title("(b) what each wins, needs and spends")
        fig.tight_layout()
        return fig
