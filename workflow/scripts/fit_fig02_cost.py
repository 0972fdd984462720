"""The declared fit fig02_cost: Figure 2's cost model on the paper's configured bars (targets listed)."""

from pagecore import job_log, write_json_atomic
from pagecore.experiments import fit_fig02_cost

with job_log(snakemake):
    fit = fit_fig02_cost(snakemake.params.reclaim)
    write_json_atomic(snakemake.output.fit, fit)
    print(fit)
