"""The influence step: which predicted numbers a value chosen by looking at a figure moves (issue 14).

The rule (:mod:`pagecore.experiments.records`): a parameter chosen by looking at a paper output
makes every number it moves ``fitted``, in that figure and in every other (:func:`figures_of`:
the figures it was chosen on and those its provenance row says it moves). A record function
knows the numbers a value was tuned *on* (Figure 8's first 5 minutes for the boot zeroing rate),
not every number the value *moves*. This step measures that, for every provenance row with
:attr:`~pagecore.experiments.provenance.Param.chosen_on` figures:

1. each such figure is re-run from the config at the value × (1 − step) and × (1 + step) (a flag
   flipped; a value that cannot be perturbed, such as a schedule or a zero, or whose perturbed
   value the model refuses, moves every number of the figure, conservatively);
2. a predicted number *moves* when it changes by more than ``spread_k`` times its sample
   standard deviation over the comparison's seeds (a change inside the run-to-run noise is not a
   move; a figure the seeds do not re-run has no noise, so any change counts);
3. :func:`relabel` makes every predicted record that moved ``fitted``, naming the parameter and
   the move, for every seed.

In the pipeline :func:`influence_runs` (rule ``influence``) needs only the config and runs beside
the figures; the comparison applies :func:`moves` with the seeds' spread, checks the runs started
from the pipeline's own numbers (:func:`check_defaults`) and relabels.

Declared fits (:data:`~pagecore.experiments.provenance.DECLARED_FITS`: code with listed targets)
are not part of the step: their targets are ``fitted`` and the rest of their figure is held out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from pagecore.experiments.provenance import PARAMETERS, Param, lookup, with_each, with_scaled

#: The figures each chosen value was read off (by provenance key), for the labels' wording.
_CHOSEN_ON = {p.key: p.chosen_on for p in PARAMETERS if p.chosen_on}

#: Columns of ``results/numbers/influence.csv``.
COLUMNS = ["param", "figure", "quantity", "unit", "end", "ours", "perturbed", "delta", "seed_sd", "threshold", "moved"]

#: What :func:`perturbations` says of a value it cannot perturb.
NOT_PERTURBABLE = "not perturbable"
#: what an end's label says when the model refused its perturbed value (ValueError)
REFUSED = "refused by the model"


def chosen() -> list[Param]:
    """The provenance rows chosen by looking at a figure (those the step runs)."""
    return [p for p in PARAMETERS if p.chosen_on]


def figures_of(p: Param) -> tuple[str, ...]:
    """The figures the step checks a chosen value on: those it was chosen on and every other figure
    its provenance row says it moves. A value read off one figure makes every number it moves
    ``fitted``, in any figure (issue 14; until session 19 only the figure it was chosen on was
    checked, and ``sim.sampling.alpha_fast``, read off Figure 6, moved 95 of Figure 8's 101
    predicted numbers while they stayed predicted)."""
    return tuple(dict.fromkeys((*p.chosen_on, *p.moves)))


def perturbations(cfg: dict, p: Param, step: float) -> list[tuple[str, dict]] | None:
    """``(label, config)`` for each perturbed value of ``p``: every match × (1 − step) and
    × (1 + step) (integers rounded), or flags flipped; a value chosen among a few readings
    (:attr:`Param.influence_at_range`) set to each end of its range instead. None when ``p`` has
    no value it can change (text, lists, mappings, or numbers that scaling leaves equal, such as 0)."""
    vals = lookup(cfg, p.key)
    if not vals:
        return None
    if p.influence_at_range and all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
        ends = [(f"={x:g}", with_each(cfg, p.key, lambda old, x=x: type(old)(x))) for x in (p.low, p.high)]
    elif all(isinstance(v, bool) for v in vals):
        ends = [("flipped", with_each(cfg, p.key, lambda old: not old))]
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
        ends = [
            (f"x{1 - step:g}", with_scaled(cfg, p.key, 1 - step)),
            (f"x{1 + step:g}", with_scaled(cfg, p.key, 1 + step)),
        ]
    else:
        return None
    ends = [(label, c) for label, c in ends if lookup(c, p.key) != vals]
    return ends or None


def seed_spread(records: Iterable[dict]) -> dict[tuple[str, str], float]:
    """Sample standard deviation (ddof 1) of each ``(figure, quantity)``'s ``ours`` over the seeds
    the records carry (``seed``); 0 for a quantity with one seed."""
    vals: dict[tuple[str, str], dict] = {}
    for r in records:
        vals.setdefault((r["figure"], r["quantity"]), {})[r.get("seed", 0)] = float(r["ours"])
    return {k: float(np.std(list(v.values()), ddof=1)) if len(v) > 1 else 0.0 for k, v in vals.items()}


#: Columns of ``results/numbers/influence_runs.csv`` (:func:`influence_runs`).
RUN_COLUMNS = COLUMNS[:8]


def influence_runs(
    cfg: dict,
    params: Iterable[Param] | None = None,
    step: float = 0.1,
    records: Callable | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Every (parameter, end, predicted record of a figure it was chosen on or moves): the record at the
    defaults (``ours``), perturbed, and the change (:data:`RUN_COLUMNS`). Needs only the config,
    so the pipeline runs it beside the figures; :func:`moves` then says which changes are moves.

    ``records(cfg, figures)`` makes a figure's records from a config (default
    :func:`pagecore.experiments.sensitivity.figure_records`); the records at the defaults are
    made by the same function, so a change is the parameter's alone."""
    if not 0 < step < 1:
        raise ValueError(f"influence step must be in (0, 1), got {step}")
    if records is None:
        from pagecore.experiments.sensitivity import figure_records as records
    params = chosen() if params is None else list(params)
    base: dict[str, list] = {}
    rows = []
    for p in params:
        for fig in figures_of(p):
            if fig not in base:
                base[fig] = [r for r in records(cfg, (fig,)) if r.figure == fig]
            pred = [r for r in base[fig] if r.kind == "predicted"]
            if not pred:
                continue
            ends = perturbations(cfg, p, step)
            if ends is None:
                rows += [(p.key, fig, r.quantity, r.unit, NOT_PERTURBABLE, r.ours, math.nan, math.nan) for r in pred]
                continue
            for label, c in ends:
                if progress:
                    progress(f"{p.key} {label} on {fig}")
                try:
                    got = {r.quantity: r.ours for r in records(c, (fig,)) if r.figure == fig}
                except ValueError as e:  # the model refuses the perturbed value: cannot tell, so moved
                    label, got = f"{label} {REFUSED} ({str(e)[:80]})", {}
                for r in pred:
                    v = float(got.get(r.quantity, math.nan))
                    rows.append((p.key, fig, r.quantity, r.unit, label, r.ours, v, v - r.ours))
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def moves(runs: pd.DataFrame, spread: dict[tuple[str, str], float], spread_k: float = 2.0) -> pd.DataFrame:
    """:func:`influence_runs` with each change's noise threshold (``spread_k`` × the number's
    spread over the seeds, plus a rounding floor) and whether it is a move (:data:`COLUMNS`): a
    change beyond the threshold, a number no longer made, or a value that cannot be perturbed."""
    out = runs.copy()
    keys = list(zip(out["figure"], out["quantity"], strict=True))
    out["seed_sd"] = [float(spread.get(k, 0.0)) for k in keys]
    out["threshold"] = spread_k * out["seed_sd"] + 1e-9 * (1.0 + out["ours"].abs())
    out["moved"] = ~(out["delta"].abs() <= out["threshold"])
    return out[COLUMNS]


def check_defaults(runs: pd.DataFrame, records: Iterable[dict], figures: Iterable[str] | None = None) -> None:
    """Refuse influence runs whose records at the defaults are not the pipeline's ``records`` of
    the same seed (a kind differs, a value by more than the 6 significant digits some figure files
    keep, or a number is missing), or that leave out a predicted record of one of ``figures``
    (default: every figure a chosen value can move, :func:`figures_of`): they were made from other
    inputs, and their
    changes would be mixed with that difference or miss a number."""
    records = list(records)
    ours = {(r["figure"], r["quantity"]): r for r in records}
    figures = {f for p in chosen() for f in figures_of(p)} if figures is None else set(figures)
    covered = set(zip(runs["figure"], runs["quantity"], strict=True))
    left = sorted(k for k, r in ours.items() if r["kind"] == "predicted" and k[0] in figures and k not in covered)
    if left:
        raise ValueError(
            f"the influence runs leave out predicted records of the pipeline ({left[:3]}...); "
            "they were made from other inputs (re-run the influence rule)"
        )
    for (fig, q), g in runs.groupby(["figure", "quantity"], sort=False):
        p = ours.get((fig, q))
        v = float(g["ours"].iloc[0])
        if p is None or p["kind"] != "predicted" or not math.isclose(float(p["ours"]), v, rel_tol=1e-5, abs_tol=1e-6):
            got = "missing" if p is None else f"{p['kind']} {p['ours']}"
            raise ValueError(
                f"{fig} {q}: the influence runs start from predicted {v} but the pipeline's record is {got}; "
                "they were made from other inputs (re-run the influence rule)"
            )


def relabel(records: list[dict], table: pd.DataFrame, chosen_on: dict | None = None) -> list[dict]:
    """``records`` (dicts, any seeds) with every predicted record that ``table`` says moved made
    ``fitted``, its source naming the parameter, the figures it was read off (``chosen_on``: by
    provenance key, default the provenance rows') and its largest move."""
    chosen_on = _CHOSEN_ON if chosen_on is None else chosen_on
    moved = table[table["moved"]]
    if moved.empty:
        return list(records)
    why = {}
    for (fig, q), g in moved.groupby(["figure", "quantity"], sort=False):
        g = g.assign(size=g["delta"].abs().fillna(np.inf)).sort_values("size", ascending=False)
        r = g.iloc[0]
        params = ", ".join(dict.fromkeys(g["param"]))
        if r["end"] == NOT_PERTURBABLE:
            how = "cannot be perturbed, so every predicted number of the figure counts as moved"
        elif REFUSED in r["end"]:
            how = f"cannot be measured at {r['end']}, so it counts as moved"
        elif not math.isfinite(r["delta"]):
            how = f"at {r['end']} the number is no longer made"
        else:
            how = f"moves it by {r['delta']:+.3g} {r['unit']} at {r['end']} (noise threshold {r['threshold']:.3g})"
        on = sorted({f for k in dict.fromkeys(g["param"]) for f in chosen_on.get(k, ())})
        why[(fig, q)] = (
            f"fitted (influence step, results/numbers/influence.csv): {params} chosen on {', '.join(on) or fig}; "
            f"{r['param']} {how}"
        )
    out = []
    for rec in records:
        k = (rec["figure"], rec["quantity"])
        if rec["kind"] == "predicted" and k in why:
            rec = {**rec, "kind": "fitted", "source": why[k]}
        out.append(rec)
    return out
