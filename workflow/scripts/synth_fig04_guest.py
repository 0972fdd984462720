"""Write one synthetic Figure 4 guest as a raw physical image."""

from pagecore import job_log
from pagecore.synth import Fig04Model

with job_log(snakemake):
    p = snakemake.params.model
    model = Fig04Model(mem_mb=p["mem_mb"], variants=p["variants"], seed=p["seed"], **p["fractions"])
    vm = int(snakemake.wildcards.idx) - 1
    n = model.write_raw(vm, snakemake.output.dump)
    print(f"vm{snakemake.wildcards.idx}: {n:,} bytes, classes {model.counts()}", flush=True)
