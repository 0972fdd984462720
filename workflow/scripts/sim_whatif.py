"""One what-if sweep (τ, sample size or overcommitment) of the replayed memory manager.

The scenario's trace is read once (``PreparedTrace``) and replayed once per value.
"""

from pagecore import atomic_path, job_log
from pagecore.experiments import run_whatif
from pagecore.sim import PreparedTrace
from pagecore.synth import read_trace, scenario

with job_log(snakemake):
    w = snakemake.params.workloads
    name = snakemake.params.scenario
    dim = snakemake.wildcards.dim
    sc = scenario(name, w[name], seed=w["seed"], chunk_s=w["chunk_s"])
    trace = PreparedTrace(read_trace(snakemake.input.trace))
    table = run_whatif(dim, snakemake.params.values, sc, snakemake.params.sim, lambda: trace)
    with atomic_path(snakemake.output.table) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    print(table.to_string(), flush=True)
