# Every figNN.json gathered into one paper-vs-ours table.


rule comparison:
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
