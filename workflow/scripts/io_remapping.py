"""Hot I/O page remapping (§7): the figure."""

import pandas as pd

from pagecore import job_log
from pagecore.plotting import io_remapping, save_figure

with job_log(snakemake):
    fig = io_remapping(
        pd.read_csv(snakemake.input.threshold), pd.read_csv(snakemake.input.scarcity), snakemake.params.threshold
    )
    save_figure(fig, snakemake.output.png.removesuffix(".png"))
