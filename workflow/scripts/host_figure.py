"""The host what-if figure and the reclamation-approaches figure."""

import pandas as pd

from pagecore import job_log
from pagecore.plotting import host_whatif, reclamation_approaches, save_figure

with job_log(snakemake):
    if snakemake.rule.startswith("reclamation_approaches"):
        title = "a real guest" if snakemake.rule.endswith("_real") else "Figure 4 guests"
        fig = reclamation_approaches(
            pd.read_parquet(snakemake.input.timeline), pd.read_csv(snakemake.input.table), title
        )
    else:
        fig = host_whatif(pd.read_csv(snakemake.input.rows), pd.read_parquet(snakemake.input.timelines))
    save_figure(fig, snakemake.output.png.removesuffix(".png"))
