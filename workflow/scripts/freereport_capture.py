"""Real guests with free page reporting on and off (pagecore.qemu.freereport)."""

import sys
from pathlib import Path

from pagecore import job_log
from pagecore.qemu import freereport

with job_log(snakemake):
    reason = freereport.unavailable_reason()
    if reason:
        sys.exit(f"host.approaches_real needs real guests: {reason}")
    r = snakemake.params.real
    out = Path(snakemake.output.off).parent
    argv = ["-o", str(out), "--ram-mb", str(r["ram_mb"]), "--alloc-mb", str(r["alloc_mb"]),
            "--reuse-mb", str(r["reuse_mb"]), "--accel", r["accel"]]  # fmt: skip
    rc = freereport.main(argv)
    if rc:
        sys.exit(rc)
