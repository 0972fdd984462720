"""Hot I/O page remapping (§7): copies vs threshold and under scarce low memory."""

from pagecore import atomic_path, job_log, write_json_atomic
from pagecore.experiments import run_io

with job_log(snakemake):
    thr, scar, summary = run_io(snakemake.params.reclaim)
    with atomic_path(snakemake.output.threshold) as tmp:
        thr.to_csv(tmp, index=False)
    with atomic_path(snakemake.output.scarcity) as tmp:
        scar.to_csv(tmp, index=False)
    write_json_atomic(snakemake.output.summary, summary)
    print(summary)
