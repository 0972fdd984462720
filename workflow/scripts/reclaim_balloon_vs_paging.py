"""Balloon vs random host demand paging (§3.1, §3.3): the figure."""

import pandas as pd

from pagecore import job_log
from pagecore.plotting import reclaim_balloon_vs_paging, save_figure

with job_log(snakemake):
    paging = pd.read_csv(snakemake.input.paging)
    save_figure(reclaim_balloon_vs_paging(paging), snakemake.output.png.removesuffix(".png"))
