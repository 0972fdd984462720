"""Large pages on a set of guests: the breaking curve and per-region savings for the figure (issue 16).

The Figure 4 guests (or any page tables) as one set and their first guest alone, each through
:func:`pagecore.sharing.largepages.large_page_savings` (greedy curve, per-region savings) and
:func:`pagecore.sharing.largepages.large_page_report` (backable regions, savings they hide).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from pagecore.pages.tables import read_page_tables
from pagecore.sharing.largepages import large_page_report, large_page_savings


def large_page_sets(paths: Sequence[str | os.PathLike]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Curves, regions and summaries for all the tables' guests together and for the first guest alone.

    Returns
    -------
    curves : DataFrame
        :func:`large_page_savings` curve rows with a ``set`` column (``"N guests"``, ``"<vm> alone"``).
    regions : DataFrame
        Its per-region rows, with ``set``.
    summary : dict
        Set name -> :func:`large_page_report`.
    """
    df = read_page_tables(list(paths), columns=["vm", "gpfn", "hash", "zero"]).to_pandas()
    df["vm"] = df["vm"].astype(str)
    names = list(dict.fromkeys(df["vm"]))
    sets = {f"{len(names)} guests": df}
    if len(names) > 1:
        sets[f"{names[0]} alone"] = df[df["vm"] == names[0]]
    curves, regions, summary = [], [], {}
    for name, d in sets.items():
        args = (d["vm"].to_numpy(), d["gpfn"].to_numpy(), d["hash"].to_numpy(), d["zero"].to_numpy())
        reg, curve = large_page_savings(*args)
        curves.append(curve.assign(set=name))
        regions.append(reg.assign(set=name))
        summary[name] = large_page_report(*args)
    return pd.concat(curves, ignore_index=True), pd.concat(regions, ignore_index=True), summary
