# Every figNN.json gathered into one paper-vs-ours table.


rule comparison:
    """Gather every paper-vs-ours number into comparison.csv and the summary comparison.txt."""
    input:
        numbers=figure_numbers,
    output:
        table=report(
            "results/numbers/comparison.csv",
            caption="../report/comparison.rst",
            category="Paper vs ours",
        ),
        summary="results/numbers/comparison.txt",
    params:
        comparison=config["comparison"],
    log:
        "results/logs/comparison.log",
    script:
        "../scripts/comparison.py"
