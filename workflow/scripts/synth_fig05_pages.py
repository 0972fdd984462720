"""Hash-only page tables of one Figure 5 scenario's composed guests."""

from pagecore import job_log
from pagecore.synth import GuestSet, write_hash_only_tables

with job_log(snakemake):
    gs = GuestSet.from_config(snakemake.params.scenario, snakemake.params.catalogue, snakemake.params.seed)
    names = [g.name for g in gs.guests]
    generator = {
        "model": "GuestSet",
        "scenario": snakemake.wildcards.scenario,
        "catalogue": snakemake.params.catalogue,
        "seed": snakemake.params.seed,
    }
    rows = write_hash_only_tables(gs, range(len(names)), names, snakemake.output.pages, generator)
    print(f"{snakemake.wildcards.scenario}: {len(names)} guests, {rows:,} pages, {gs.total_mb:,.1f} MB")
