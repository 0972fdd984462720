"""Figure 4 on real QEMU guests beside the synthetic guests and the paper."""

import pandas as pd

from pagecore import job_log, paper
from pagecore.plotting import fig04_real_guests, save_figure

with job_log(snakemake):
    real = pd.read_csv(snakemake.input.real)
    synthetic = pd.read_csv(snakemake.input.synthetic)
    save_figure(fig04_real_guests(real, synthetic, paper.FIG04), snakemake.output.png.removesuffix(".png"))
    print(real[["vms", "total_mb", "shared_pct", "reclaimed_pct", "zero_pct", "verified", "false_matches"]])
