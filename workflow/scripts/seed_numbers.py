"""Figures 6-8 replayed with the other simulator seeds: their paper-vs-ours records, one file per seed.

Only the simulator's own random choices change (sampled pages, paging victims, scan order); the
access traces are the default run's. One job replays every seed: each trace is read once
(``PreparedTrace``) and replayed per seed, instead of one job per seed reading all three. The
comparison scores every seed and reports the spread.
"""

import copy

from pagecore import job_log, write_json_atomic
from pagecore.config import scenario_section
from pagecore.experiments import fig06_records, fig07_records, fig07_tau0_split_mb, fig08_records
from pagecore.sim import PreparedTrace, scenarios
from pagecore.synth import read_trace, scenario

with job_log(snakemake):
    seeds = [int(s) for s in snakemake.params.seeds]
    paths = dict(snakemake.params.outputs)
    w = snakemake.params.workloads
    out = {seed: [] for seed in seeds}
    for name, path in (
        ("fig06", snakemake.input.fig06),
        ("fig07", snakemake.input.fig07),
        ("fig08", snakemake.input.fig08),
    ):
        sc = scenario(name, w[name], seed=w["seed"], chunk_s=w["chunk_s"])
        trace = PreparedTrace(read_trace(path))
        for seed in seeds:
            sim = copy.deepcopy(snakemake.params.sim)
            sim["seed"] = seed
            res = scenarios.run(sc, sim, trace)
            if name == "fig06":
                recs = fig06_records(res.vms)
            elif name == "fig07":
                cfg = w["fig07"]
                idle, active = (v["name"] for v in cfg["vms"][:2])
                split = fig07_tau0_split_mb(cfg, sim)
                recs = fig07_records(res.vms, idle, active, cfg["tau_schedule_min"][-1][0], tau0_split_mb=split)
            else:
                recs = fig08_records(res.vms, res.host, scenario_section(sim, "fig08", "states"))
            out[seed] += [{**r.__dict__, "seed": seed} for r in recs]
            print(f"seed {seed} {name}: {len(recs)} records", flush=True)
        del trace
    for seed in seeds:
        write_json_atomic(paths[seed], out[seed])
