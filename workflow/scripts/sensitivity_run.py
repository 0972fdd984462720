"""One UNCONFIRMED parameter at both ends of its range (or the defaults, at every seed): per-figure scores."""

from pagecore import atomic_path, job_log
from pagecore.experiments import run_param, swept_named
from pagecore.experiments import run_sensitivity_baseline as run_baseline

with job_log(snakemake):
    cfg = dict(snakemake.params.config)  # a param, so a changed config makes the table again
    which = snakemake.wildcards.param
    figures = tuple(snakemake.params.figures)
    if which == "baseline":  # the defaults, and Figures 6-8 at every other seed of comparison.seeds
        table = run_baseline(cfg, figures)
    else:
        table = run_param(cfg, swept_named(which, figures))
    with atomic_path(snakemake.output.table) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    print(table.to_string())
