"""The influence step's runs: each value chosen on a figure, perturbed, and that figure's predicted
numbers at the defaults and perturbed (results/numbers/influence_runs.csv).

Needs only the config, so it runs beside the figures; the comparison decides which changes are
moves (beyond the seeds' spread), checks the runs started from the pipeline's own numbers and
labels the moved numbers fitted (pagecore.experiments.influence)."""

from pagecore import atomic_path, job_log
from pagecore.experiments import influence_runs

with job_log(snakemake):
    cfg = snakemake.params.config
    runs = influence_runs(
        cfg,
        step=float(cfg["comparison"].get("influence", {}).get("step", 0.1)),
        progress=lambda m: print(m, flush=True),
    )
    with atomic_path(snakemake.output.runs) as tmp:
        runs.to_csv(tmp, index=False, float_format="%.17g")
    print(f"{len(runs)} rows over {runs['figure'].nunique()} figures", flush=True)
