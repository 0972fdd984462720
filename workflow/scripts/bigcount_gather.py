"""Sum the partitions' counts into one sharing report."""

from pagecore import __version__, job_log, write_json_atomic
from pagecore.sharing import gather

with job_log(snakemake):
    rep = {"pagecore_version": __version__, "inputs": list(snakemake.input.counts)}
    rep.update(gather(snakemake.input.counts).to_dict())
    rep["verification"] = {"verified": False, "reason": "hash-only synthetic page tables"}
    rep["partitions"] = len(snakemake.input.counts)
    write_json_atomic(snakemake.output.report, rep)
    print({k: rep[k] for k in ("vms", "total_pages", "shared_pages", "reclaimed_pages", "total_mb", "reclaimed_mb")})
