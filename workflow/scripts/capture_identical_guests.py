"""Boot N identical real QEMU guests in turn and save each one's RAM."""

import json
from pathlib import Path

from pagecore import job_log
from pagecore.qemu import capture_identical

with job_log(snakemake):
    r = snakemake.params.real
    m = capture_identical(
        r["vms"],
        Path(snakemake.output.manifest).parent,
        ram_mb=r["ram_mb"],
        accel=r["accel"],
        kvm_timeout=r["kvm_timeout_s"],
    )
    print(json.dumps(m, indent=2))
