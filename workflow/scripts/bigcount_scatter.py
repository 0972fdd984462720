"""Scatter one page-table shard into hash-prefix row groups."""

import json

from pagecore import job_log
from pagecore.sharing import scatter_table

with job_log(snakemake):
    meta = scatter_table(
        snakemake.input.pages, snakemake.output.scattered, snakemake.params.vm_names, snakemake.params.bits
    )
    print(json.dumps({k: v for k, v in meta.items() if k != "vm_names"}))
