"""Write one shard of hash-only synthetic page tables (no page bytes)."""

from pagecore import job_log
from pagecore.synth import Fig04Model, write_hash_only_shard

with job_log(snakemake):
    big, m = snakemake.params.big, snakemake.params.model
    model = Fig04Model(mem_mb=big["mem_mb"], variants=m["variants"], seed=big["seed"], **m["fractions"])
    s = int(snakemake.wildcards.shard)
    vms = range(s * big["vms_per_shard"], min(big["vms"], (s + 1) * big["vms_per_shard"]))
    rows = write_hash_only_shard(model, vms, snakemake.output.pages)
    print(f"shard {s}: VMs {vms.start + 1}..{vms.stop}, {rows:,} pages")
