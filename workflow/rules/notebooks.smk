# Notebooks -> results/notebooks/<name>.html: each notebook executed on this run's results and
# rendered with its figures inline (the committed notebooks stay without outputs).


rule render_notebook:
    """Execute notebooks/<name>.ipynb in the working directory (so it finds results/) and render it to HTML."""
    input:
        notebook=notebook_source,
        data=notebook_data,
    output:
        html="results/notebooks/{name}.html",
    log:
        "results/logs/render_notebook/{name}.log",
    script:
        "../scripts/render_notebook.py"
