"""The host what-if on the Figure 4 page tables (pagecore.experiments.host)."""

import json

from pagecore import atomic_path, job_log
from pagecore.experiments import host_report, load_vms, settings_from_config

with job_log(snakemake):
    cfg = dict(snakemake.params.host)
    settings = settings_from_config(cfg)
    vms = load_vms([{"pages": p, "activity": settings.activity} for p in snakemake.input.pages])
    rep = host_report(vms, settings)
    with atomic_path(snakemake.output.rows) as tmp:
        rep["rows"].to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(snakemake.output.timelines) as tmp:
        rep["timelines"].to_parquet(tmp, index=False)
    out = {k: v for k, v in rep.items() if k not in ("rows", "timelines")}
    with atomic_path(snakemake.output.report) as tmp, open(tmp, "w") as fh:
        json.dump(out, fh, indent=2, default=float)
    print(rep["rows"][rep["rows"]["mechanism"] == "zero"][["policy", "host_mb", "vms_fit"]].to_string(index=False))
