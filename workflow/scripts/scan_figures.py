"""Figures of the sharing-over-time analysis."""

import pandas as pd

from pagecore import job_log
from pagecore.plotting import save_figure, scan_duplicate_lifetime, scan_sharing_over_time

with job_log(snakemake):
    if snakemake.rule == "scan_sharing_over_time":
        fig = scan_sharing_over_time(pd.read_parquet(snakemake.input.timeline), pd.read_csv(snakemake.input.summary))
    else:
        fig = scan_duplicate_lifetime(pd.read_csv(snakemake.input.survival), pd.read_csv(snakemake.input.catch))
    save_figure(fig, snakemake.output.png.removesuffix(".png"))
