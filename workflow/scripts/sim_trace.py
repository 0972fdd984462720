"""Generate one scenario's access trace (Parquet, streamed) and its workload spec table."""

import json

from pagecore import atomic_path, job_log
from pagecore.experiments import apply_fig08_fit
from pagecore.synth import generate, scenario, write_trace

with job_log(snakemake):
    w = snakemake.params.workloads
    name = snakemake.wildcards.scenario
    cfg = w[name]
    fit = getattr(snakemake.input, "fit", None)
    if fit:  # the declared fit's schedules replace the configured ones (Figure 8)
        with open(fit) as fh:
            cfg = apply_fig08_fit(cfg, json.load(fh))
        print(f"{name}: foreground schedules from {fit}", flush=True)
    sc = scenario(name, cfg, seed=w["seed"], chunk_s=w["chunk_s"])
    rows = write_trace(
        snakemake.output.trace, generate(sc), {"scenario": name, "seed": w["seed"], "chunk_s": w["chunk_s"]}
    )
    with atomic_path(snakemake.output.spec) as tmp:
        sc.spec_frame().to_csv(tmp, index=False)
    print(f"{name}: {rows:,} page references over {sc.duration_min:g} min, {len(sc.vms)} VMs", flush=True)
