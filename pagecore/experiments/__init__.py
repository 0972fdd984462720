"""One module per figure family: run an experiment from config, return paper-vs-ours records.

Owns: the records every ``results/numbers/*.json`` holds and the comparison table
(:mod:`.records`); the sharing analysis of page tables behind ``pagecore share`` and Figures 4–5
(:mod:`.analyze`) and their records (:mod:`.sharing_figures`); Figures 6–8 and the what-if sweeps
(:mod:`.memory_manager`); Figure 2, double paging and I/O remapping (:mod:`.reclaim`); sharing
over time and duplicate lifetimes (:mod:`.scan`); large pages on the Figure 4 guests
(:mod:`.largepages`); the rows of `pagecore share`'s table (:mod:`.sharetable`); your VMs on a
host (:mod:`.host`, behind `pagecore host`); free page reporting predicted from a guest's
free-page list (:mod:`.cooperative`) and the approaches side by side (:mod:`.approaches`);
where every parameter comes from (:mod:`.provenance`), what the unconfirmed ones move
(:mod:`.sensitivity`) and which predicted numbers a value chosen on a figure moves (:mod:`.influence`).
Must not: draw (that is :mod:`pagecore.plotting`) or hold the paper's numbers
(they live in :mod:`pagecore.paper`).
"""

from pagecore import lazy_exports

# Names are imported on first use (PEP 562), so a job that needs the records of one figure
# does not import every experiment's dependencies (the simulator, the sharing kernels, Numba):
# about 1 s of CPU per workflow job that draws a figure.
#: public name -> (module, name in that module)
_LAZY = {
    "analyze_page_tables": ("pagecore.experiments.analyze", "analyze_page_tables"),
    "load_pages": ("pagecore.experiments.analyze", "load_pages"),
    "compare_approaches": ("pagecore.experiments.approaches", "compare_approaches"),
    "with_guest_free": ("pagecore.experiments.approaches", "with_guest_free"),
    "ReportingParams": ("pagecore.experiments.cooperative", "ReportingParams"),
    "free_report": ("pagecore.experiments.cooperative", "free_report"),
    "reclaim_timeline": ("pagecore.experiments.cooperative", "reclaim_timeline"),
    "reportable_mask": ("pagecore.experiments.cooperative", "reportable_mask"),
    "synthetic_guest_free": ("pagecore.experiments.cooperative", "synthetic_guest_free"),
    "HostSettings": ("pagecore.experiments.host", "HostSettings"),
    "HostVM": ("pagecore.experiments.host", "HostVM"),
    "host_report": ("pagecore.experiments.host", "host_report"),
    "load_vms": ("pagecore.experiments.host", "load_vms"),
    "settings_from_config": ("pagecore.experiments.host", "settings_from_config"),
    "large_page_sets": ("pagecore.experiments.largepages", "large_page_sets"),
    "apply_fig08_fit": ("pagecore.experiments.memory_manager", "apply_fig08_fit"),
    "fig06_error": ("pagecore.experiments.memory_manager", "fig06_error"),
    "fig06_records": ("pagecore.experiments.memory_manager", "fig06_records"),
    "fig07_records": ("pagecore.experiments.memory_manager", "fig07_records"),
    "fig07_tau0_split_mb": ("pagecore.experiments.memory_manager", "fig07_tau0_split_mb"),
    "fig08_panels": ("pagecore.experiments.memory_manager", "fig08_panels"),
    "fig08_records": ("pagecore.experiments.memory_manager", "fig08_records"),
    "fig08_pool_gap": ("pagecore.experiments.memory_manager", "fig08_pool_gap"),
    "fit_fig06_alpha_slow": ("pagecore.experiments.memory_manager", "fit_fig06_alpha_slow"),
    "fit_fig08_active": ("pagecore.experiments.memory_manager", "fit_fig08_active"),
    "run_whatif": ("pagecore.experiments.memory_manager", "run_whatif"),
    "series_error": ("pagecore.experiments.memory_manager", "series_error"),
    "sharing_budget": ("pagecore.experiments.memory_manager", "sharing_budget"),
    "boot_paging": ("pagecore.experiments.memory_manager", "boot_paging"),
    "check_defaults": ("pagecore.experiments.influence", "check_defaults"),
    "influence_moves": ("pagecore.experiments.influence", "moves"),
    "influence_runs": ("pagecore.experiments.influence", "influence_runs"),
    "relabel": ("pagecore.experiments.influence", "relabel"),
    "seed_spread": ("pagecore.experiments.influence", "seed_spread"),
    "NULL_MODELS": ("pagecore.experiments.nullmodels", "NULL_MODELS"),
    "null_value": ("pagecore.experiments.nullmodels", "null_value"),
    "fitted_points": ("pagecore.experiments.nullmodels", "fitted_points"),
    "PARAMETERS": ("pagecore.experiments.provenance", "PARAMETERS"),
    "provenance_table": ("pagecore.experiments.provenance", "provenance_table"),
    "swept": ("pagecore.experiments.provenance", "swept"),
    "sweep_name": ("pagecore.experiments.provenance", "sweep_name"),
    "swept_named": ("pagecore.experiments.provenance", "swept_named"),
    "check_sensitivity_tables": ("pagecore.experiments.sensitivity", "check_tables"),
    "fig02_records": ("pagecore.experiments.reclaim", "fig02_records"),
    "fig02_required_cache_loss": ("pagecore.experiments.reclaim", "fig02_required_cache_loss"),
    "fit_fig02_cost": ("pagecore.experiments.reclaim", "fit_fig02_cost"),
    "paper_fig02": ("pagecore.experiments.reclaim", "paper_fig02"),
    "run_guest": ("pagecore.experiments.reclaim", "run_guest"),
    "run_io": ("pagecore.experiments.reclaim", "run_io"),
    "Record": ("pagecore.experiments.records", "Record"),
    "comparison_table": ("pagecore.experiments.records", "comparison_table"),
    "figure_scores": ("pagecore.experiments.records", "figure_scores"),
    "gather_records": ("pagecore.experiments.records", "gather_records"),
    "summarize": ("pagecore.experiments.records", "summarize"),
    "sweep_records": ("pagecore.experiments.records", "sweep_records"),
    "write_records": ("pagecore.experiments.records", "write_records"),
    "duplicate_lifetimes": ("pagecore.experiments.scan", "duplicate_lifetimes"),
    "history_from_tables": ("pagecore.experiments.scan", "history_from_tables"),
    "sharing_over_time": ("pagecore.experiments.scan", "sharing_over_time"),
    "figure_records": ("pagecore.experiments.sensitivity", "figure_records"),
    "run_param": ("pagecore.experiments.sensitivity", "run_param"),
    "run_sensitivity_baseline": ("pagecore.experiments.sensitivity", "run_baseline"),
    "sensitivity_score": ("pagecore.experiments.sensitivity", "score"),
    "fig04_records": ("pagecore.experiments.sharing_figures", "fig04_records"),
    "fig04_sweep_from_config": ("pagecore.experiments.sharing_figures", "fig04_sweep_from_config"),
    "fig05_records": ("pagecore.experiments.sharing_figures", "fig05_records"),
    "fig05_os_kinds": ("pagecore.experiments.sharing_figures", "fig05_os_kinds"),
    "fig05_table_from_config": ("pagecore.experiments.sharing_figures", "fig05_table_from_config"),
    "provenance_check": ("pagecore.experiments.sensitivity", "provenance_check"),
    "SHARE_LEGEND": ("pagecore.experiments.sharetable", "LEGEND"),
    "share_rows": ("pagecore.experiments.sharetable", "share_rows"),
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports("pagecore.experiments", _LAZY, globals())
