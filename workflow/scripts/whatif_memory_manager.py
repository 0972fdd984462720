"""The what-if table (all sweeps) and its figure."""

import pandas as pd

from pagecore import atomic_path, job_log, paper
from pagecore.plotting import save_figure, whatif_memory_manager

with job_log(snakemake):
    table = pd.concat([pd.read_csv(p) for p in snakemake.input.tables], ignore_index=True)
    with atomic_path(snakemake.output.table) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    fig = whatif_memory_manager(table, paper.FIG07)
    save_figure(fig, snakemake.output.png.removesuffix(".png"))
    print(table.to_string())
