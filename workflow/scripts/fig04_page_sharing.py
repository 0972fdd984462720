"""Figure 4 and its paper-vs-ours numbers.

VM memory is the configured input (40 MB per guest), so it is drawn but not compared; the
percentages are the MB series over that input, so they are drawn but not compared either (each
quantity once).
"""

import pandas as pd

from pagecore import job_log, paper
from pagecore.experiments import sweep_records, write_records
from pagecore.plotting import fig04_page_sharing, save_figure

COLUMNS = {
    "shared_mb": ("shared_mb", "MB"),
    "reclaimed_mb": ("reclaimed_mb", "MB"),
    "zero_mb": ("zero_mb", "MB"),
}
SOURCE = "fitted: synth.fig04.fractions calibrated on these points (pagecore.synth.calibrate_fig04)"

with job_log(snakemake):
    sweep = pd.read_csv(snakemake.input.sweep)
    fig = fig04_page_sharing(sweep, paper.FIG04)
    save_figure(fig, snakemake.output.png.removesuffix(".png"))
    fitted = set(snakemake.params.fitted)
    write_records(
        snakemake.output.numbers, sweep_records("fig04", sweep, paper.FIG04, COLUMNS, fitted, fitted_source=SOURCE)
    )
