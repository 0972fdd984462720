"""Hash one memory dump into a page table."""

import json

from pagecore import job_log
from pagecore.pages import PageKey, hash_dump

with job_log(snakemake):
    h = snakemake.params.hashing
    meta = hash_dump(
        snakemake.input.dump,
        snakemake.output.pages,
        snakemake.params.vm,
        format=snakemake.params.format,
        key=PageKey.from_config(h),
        threads=snakemake.threads,
        chunk_pages=h["chunk_pages"],
        show_progress=False,
    )
    print(json.dumps(meta, indent=2))
