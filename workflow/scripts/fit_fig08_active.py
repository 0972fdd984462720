"""The declared fit fig08_active: Figure 8's per-VM schedules from its active panels (targets listed)."""

from pagecore import job_log, write_json_atomic
from pagecore.experiments import fit_fig08_active

with job_log(snakemake):
    f = snakemake.params.fit
    fit = fit_fig08_active(snakemake.params.fig08, f.get("split", "max_mb"), float(f.get("lead_min", 1.0)))
    write_json_atomic(snakemake.output.fit, fit)
    print(fit)
