"""Tornado charts: per figure, how far each UNCONFIRMED parameter's range moves its error."""

import pandas as pd

from pagecore import atomic_path, job_log
from pagecore.plotting import save_figure, sensitivity_tornado

with job_log(snakemake):
    table = pd.concat([pd.read_csv(p) for p in snakemake.input.runs], ignore_index=True)
    with atomic_path(snakemake.output.table) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    for fig, png in zip(snakemake.params.figures, snakemake.output.pngs, strict=True):
        save_figure(sensitivity_tornado(table, fig), png.removesuffix(".png"))
