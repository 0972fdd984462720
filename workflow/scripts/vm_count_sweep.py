"""Sharing of the first 1..N VMs (paper Figure 4)."""

from pagecore._smk import job_log
from pagecore._util import atomic_path
from pagecore.sharing import vm_count_sweep
from pagecore.traces import read_page_tables

with job_log(snakemake):
    pages = read_page_tables(snakemake.input.pages, columns=["vm", "hash", "zero"]).to_pandas()
    sweep = vm_count_sweep(pages)
    with atomic_path(snakemake.output.sweep) as tmp:
        sweep.to_csv(tmp, index=False, float_format="%.10g")
    print(sweep.to_string())
