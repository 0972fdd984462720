"""Figure 2 and its paper-vs-ours numbers."""

import pandas as pd

from pagecore import job_log
from pagecore.experiments import fig02_records, paper_fig02, write_records
from pagecore.plotting import fig02_balloon_performance, save_figure

with job_log(snakemake):
    fig02 = pd.read_csv(snakemake.input.fig02)
    save_figure(fig02_balloon_performance(fig02, paper_fig02()), snakemake.output.png.removesuffix(".png"))
    records = fig02_records(fig02, snakemake.params.fitted)
    write_records(snakemake.output.numbers, records)
    for r in records:
        print(f"{r.quantity:24s} paper {r.paper:8.2f}  ours {r.ours:8.2f}  ({r.kind})")
