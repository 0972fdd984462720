# Notebooks -> results/notebooks/<name>.html: each notebook executed on this run's results and
# rendered with its figures inline (the committed notebooks stay without outputs).

if NOTEBOOKS:

    # One job, one kernel: each notebook runs in a new session of it (its names cleared, its
    # cells numbered from 1), so the kernel's start and the imports of pandas, Matplotlib and
    # pagecore (about 3 CPU-seconds) and the renderer's (about 2) are paid once, not per notebook.
    rule render_notebooks:
        """Execute notebooks/*.ipynb in the working directory (so they find results/) in one kernel and render them to HTML."""
        input:
            notebooks=[notebook_source(name) for name in NOTEBOOKS],
            data=notebook_data(),
        output:
            html=expand("results/notebooks/{name}.html", name=NOTEBOOKS),
        log:
            "results/logs/render_notebooks.log",
        priority: priority_of("render_notebooks")
        script:
            "../scripts/render_notebooks.py"
