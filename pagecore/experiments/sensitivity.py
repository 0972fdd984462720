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
    fig07_tau0_split_mb,
    fig08_records,
    fit_fig08_active,
)
from pagecore.experiments.provenance import Param, sweep_value_label, swept_config
from pagecore.experiments.records import comparison_table

#: The last traces made, by their workload (the influence step and the sweeps change simulator
#: values far more often than workloads: one trace, replayed under each, the same result)
_TRACES: dict[str, object] = {}


def _trace(name, wc, seed, chunk_s, sc):
    """The trace of scenario ``sc`` as a :class:`~pagecore.sim.PreparedTrace`, made once per
    workload (``name``, ``wc``, ``seed``, ``chunk_s``): replaying it gives what replaying the
    generated trace gives (:class:`~pagecore.sim.PreparedTrace`)."""
    import json

    from pagecore.sim import PreparedTrace
    from pagecore.synth import generate

    key = json.dumps([name, wc, seed, chunk_s], sort_keys=True, default=repr)
    if key not in _TRACES:
        if len(_TRACES) >= 2:  # a trace holds 17 bytes per event (Figure 8: about 46 MB)
            _TRACES.pop(next(iter(_TRACES)))
        _TRACES[key] = PreparedTrace(generate(sc))
    return _TRACES[key]


def figure_records(cfg: dict, figures) -> list:
    """Records of ``figures`` (fig02, fig04-fig08) for a full config ``cfg`` (traces generated in
    memory; Figures 4 and 5 from hash-only page tables in a temporary directory,
    :mod:`pagecore.experiments.sharing_figures`)."""
    from pagecore.config import scenario_section
    from pagecore.sim import scenarios
    from pagecore.synth import scenario

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
        res = scenarios.run(sc, sim, _trace(name, wc, w["seed"], w["chunk_s"], sc))
        if name == "fig06":
            recs += fig06_records(res.vms)
        elif name == "fig07":
            idle, active = (v["name"] for v in w["fig07"]["vms"][:2])
            split = fig07_tau0_split_mb(w["fig07"], sim)
            recs += fig07_records(res.vms, idle, active, w["fig07"]["tau_schedule_min"][-1][0], tau0_split_mb=split)
        else:
            recs += fig08_records(res.vms, res.host, scenario_section(sim, "fig08", "states"))
    if "fig04" in figures:
        from pagecore.experiments.sharing_figures import fig04_records, fig04_sweep_from_config

        recs += fig04_records(fig04_sweep_from_config(cfg["synth"]), cfg["synth"]["fig04"]["fitted_to"])
    if "fig05" in figures:
        from pagecore.experiments.sharing_figures import fig05_os_kinds, fig05_records, fig05_table_from_config

        recs += fig05_records(
            fig05_table_from_config(cfg), cfg["fig05"]["fitted_to"], fig05_os_kinds(cfg["fig05"]["scenarios"])
        )
    if "fig02" in figures:
        from pagecore.experiments.reclaim import fig02_records, fit_fig02_cost, run_guest

        rc = cfg["reclaim"]
        fig02, _, _ = run_guest(rc, fit_fig02_cost(rc))
        recs += fig02_records(fig02, rc["fig02"]["fitted_to"])
    return recs


def score(records: list, comparison: dict) -> pd.DataFrame:
    """Per figure: median |relative error| and the number within tolerance of the compared
    (non-input) records (the null models play no part: their points are the shipped config's)."""
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


#: Figures the simulator's seed moves (the ones ``comparison.seeds`` re-run)
SEEDED = ("fig06", "fig07", "fig08")


def run_baseline(cfg: dict, figures) -> pd.DataFrame:
    """Every figure at the defaults (``end`` "baseline"), then each figure of :data:`SEEDED` at
    every other seed of ``comparison.seeds`` (``end`` "seed:<seed>", ``value`` the seed): the
    spread a bar must exceed to be more than the simulator's own randomness."""
    table = score(figure_records(cfg, figures), cfg["comparison"])
    table["param"], table["end"], table["value"] = "baseline", "baseline", float("nan")
    rows = [table]
    seeds = [s for s in cfg["comparison"].get("seeds", []) if s != cfg["sim"]["seed"]]
    for fig in (f for f in SEEDED if f in figures):  # one trace per figure, replayed per seed
        for seed in seeds:
            c = {**cfg, "sim": {**cfg["sim"], "seed": seed}}
            t = score(figure_records(c, (fig,)), cfg["comparison"])
            t["param"], t["end"], t["value"] = "baseline", f"seed:{seed}", float(seed)
            rows.append(t)
    return pd.concat(rows, ignore_index=True)


def run_param(cfg: dict, p: Param) -> pd.DataFrame:
    """One parameter at its low and high value: a row per (figure, end). ``value`` is the value
    set, or for a :attr:`~pagecore.experiments.provenance.Param.relative` parameter (values that
    differ per VM) the factor each was multiplied by (``relative`` True)."""
    rows = []
    for end, value in (("low", p.low), ("high", p.high)):
        s = score(figure_records(swept_config(cfg, p, end), p.moves), cfg["comparison"])
        if not isinstance(value, int | float) or isinstance(value, bool):
            value = sweep_value_label(value)  # an alternative that is not a number: its label
        s["param"], s["end"], s["value"], s["relative"] = p.key, end, value, p.relative
        rows.append(s)
    return pd.concat(rows, ignore_index=True)


def check_tables(table: pd.DataFrame, params: list[Param]) -> None:
    """Refuse sweep tables that do not hold exactly a baseline and, for each of ``params``, its low
    and high end on every figure it moves (ValueError naming what is wrong): a missing end was
    drawn as no change, a table of another parameter as this one's bar."""
    base = table[(table["param"] == "baseline") & (table["end"] == "baseline")]
    if not len(base):
        raise ValueError("the sensitivity tables have no baseline run")
    figs = set(base["figure"])
    want = {("baseline", "baseline", f) for f in figs}
    want |= {(p.key, end, f) for p in params for f in p.moves if f in figs for end in ("low", "high")}
    got = list(zip(table["param"], table["end"], table["figure"], strict=True))
    # the baseline at the other seeds (run_baseline), as many as comparison.seeds lists
    want |= {g for g in got if g[0] == "baseline" and str(g[1]).startswith("seed:") and g[2] in SEEDED}

    def where(row) -> str:  # the table files a row came from (column "source", when given)
        if "source" not in table:
            return "sensitivity tables"
        hit = [g == row for g in got]
        return ", ".join(sorted({str(x) for x in table.loc[hit, "source"]}))

    dup = sorted({g for g in got if got.count(g) > 1})
    if dup:
        raise ValueError(f"{where(dup[0])}: {dup[0]} appears twice; delete the stale table and run the sweep again")
    missing, extra = sorted(want - set(got)), sorted(set(got) - want)
    if missing:
        raise ValueError(f"sensitivity tables: no {missing[0]} (param, end, figure); run the sweep again")
    if extra:
        raise ValueError(f"{where(extra[0])}: an unexpected {extra[0]}; delete the stale table and run the sweep again")


# ----------------------------------------------------------------------------- provenance check
def _figures_of(path: str) -> tuple[str, ...]:
    """The figures a value at dotted ``path`` can move (() for the scoring's own settings)."""
    parts = path.split(".")
    if parts[0] == "reclaim":
        return ("fig02",)
    if parts[0] == "synth":
        return ("fig04",)
    if parts[0] in ("catalogue", "fig05"):
        return ("fig05",)
    if parts[0] == "workloads" and len(parts) > 1 and parts[1] in ("fig06", "fig07", "fig08"):
        return (parts[1],)
    if parts[0] == "workloads" and len(parts) > 1 and parts[1] == "fig08_fit":
        return ("fig08",)
    if parts[0] in ("sim", "workloads"):
        return ("fig06", "fig07", "fig08")
    return ()


def _changed(v):
    """Values to try instead of ``v`` (in order, the first the model accepts counts), or []."""
    if isinstance(v, bool):
        return [not v]
    if isinstance(v, int):
        return [v + max(1, v // 2), max(0, v - max(1, v // 2)), v + 1, max(0, v - 1)]
    if isinstance(v, float):
        if not v:
            return [0.5]
        whole = [v + 1.0, v - 1.0] if v.is_integer() and v > 1 else []  # intervals in whole replay steps
        return [v * 1.5, v * 0.5, v * 1.1, v * 0.9, *whole]
    return []


def provenance_check(cfg: dict, paths: list[str] | None = None) -> pd.DataFrame:
    """Change each value of the model sections (or of ``paths``) in turn and record which figures'
    compared numbers move, against what its provenance row declares
    (:mod:`pagecore.experiments.provenance`).

    A number is changed by half (× 1.5, else × 0.5, × 1.1 or × 0.9, or a whole number by one: the
    first the model accepts; intervals such as ``sim.record_s`` must be whole replay steps), an
    integer by half or one, a flag flipped; text and lists are skipped, and so is the ``comparison`` section (it
    scores the numbers, it does not make them). A row is ``ok`` when the figures that moved are
    among the row's ``moves`` (none for an :data:`~pagecore.experiments.provenance.EXEMPT`
    value)."""
    from pagecore.experiments.provenance import leaves, row_of, with_value

    base: dict = {}
    rows = []
    want = dict(leaves(cfg))
    for path in paths if paths is not None else list(want):
        v = want[path]
        figs = _figures_of(path)
        row = row_of(path)
        declared = () if row is None or isinstance(row, str) else tuple(row.moves)
        rec = {"path": path, "value": v, "changed_to": None, "moved": "", "n_moved": 0, "declared": " ".join(declared)}
        tries = _changed(v) if figs else []
        if not tries:
            rows.append({**rec, "ok": True, "note": "skipped"})
            continue
        if figs not in base:
            base[figs] = {(r.figure, r.quantity): r.ours for r in figure_records(cfg, figs)}
        got = None
        for nv in tries:
            try:
                got = {(r.figure, r.quantity): r.ours for r in figure_records(with_value(cfg, path, nv), figs)}
            except ValueError:  # the model refuses the value: try the other way
                continue
            rec["changed_to"] = nv
            break
        if got is None:
            rows.append({**rec, "ok": False, "note": "every change refused"})
            continue
        b = base[figs]
        moved = [k for k in b if not np.isclose(got.get(k, np.nan), b[k], rtol=1e-9, atol=0.0, equal_nan=True)]
        figs_moved = sorted({k[0] for k in moved})
        rec.update(moved=" ".join(figs_moved), n_moved=len(moved))
        ok = set(figs_moved) <= set(declared)
        rows.append({**rec, "ok": ok, "note": "" if ok else "moves figures its provenance row does not declare"})
    return pd.DataFrame(rows)
