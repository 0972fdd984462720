"""Large pages on a set of guests: breaking curve, per-region savings and the summary."""

import json

from pagecore import atomic_path, job_log
from pagecore.experiments import large_page_sets

with job_log(snakemake):
    curves, regions, summary = large_page_sets(snakemake.input.pages)
    with atomic_path(snakemake.output.curves) as tmp:
        curves.to_parquet(tmp, index=False)
    with atomic_path(snakemake.output.regions) as tmp:
        regions.to_parquet(tmp, index=False)
    with atomic_path(snakemake.output.summary) as tmp, open(tmp, "w") as fh:
        json.dump(summary, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print(json.dumps(summary, indent=1))
