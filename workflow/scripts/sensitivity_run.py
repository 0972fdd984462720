"""One UNCONFIRMED parameter at both ends of its range (or the defaults): per-figure scores."""

from pagecore import atomic_path, job_log
from pagecore.experiments import figure_records, run_param, swept_named
from pagecore.experiments import sensitivity_score as score

with job_log(snakemake):
    cfg = dict(snakemake.params.config)  # a param, so a changed config makes the table again
    which = snakemake.wildcards.param
    figures = tuple(snakemake.params.figures)
    if which == "baseline":
        table = score(figure_records(cfg, figures), cfg["comparison"])
        table["param"], table["end"], table["value"] = "baseline", "baseline", float("nan")
    else:
        table = run_param(cfg, swept_named(which, figures))
    with atomic_path(snakemake.output.table) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    print(table.to_string())
