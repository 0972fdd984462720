"""Figure: savings reached vs large pages broken, and the savings per 2 MiB region."""

import pandas as pd

from pagecore import job_log
from pagecore.plotting import large_page_breaking, save_figure

with job_log(snakemake):
    curves = pd.read_parquet(snakemake.input.curves)
    regions = pd.read_parquet(snakemake.input.regions)
    fig = large_page_breaking(
        {name: c for name, c in curves.groupby("set", sort=False)},
        {name: r for name, r in regions.groupby("set", sort=False)},
    )
    save_figure(fig, snakemake.output.png.removesuffix(".png"))
