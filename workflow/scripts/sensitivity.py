"""Tornado charts: per figure, how far each UNCONFIRMED parameter's range moves its error."""

import pandas as pd

from pagecore import atomic_path, job_log
from pagecore.experiments import check_sensitivity_tables, swept
from pagecore.plotting import save_figure, sensitivity_tornado

with job_log(snakemake):
    runs = [pd.read_csv(p).assign(source=p) for p in snakemake.input.runs]
    check_sensitivity_tables(pd.concat(runs, ignore_index=True), swept(tuple(snakemake.params.figures)))
    table = pd.concat([r.drop(columns="source") for r in runs], ignore_index=True)
    with atomic_path(snakemake.output.table) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    for fig, png in zip(snakemake.params.figures, snakemake.output.pngs, strict=True):
        save_figure(sensitivity_tornado(table, fig), png.removesuffix(".png"))
    with atomic_path(snakemake.output.stamp) as tmp:  # last: the charts are complete
        tmp.write_text(snakemake.params.digest + "\n")
