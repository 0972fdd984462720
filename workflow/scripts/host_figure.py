"""The host what-if figure."""

import pandas as pd

from pagecore import job_log
from pagecore.plotting import host_whatif, save_figure

with job_log(snakemake):
    fig = host_whatif(pd.read_csv(snakemake.input.rows), pd.read_parquet(snakemake.input.timelines))
    save_figure(fig, snakemake.output.png.removesuffix(".png"))
