"""Figure 5 as a table and a chart, paper vs ours, with its numbers.

Percentages are the MB columns over the input host size, so only the MB columns are compared.
"""

import json

from pagecore import atomic_path, job_log, paper
from pagecore.experiments import sweep_records, write_records
from pagecore.plotting import fig05_real_world_sharing, save_figure
from pagecore.sharing import fig05_table

COLUMNS = {
    "shared_mb": ("shared_mb", "MB"),
    "reclaimed_mb": ("reclaimed_mb", "MB"),
    "zero_reclaimed_mb": ("zero_reclaimed_mb", "MB"),
}
SOURCE = "fitted: catalogue.os shared_mb / zero calibrated on these points (pagecore.synth.guests.fit)"

with job_log(snakemake):
    reports = {
        s: json.loads(open(p).read()) for s, p in zip(snakemake.params.scenarios, snakemake.input.reports, strict=True)
    }
    ours = fig05_table(reports)
    fig = fig05_real_world_sharing(ours, paper.FIG05)
    save_figure(fig, snakemake.output.png.removesuffix(".png"))
    recs = sweep_records(
        "fig05", ours, paper.FIG05, COLUMNS, set(snakemake.params.fitted), key="workload", fitted_source=SOURCE
    )
    write_records(snakemake.output.numbers, recs)
    side = ours.merge(paper.FIG05, on="workload", suffixes=("", "_paper"))
    with atomic_path(snakemake.output.table) as tmp:
        side.to_csv(tmp, index=False, float_format="%.10g")
    print(side.to_string())
