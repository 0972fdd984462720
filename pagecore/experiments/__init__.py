"""One module per figure family: run an experiment from config, return paper-vs-ours records.

Owns: the records every ``results/numbers/*.json`` holds and the comparison table
(:mod:`.records`); the sharing analysis of page tables behind ``pagecore share`` and Figures 4–5
(:mod:`.analyze`); Figures 6–8 and the what-if sweeps (:mod:`.memory_manager`); Figure 2,
double paging and I/O remapping (:mod:`.reclaim`); sharing over time and duplicate lifetimes
(:mod:`.scan`); large pages on the Figure 4 guests (:mod:`.largepages`); the rows of
`pagecore share`'s table (:mod:`.sharetable`); your VMs on a host (:mod:`.host`, behind
`pagecore host`); free page reporting predicted from a guest's free-page list
(:mod:`.cooperative`) and the approaches side by side (:mod:`.approaches`).
Must not: draw (that is :mod:`pagecore.plotting`) or hold the paper's numbers
(they live in :mod:`pagecore.paper`).
"""

from pagecore.experiments.analyze import analyze_page_tables, load_pages
from pagecore.experiments.approaches import compare_approaches, with_guest_free
from pagecore.experiments.cooperative import (
    ReportingParams,
    free_report,
    reclaim_timeline,
    reportable_mask,
    synthetic_guest_free,
)
from pagecore.experiments.host import HostSettings, HostVM, host_report, load_vms, settings_from_config
from pagecore.experiments.largepages import large_page_sets
from pagecore.experiments.memory_manager import (
    apply_fig08_fit,
    fig06_error,
    fig06_records,
    fig07_records,
    fig08_panels,
    fig08_records,
    fit_fig08_active,
    run_whatif,
    series_error,
)
from pagecore.experiments.nullmodels import NULL_MODELS, null_value
from pagecore.experiments.provenance import PARAMETERS, provenance_table, swept
from pagecore.experiments.reclaim import (
    fig02_records,
    fig02_required_cache_loss,
    fit_fig02_cost,
    paper_fig02,
    run_guest,
    run_io,
)
from pagecore.experiments.records import (
    Record,
    comparison_table,
    figure_scores,
    summarize,
    sweep_records,
    write_records,
)
from pagecore.experiments.scan import duplicate_lifetimes, history_from_tables, sharing_over_time
from pagecore.experiments.sensitivity import figure_records, run_param
from pagecore.experiments.sensitivity import score as sensitivity_score
from pagecore.experiments.sharetable import LEGEND as SHARE_LEGEND
from pagecore.experiments.sharetable import share_rows

__all__ = [
    "NULL_MODELS",
    "PARAMETERS",
    "SHARE_LEGEND",
    "HostSettings",
    "HostVM",
    "Record",
    "ReportingParams",
    "analyze_page_tables",
    "apply_fig08_fit",
    "compare_approaches",
    "comparison_table",
    "duplicate_lifetimes",
    "fig02_records",
    "fig02_required_cache_loss",
    "fig06_error",
    "fig06_records",
    "fig07_records",
    "fig08_panels",
    "fig08_records",
    "figure_records",
    "figure_scores",
    "fit_fig02_cost",
    "fit_fig08_active",
    "free_report",
    "history_from_tables",
    "host_report",
    "large_page_sets",
    "load_pages",
    "load_vms",
    "null_value",
    "paper_fig02",
    "provenance_table",
    "reclaim_timeline",
    "reportable_mask",
    "run_guest",
    "run_io",
    "run_param",
    "run_whatif",
    "sensitivity_score",
    "series_error",
    "settings_from_config",
    "share_rows",
    "sharing_over_time",
    "summarize",
    "sweep_records",
    "swept",
    "synthetic_guest_free",
    "with_guest_free",
    "write_records",
]
