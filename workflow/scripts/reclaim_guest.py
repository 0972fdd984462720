"""Figure 2 and balloon-vs-host-paging tables from the guest page-cache model (§3, Figure 2)."""

import json

from pagecore import atomic_path, job_log, write_json_atomic
from pagecore.experiments import run_guest

with job_log(snakemake):
    fit = json.loads(open(snakemake.input.fit).read())
    fig02, paging, cost = run_guest(snakemake.params.reclaim, fit)
    with atomic_path(snakemake.output.fig02) as tmp:
        fig02.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(snakemake.output.paging) as tmp:
        paging.to_csv(tmp, index=False, float_format="%.6g")
    write_json_atomic(snakemake.output.cost, cost)
    print(cost)
    print(fig02.to_string())
    print(paging.to_string())
