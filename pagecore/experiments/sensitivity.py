"""Sensitivity of the compared numbers to every UNCONFIRMED parameter (issue 14, tornado charts).

For each parameter of :func:`pagecore.experiments.provenance.swept` the figures it moves are
re-run at the low and the high end of its range (default ±50 %, or the documented range), all
else at the defaults, and each figure is summarised by the median |relative error| of its
compared (fitted and predicted) records and how many of them are within tolerance. A parameter
whose range moves a figure's error a lot is one the figure's conclusions depend on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pagecore.experiments.memory_manager import (
    apply_fig08_fit,
    fig06_records,
    fig07_records,
    fig08_records,
    fit_fig08_active,
)
from pagecore.experiments.provenance import Param, with_value
from pagecore.experiments.records import comparison_table


def figure_records(cfg: dict, figures) -> list:
    """Records of ``figures`` (fig02, fig06-fig08) for a full config ``cfg`` (traces generated in
    memory)."""
    from pagecore.sim import scenarios
    from pagecore.synth import generate, scenario

    recs = []
    w, sim = cfg["workloads"], cfg["sim"]
    for name in ("fig06", "fig07", "fig08"):
        if name not in figures:
            continue
        wc = w[name]
        if name == "fig08" and w.get("fig08_fit"):  # the declared fit, as the pipeline's sim_trace
            f = w["fig08_fit"]
            wc = apply_fig08_fit(wc, fit_fig08_active(wc, f.get("split", "max_mb"), float(f.get("lead_min", 1.0))))
        sc = scenario(name, wc, seed=w["seed"], chunk_s=w["chunk_s"])
        res = scenarios.run(sc, sim, generate(sc))
        if name == "fig06":
            recs += fig06_records(res.vms)
        elif name == "fig07":
            idle, active = (v["name"] for v in w["fig07"]["vms"][:2])
            recs += fig07_records(res.vms, idle, active, w["fig07"]["tau_schedule_min"][-1][0])
        else:
            recs += fig08_records(res.vms, res.host)
    if "fig02" in figures:
        from pagecore.experiments.reclaim import fig02_records, fit_fig02_cost, run_guest

        rc = cfg["reclaim"]
        fig02, _, _ = run_guest(rc, fit_fig02_cost(rc))
        recs += fig02_records(fig02, rc["fig02"]["fitted_to"])
    return recs


def score(records: list, comparison: dict) -> pd.DataFrame:
    """Per figure: median |relative error| and the number within tolerance of the compared
    (non-input) records."""
    t = comparison_table([r.__dict__ for r in records], comparison["tolerances"], comparison.get("abs_floor", {}))
    t = t[t["kind"] != "input"]
    g = t.groupby("figure")
    return pd.DataFrame(
        {
            "median_err": g["rel_error"].apply(lambda e: float(np.nanmedian(np.abs(e))) if e.notna().any() else np.nan),
            "within": g["within"].sum(),
            "compared": g.size(),
        }
    ).reset_index()


def run_param(cfg: dict, p: Param) -> pd.DataFrame:
    """One parameter at its low and high value: a row per (figure, end)."""
    rows = []
    for end, value in (("low", p.low), ("high", p.high)):
        c = with_value(cfg, p.key, value)
        s = score(figure_records(c, p.moves), cfg["comparison"])
        s["param"], s["end"], s["value"] = p.key, end, value
        rows.append(s)
    return pd.concat(rows, ignore_index=True)
