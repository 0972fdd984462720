"""Scatter one page-table shard into hash-prefix row groups."""

import json

from pagecore import job_log
from pagecore.sharing import scatter_table

with job_log(snakemake):
    # the file holds the VM list's digest, not the list (the count jobs are given it)
    meta = scatter_table(
        snakemake.input.pages,
        snakemake.output.scattered,
        snakemake.params.vm_names,
        snakemake.params.bits,
        store_names=False,
    )
    print(json.dumps(meta))
