"""Execute the notebooks on the pipeline's results in one kernel and write each as self-contained HTML."""

import os

from pagecore import job_log
from pagecore.notebooks import execute_notebooks, plotting_cells_without_image, render_html

with job_log(snakemake):
    nbs = execute_notebooks(snakemake.input.notebooks, os.getcwd())
    for path, nb, html in zip(snakemake.input.notebooks, nbs, snakemake.output.html, strict=True):
        missing = plotting_cells_without_image(nb)
        if missing:
            print(f"warning: {os.path.basename(path)}: cells {missing} plot but show no image", flush=True)
        render_html(nb, html)
        print(f"{html}: {len(nb.cells)} cells", flush=True)
