"""Replay one scenario's access trace through the memory manager; write the timelines."""

from pagecore import job_log
from pagecore.sim import scenarios
from pagecore.synth import read_trace, scenario
from pagecore.timelines import write_timeline

with job_log(snakemake):
    w = snakemake.params.workloads
    name = snakemake.wildcards.scenario
    sc = scenario(name, w[name], seed=w["seed"], chunk_s=w["chunk_s"])
    res = scenarios.run(sc, snakemake.params.sim, read_trace(snakemake.input.trace))
    # provenance: what these timelines were replayed from, with which settings
    prov = {"scenario": name, "inputs": [snakemake.input.trace], "sim": snakemake.params.sim, "workloads": w}
    write_timeline(snakemake.output.vms, res.vms, "vm", prov)
    write_timeline(snakemake.output.host, res.host, "host", prov)
    write_timeline(snakemake.output.events, res.events, "events", prov)
    print(res.events.to_string(), flush=True)
