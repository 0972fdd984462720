"""Write one synthetic Figure 4 guest as a raw physical image, then hash that dump into a page table."""

import json

from pagecore import job_log
from pagecore.pages import PageKey, hash_dump
from pagecore.synth import Fig04Model

with job_log(snakemake):
    p = snakemake.params.model
    model = Fig04Model(mem_mb=p["mem_mb"], variants=p["variants"], seed=p["seed"], **p["fractions"])
    vm = int(snakemake.wildcards.idx) - 1
    n = model.write_raw(vm, snakemake.output.dump)
    print(f"vm{snakemake.wildcards.idx}: {n:,} bytes, classes {model.counts()}", flush=True)
    h = snakemake.params.hashing
    meta = hash_dump(
        snakemake.output.dump,
        snakemake.output.pages,
        snakemake.params.vm,
        format="raw",
        key=PageKey.from_config(h),
        threads=snakemake.threads,
        chunk_pages=h["chunk_pages"],
        show_progress=False,
    )
    print(json.dumps(meta, indent=2))
