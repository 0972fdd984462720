"""Execute one notebook on the pipeline's results and write it as self-contained HTML."""

import os

from pagecore import job_log
from pagecore.notebooks import execute_notebook, plotting_cells_without_image, render_html

with job_log(snakemake):
    nb = execute_notebook(snakemake.input.notebook, os.getcwd())
    missing = plotting_cells_without_image(nb)
    if missing:
        print(f"warning: cells {missing} plot but show no image", flush=True)
    render_html(nb, snakemake.output.html)
    print(f"{snakemake.output.html}: {len(nb.cells)} cells", flush=True)
