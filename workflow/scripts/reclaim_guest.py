"""Figure 2 and balloon-vs-host-paging tables from the guest page-cache model (§3, Figure 2)."""

from pagecore._smk import job_log
from pagecore._util import atomic_path, write_json_atomic
from pagecore.reclaimreport import run_guest

with job_log(snakemake):
    fig02, paging, cost = run_guest(snakemake.params.reclaim)
    with atomic_path(snakemake.output.fig02) as tmp:
        fig02.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(snakemake.output.paging) as tmp:
        paging.to_csv(tmp, index=False, float_format="%.6g")
    write_json_atomic(snakemake.output.cost, cost)
    print(cost)
    print(fig02.to_string())
    print(paging.to_string())
