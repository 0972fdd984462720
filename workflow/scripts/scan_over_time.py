"""ESX scanner and KSM emulator over time on the Figure 4 page tables."""

from pagecore import atomic_path, job_log
from pagecore.experiments import history_from_tables, sharing_over_time

with job_log(snakemake):
    cfg = snakemake.params.scan
    hist = history_from_tables(snakemake.input.pages)
    timeline, summary = sharing_over_time(
        hist, cfg["esx"], cfg["ksm"], seed=cfg["seed"], use_zero_pages=cfg["use_zero_pages"]
    )
    with atomic_path(snakemake.output.timeline) as tmp:
        timeline.to_parquet(tmp, index=False)
    with atomic_path(snakemake.output.summary) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6g")
    print(summary.to_string())
