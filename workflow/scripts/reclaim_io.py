"""Hot I/O page remapping (§7): copies vs threshold and under scarce low memory."""

from pagecore import __version__, atomic_path, job_log, write_json_atomic
from pagecore.experiments import run_io

with job_log(snakemake):
    thr, scar, summary = run_io(snakemake.params.reclaim)
    with atomic_path(snakemake.output.threshold) as tmp:
        thr.to_csv(tmp, index=False)
    with atomic_path(snakemake.output.scarcity) as tmp:
        scar.to_csv(tmp, index=False)
    # provenance: no input files; the config section it ran with
    prov = {"pagecore_version": __version__, "inputs": [], "config": snakemake.params.reclaim}
    write_json_atomic(snakemake.output.summary, {**prov, **summary})
    print(summary)
