"""Duplicate lifetimes of the Figure 4 guests under a synthetic write trace."""

from pagecore import atomic_path, job_log
from pagecore.experiments import duplicate_lifetimes, history_from_tables

with job_log(snakemake):
    cfg = snakemake.params.scan
    hist = history_from_tables(snakemake.input.pages)
    surv, catch = duplicate_lifetimes(
        hist,
        cfg["writes"],
        cfg["snapshot_interval_s"],
        cfg["catch_rates_esx"],
        cfg["catch_rates_ksm"],
        seed=cfg["seed"],
    )
    with atomic_path(snakemake.output.survival) as tmp:
        surv.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(snakemake.output.catch) as tmp:
        catch.to_csv(tmp, index=False, float_format="%.6g")
    print(catch.to_string())
