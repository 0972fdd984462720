"""Paper-vs-ours records: the one shape every ``results/numbers/figNN.json`` uses.

A figure's numbers file is a JSON list of records::

    {"figure": "fig04", "quantity": "reclaimed_mb@10vms", "unit": "MB",
     "paper": 234.1, "ours": 234.9, "kind": "predicted"}

``kind`` says whether the paper number was used to calibrate an input of the model
(``"fitted"``) or is a genuine output of the model (``"predicted"``). Comparisons
(relative error, tolerance) are derived from these records, never typed by hand.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from pagecore._util import write_json_atomic

if TYPE_CHECKING:
    import pandas as pd

KINDS = ("fitted", "predicted")


@dataclass(frozen=True)
class Record:
    figure: str
    quantity: str
    unit: str
    paper: float
    ours: float
    kind: str

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def rel_error(self) -> float:
        """(ours − paper) / |paper|; NaN when the paper value is zero or missing."""
        if self.paper is None or not math.isfinite(self.paper) or self.paper == 0:
            return float("nan")
        return (self.ours - self.paper) / abs(self.paper)


def write_records(path: str | os.PathLike, records: list[Record]) -> None:
    """Write records as the JSON list described above (atomically)."""
    out = []
    for r in records:
        d = asdict(r)
        d["paper"] = float(d["paper"])
        d["ours"] = float(d["ours"])
        out.append(d)
    write_json_atomic(path, out)


def sweep_records(
    figure: str,
    ours: pd.DataFrame,
    paper: pd.DataFrame,
    columns: dict[str, tuple[str, str]],
    fitted: set[str],
    key: str = "vms",
) -> list[Record]:
    """Records comparing a sweep with the paper's series at every shared ``key`` value.

    Parameters
    ----------
    ours, paper : pandas.DataFrame
        Both indexed by column ``key`` (e.g. number of VMs).
    columns : dict
        ``our_column -> (paper_column, unit)``.
    fitted : set of str
        Quantity names (``"<our_column>@<key value>"``) whose paper value calibrated an input.
    """
    records = []
    p = paper.set_index(key)
    o = ours.set_index(key)
    unknown = fitted - {f"{c}@{k}" for c in columns for k in o.index}
    if unknown:
        raise ValueError(f"fitted quantities not in the comparison: {sorted(unknown)}")
    for k in o.index:
        if k not in p.index:
            continue
        for col, (pcol, unit) in columns.items():
            pv = float(p.at[k, pcol])
            if not math.isfinite(pv):
                continue
            q = f"{col}@{k}"
            records.append(Record(figure, q, unit, pv, float(o.at[k, col]), "fitted" if q in fitted else "predicted"))
    return records


def comparison_table(records: list[dict], tolerances: dict[str, float], abs_floor: dict[str, float]) -> pd.DataFrame:
    """Every record with its relative error, tolerance and whether it is within it.

    A number is within tolerance when ``|ours − paper| ≤ max(tol·|paper|, floor[unit])``: ``tol``
    is the figure's relative tolerance, ``floor`` an absolute reading error per unit (so a paper
    value of 0 can still be met).
    """
    import pandas as pd

    rows = []
    for r in records:
        rec = Record(**{k: r[k] for k in ("figure", "quantity", "unit", "paper", "ours", "kind")})
        if rec.figure not in tolerances:
            raise ValueError(f"no tolerance configured for {rec.figure} (comparison.tolerances)")
        tol = float(tolerances[rec.figure])
        floor = float(abs_floor.get(rec.unit, 0.0))
        err = abs(rec.ours - rec.paper)
        rows.append(
            {
                "figure": rec.figure,
                "quantity": rec.quantity,
                "unit": rec.unit,
                "paper": rec.paper,
                "ours": rec.ours,
                "rel_error": rec.rel_error,
                "tolerance": tol,
                "within": bool(err <= max(tol * abs(rec.paper), floor)),
                "kind": rec.kind,
            }
        )
    return pd.DataFrame(
        rows, columns=["figure", "quantity", "unit", "paper", "ours", "rel_error", "tolerance", "within", "kind"]
    )


def summarize(table: pd.DataFrame) -> str:
    """A short text table: per figure, how many predicted numbers fall within tolerance."""
    lines = [f"{'figure':<8}{'predicted within tolerance':>28}{'fitted within':>16}{'median |rel err|':>18}"]
    for fig, g in table.groupby("figure", sort=True):
        pred = g[g["kind"] == "predicted"]
        fit = g[g["kind"] == "fitted"]
        med = pred["rel_error"].abs().median()
        lines.append(
            f"{fig:<8}{f'{int(pred.within.sum())} of {len(pred)}':>28}{f'{int(fit.within.sum())} of {len(fit)}':>16}"
            f"{(f'{100 * med:.1f} %' if med == med else '-'):>18}"
        )
    pred = table[table["kind"] == "predicted"]
    lines.append(f"{'all':<8}{f'{int(pred.within.sum())} of {len(pred)}':>28}")
    return "\n".join(lines)
