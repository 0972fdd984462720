"""One module per figure family: run an experiment from config, return paper-vs-ours records.

Owns: the records every ``results/numbers/*.json`` holds and the comparison table
(:mod:`.records`); the sharing analysis of page tables behind ``pagecore share`` and Figures 4–5
(:mod:`.analyze`); Figures 6–8 and the what-if sweeps (:mod:`.memory_manager`); Figure 2,
double paging and I/O remapping (:mod:`.reclaim`); sharing over time and duplicate lifetimes
(:mod:`.scan`); the rows of `pagecore share`'s table (:mod:`.sharetable`).
Must not: draw (that is :mod:`pagecore.plotting`) or hold the paper's numbers
(they live in :mod:`pagecore.paper`).
"""

from pagecore.experiments.analyze import analyze_page_tables, load_pages
from pagecore.experiments.memory_manager import (
    fig06_error,
    fig06_records,
    fig07_records,
    fig08_panels,
    fig08_records,
    run_whatif,
    series_error,
)
from pagecore.experiments.reclaim import fig02_records, paper_fig02, run_guest, run_io
from pagecore.experiments.records import Record, comparison_table, summarize, sweep_records, write_records
from pagecore.experiments.scan import duplicate_lifetimes, history_from_tables, sharing_over_time
from pagecore.experiments.sharetable import LEGEND as SHARE_LEGEND
from pagecore.experiments.sharetable import share_rows

__all__ = [
    "SHARE_LEGEND",
    "Record",
    "analyze_page_tables",
    "comparison_table",
    "duplicate_lifetimes",
    "fig02_records",
    "fig06_error",
    "fig06_records",
    "fig07_records",
    "fig08_panels",
    "fig08_records",
    "history_from_tables",
    "load_pages",
    "paper_fig02",
    "run_guest",
    "run_io",
    "run_whatif",
    "series_error",
    "share_rows",
    "sharing_over_time",
    "summarize",
    "sweep_records",
    "write_records",
]
